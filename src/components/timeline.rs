use heartline::core::TimelineEntry;
use yew::prelude::*;

use crate::time;

/// Props of [`Timeline`].
#[derive(Properties, PartialEq, Debug)]
pub struct TimelineProps {
    /// Oldest first, as the socket layer keeps them.
    pub entries: Vec<TimelineEntry>,
}

/// The connection's notable events, newest first, with their times: what a
/// developer reads when something went wrong.
#[function_component(Timeline)]
pub fn timeline(props: &TimelineProps) -> Html {
    html! {
        <section class="panel timeline" aria-labelledby="timeline-heading">
            <h2 id="timeline-heading">{ "Connection timeline" }</h2>
            if props.entries.is_empty() {
                <p class="timeline__empty">{ "Nothing has happened yet." }</p>
            } else {
                <ol class="timeline__list" reversed=true>
                    { for props.entries.iter().rev().map(|entry| html! {
                        <li class="timeline__entry">
                            <time class="timeline__time">{ time::precise(entry.at) }</time>
                            <span class="timeline__event">{ entry.event.to_string() }</span>
                        </li>
                    }) }
                </ol>
            }
        </section>
    }
}
