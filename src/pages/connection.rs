use heartline::yew::use_socket;
use yew::prelude::*;

use crate::components::connection_panel::ConnectionPanel;
use crate::components::timeline::Timeline;

/// The socket inspector: the link's numbers and its timeline.
#[function_component(ConnectionPage)]
pub fn connection_page() -> Html {
    let socket = use_socket();
    html! {
        <div class="page page--connection">
            <ConnectionPanel />
            <Timeline entries={socket.timeline()} />
        </div>
    }
}
