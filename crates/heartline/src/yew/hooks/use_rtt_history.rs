use std::rc::Rc;

use yew::prelude::*;
use yew_hooks::{use_interval, use_update};

use crate::yew::hooks::use_socket;

/// The last 60 round-trip times (ms) of the nearest provider's link, oldest
/// first, refreshed every second: for a latency sparkline beside
/// [`use_heartbeat`](crate::yew::use_heartbeat).
///
/// ```no_run
/// use heartline::yew::use_rtt_history;
/// use yew::prelude::*;
///
/// #[function_component(Sparkline)]
/// fn sparkline() -> Html {
///     let samples = use_rtt_history();
///     let max = samples.iter().copied().fold(1.0, f64::max);
///     html! {
///         <div class="sparkline">{ for samples.iter().map(|ms| html! {
///             <span style={format!("height: {}%", ms / max * 100.0)} />
///         }) }</div>
///     }
/// }
/// ```
#[hook]
pub fn use_rtt_history() -> Rc<[f64]> {
    let socket = use_socket();
    let update = use_update();
    use_interval(move || update(), 1_000);
    socket.rtt_history().into()
}
