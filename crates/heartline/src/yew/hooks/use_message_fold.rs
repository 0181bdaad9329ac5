use std::cell::RefCell;
use std::rc::Rc;

use yew::prelude::*;
use yew_hooks::use_latest;

use crate::yew::hooks::frame::use_frame_render;
use crate::yew::hooks::{SocketMessage, use_subscription};

/// Folds every `T` the server sends into a state of the component's own,
/// as it arrives (no re-render per message), and re-renders the component
/// at most once per animation frame: smooth at any message rate. For a
/// sliding window of samples, a live message counter, a running total.
///
/// `init` builds the state on mount; `fold` is always the latest closure.
/// The state is shared: read it while rendering with `.borrow()`. A message
/// that does not decode goes to the provider's `on_error` (and
/// `last_error`) and is not folded.
///
/// ```no_run
/// use std::collections::VecDeque;
/// use heartline::yew::{use_message_fold, SocketMessage};
/// use yew::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Sample { cpu: f64 }
/// impl SocketMessage for Sample { const SOCKET_TYPE: &'static str = "metrics.sample"; }
///
/// #[derive(Default)]
/// struct Window { samples: VecDeque<f64>, seen: u64 }
///
/// #[function_component(CpuChart)]
/// fn cpu_chart() -> Html {
///     let window = use_message_fold::<Sample, Window>(Window::default, |w, sample| {
///         w.seen += 1;
///         w.samples.push_back(sample.cpu);
///         if w.samples.len() > 120 {
///             w.samples.pop_front();
///         }
///     });
///     let w = window.borrow();
///     html! { <p>{ format!("{} samples, last {:?}", w.seen, w.samples.back()) }</p> }
/// }
/// ```
#[hook]
pub fn use_message_fold<T, S>(
    init: impl FnOnce() -> S,
    fold: impl Fn(&mut S, T) + 'static,
) -> Rc<RefCell<S>>
where
    T: SocketMessage,
    S: 'static,
{
    let state = use_mut_ref(init);
    let fold = use_latest(fold);
    let render = use_frame_render();
    {
        let state = state.clone();
        use_subscription::<T, _>(move |message| {
            (fold.current())(&mut state.borrow_mut(), message);
            render.schedule();
        });
    }
    state
}
