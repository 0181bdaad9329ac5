use std::collections::VecDeque;

use heartline::yew::{use_message_fold, use_standing};
use heartline_protocol::{ClientMessage, MetricsSample};
use yew::prelude::*;

use crate::components::chart::{Chart, Series};
use crate::format::{Unit, fixed};
use crate::messages::Sample;

/// Samples each chart spans (one a second from the demo server).
pub const WINDOW: usize = 60;

/// The last [`WINDOW`] samples, oldest first.
#[derive(Debug, Default)]
pub struct MetricsWindow {
    samples: VecDeque<MetricsSample>,
}

impl MetricsWindow {
    /// Adds the newest sample, dropping the oldest past [`WINDOW`].
    pub fn push(&mut self, sample: MetricsSample) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// One value per sample.
    pub fn series(&self, value: impl Fn(&MetricsSample) -> f64) -> Vec<f64> {
        self.samples.iter().map(value).collect()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<&MetricsSample> {
        self.samples.back()
    }
}

const CORE_TONES: [&str; 4] = ["a", "b", "c", "d"];

/// Live charts of the server's host and of the server itself. Subscribed
/// while this page is shown: leaving it unsubscribes, so the server stops
/// sampling for a page nobody looks at.
#[function_component(DashboardPage)]
pub fn dashboard_page() -> Html {
    use_standing(
        "metrics",
        ClientMessage::MetricsSubscribe { interval_ms: None },
        Some(ClientMessage::MetricsUnsubscribe),
        None,
    );
    // Every sample is folded in as it arrives; the page renders at most once
    // per animation frame whatever the rate.
    let window =
        use_message_fold::<Sample, MetricsWindow>(MetricsWindow::default, |w, Sample(s)| w.push(s));
    let window = window.borrow();
    let Some(last) = window.last() else {
        return html! {
            <div class="page dashboard" aria-busy="true">
                <p class="dashboard__waiting">{ "Waiting for the first sample…" }</p>
            </div>
        };
    };
    let cores = last.cpu_per_core.len();
    let per_core: Vec<Series> = (0..cores)
        .map(|core| Series {
            label: format!("core {core}").into(),
            values: window.series(|s| s.cpu_per_core.get(core).copied().unwrap_or(0.0) as f64),
            tone: CORE_TONES[core % CORE_TONES.len()],
        })
        .collect();
    let mem_total = last.mem_total as f64;
    html! {
        <div class="page dashboard">
            <header class="dashboard__summary">
                <p>{ format!("{cores} cores · load {} {} {} · up {} s · {} rooms",
                    fixed(last.load[0], 2), fixed(last.load[1], 2), fixed(last.load[2], 2), last.uptime_secs, last.rooms) }</p>
            </header>
            <div class="dashboard__grid">
                <Chart title="CPU" capacity={WINDOW} y_max={Some(100.0)} unit={Unit::Percent}
                    series={vec![Series { label: "total".into(), values: window.series(|s| s.cpu_total as f64), tone: "a" }]} />
                <Chart title="CPU per core" capacity={WINDOW} y_max={Some(100.0)} unit={Unit::Percent}
                    series={per_core} />
                <Chart title="Memory" capacity={WINDOW} y_max={(mem_total > 0.0).then_some(mem_total)} unit={Unit::Bytes}
                    series={vec![Series { label: "used".into(), values: window.series(|s| s.mem_used as f64), tone: "b" }]} />
                <Chart title="Network" capacity={WINDOW} unit={Unit::BytesPerSec}
                    series={vec![
                        Series { label: "in".into(), values: window.series(|s| s.net_rx_per_sec as f64), tone: "a" },
                        Series { label: "out".into(), values: window.series(|s| s.net_tx_per_sec as f64), tone: "c" },
                    ]} />
                <Chart title="Server frames" capacity={WINDOW} unit={Unit::PerSec}
                    series={vec![
                        Series { label: "in".into(), values: window.series(|s| s.messages_in_per_sec), tone: "a" },
                        Series { label: "out".into(), values: window.series(|s| s.messages_out_per_sec), tone: "c" },
                    ]} />
                <Chart title="Connections" capacity={WINDOW} unit={Unit::Count}
                    series={vec![Series { label: "open".into(), values: window.series(|s| s.connections as f64), tone: "d" }]} />
            </div>
        </div>
    }
}
