use yew::prelude::*;

use crate::format::{Unit, fixed};

/// The plot area in SVG user units (the SVG scales to its box).
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 100.0;
/// Room on the left for the y labels, and below for the x labels.
const LEFT: f64 = 40.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 16.0;

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Shown in the legend with the last value.
    pub label: AttrValue,
    /// Oldest first; the newest sits at the right edge.
    pub values: Vec<f64>,
    /// The CSS modifier that colours it (`chart__line--{tone}`).
    pub tone: &'static str,
}

/// Props of [`Chart`].
#[derive(Properties, PartialEq, Debug)]
pub struct ChartProps {
    /// The chart's title (its accessible name too).
    pub title: AttrValue,
    /// The lines.
    pub series: Vec<Series>,
    /// Samples that fill the width; fewer start at the right.
    pub capacity: usize,
    /// The top of the y axis; `None` scales to the data.
    #[prop_or_default]
    pub y_max: Option<f64>,
    /// The values' unit ("42 %", "1.2 MB/s").
    pub unit: Unit,
    /// Seconds between samples, for the x axis label.
    #[prop_or(1.0)]
    pub seconds_per_sample: f64,
}

/// A top for the y axis at or above `max`: 1, 2 or 5 times a power of ten.
///
/// ```
/// use heartline_app::components::chart::nice_ceiling;
/// assert_eq!(nice_ceiling(0.0), 1.0);
/// assert_eq!(nice_ceiling(3.2), 5.0);
/// assert_eq!(nice_ceiling(42.0), 50.0);
/// assert_eq!(nice_ceiling(120.0), 200.0);
/// ```
pub fn nice_ceiling(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * power)
}

/// The SVG path of `values` in a `width` × `height` box: the newest value
/// at the right edge, `capacity` samples across, 0 at the bottom and
/// `y_max` at the top (values outside are clamped). Empty for no values.
///
/// ```
/// use heartline_app::components::chart::line_path;
/// assert_eq!(line_path(&[0.0, 50.0, 100.0], 3, 200.0, 100.0, 100.0), "M0.0,100.0L100.0,50.0L200.0,0.0");
/// assert_eq!(line_path(&[25.0], 5, 200.0, 100.0, 100.0), "M200.0,75.0");
/// assert_eq!(line_path(&[], 5, 200.0, 100.0, 100.0), "");
/// ```
pub fn line_path(values: &[f64], capacity: usize, width: f64, height: f64, y_max: f64) -> String {
    let n = values.len();
    if n == 0 {
        return String::new();
    }
    let step = width / (capacity.max(n).max(2) - 1) as f64;
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let mut path = String::with_capacity(n * 14);
    for (i, value) in values.iter().enumerate() {
        let x = width - (n - 1 - i) as f64 * step;
        let v = if value.is_finite() {
            value.clamp(0.0, y_max)
        } else {
            0.0
        };
        let y = height - v / y_max * height;
        path.push(if i == 0 { 'M' } else { 'L' });
        path.push_str(&fixed(x, 1));
        path.push(',');
        path.push_str(&fixed(y, 1));
    }
    path
}

/// A live line chart drawn as SVG: y axis with its unit, the window of
/// samples, and each line's last value in the legend.
#[function_component(Chart)]
pub fn chart(props: &ChartProps) -> Html {
    let data_max = props
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_max = props.y_max.unwrap_or_else(|| nice_ceiling(data_max));
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let window_secs =
        (props.capacity.saturating_sub(1) as f64 * props.seconds_per_sample).round() as u64;
    let title_id = format!("chart-{}", props.title.to_lowercase().replace(' ', "-"));
    html! {
        <figure class="chart" aria-labelledby={title_id.clone()}>
            <figcaption id={title_id} class="chart__title">{ &props.title }</figcaption>
            <svg class="chart__svg" viewBox={format!("0 0 {} {}", fixed(WIDTH, 0), fixed(HEIGHT, 0))} role="img"
                aria-label={format!("{} over the last {} s", props.title, window_secs)}
                preserveAspectRatio="none">
                <g class="chart__axes">
                    <line x1={fixed(LEFT, 1)} y1={fixed(TOP, 1)} x2={fixed(LEFT, 1)} y2={fixed(TOP + plot_h, 1)} />
                    <line x1={fixed(LEFT, 1)} y1={fixed(TOP + plot_h, 1)} x2={fixed(WIDTH, 1)} y2={fixed(TOP + plot_h, 1)} />
                    <line class="chart__grid" x1={fixed(LEFT, 1)} y1={fixed(TOP + plot_h / 2.0, 1)} x2={fixed(WIDTH, 1)} y2={fixed(TOP + plot_h / 2.0, 1)} />
                </g>
                <g class="chart__labels">
                    <text x={fixed(LEFT - 4.0, 1)} y={fixed(TOP + 4.0, 1)} text-anchor="end">{ props.unit.format(y_max) }</text>
                    <text x={fixed(LEFT - 4.0, 1)} y={fixed(TOP + plot_h, 1)} text-anchor="end">{ props.unit.format(0.0) }</text>
                    <text x={fixed(LEFT, 1)} y={fixed(HEIGHT - 2.0, 1)}>{ format!("−{window_secs} s") }</text>
                    <text x={fixed(WIDTH, 1)} y={fixed(HEIGHT - 2.0, 1)} text-anchor="end">{ "now" }</text>
                </g>
                <g transform={format!("translate({} {})", fixed(LEFT, 0), fixed(TOP, 0))}>
                    { for props.series.iter().map(|s| html! {
                        <path class={classes!("chart__line", format!("chart__line--{}", s.tone))}
                            data-series={s.label.clone()}
                            d={line_path(&s.values, props.capacity, plot_w, plot_h, y_max)}
                            vector-effect="non-scaling-stroke" />
                    }) }
                </g>
            </svg>
            <ul class="chart__legend">
                { for props.series.iter().map(|s| html! {
                    <li class={classes!("chart__key", format!("chart__key--{}", s.tone))}>
                        <span class="chart__swatch" aria-hidden="true"></span>
                        { &s.label }
                        <strong class="chart__value">
                            { s.values.last().map(|v| props.unit.format(*v)).unwrap_or_else(|| "–".into()) }
                        </strong>
                    </li>
                }) }
            </ul>
        </figure>
    }
}
