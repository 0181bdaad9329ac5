//! A minimal "is the server reachable" indicator: opens one WebSocket and
//! shows whether it is open. It proves the build and test pipeline end to end;
//! the resilient layer (`heartline`'s `SocketProvider`) replaces it.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Event, WebSocket};
use yew::prelude::*;

/// Props of [`ConnectionProbe`].
#[derive(Properties, PartialEq, Debug)]
pub struct ConnectionProbeProps {
    /// Absolute `ws:`/`wss:` URL to open.
    pub url: AttrValue,
}

/// What the probe shows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProbeState {
    /// The socket is opening.
    Connecting,
    /// The socket is open.
    Connected,
    /// The socket closed or failed to open.
    Disconnected,
}

impl ProbeState {
    fn label(self) -> &'static str {
        match self {
            ProbeState::Connecting => "Connecting…",
            ProbeState::Connected => "Connected",
            ProbeState::Disconnected => "Disconnected",
        }
    }
}

/// Owns a socket and its JS callbacks; dropping it detaches the callbacks
/// before closing, so no closure outlives the component.
struct ProbeSocket {
    socket: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_close: Closure<dyn FnMut(Event)>,
}

impl Drop for ProbeSocket {
    fn drop(&mut self) {
        self.socket.set_onopen(None);
        self.socket.set_onclose(None);
        self.socket.set_onerror(None);
        // Closing an already closed socket is a no-op; an error here has no
        // one to report to.
        let _ = self.socket.close();
    }
}

/// Shows "Connected" once a WebSocket to `url` opens.
#[function_component(ConnectionProbe)]
pub fn connection_probe(props: &ConnectionProbeProps) -> Html {
    let state = use_state(|| ProbeState::Connecting);
    {
        let state = state.clone();
        use_effect_with(props.url.clone(), move |url| {
            state.set(ProbeState::Connecting);
            let socket = match WebSocket::new(url) {
                Ok(socket) => {
                    let on_open = {
                        let state = state.clone();
                        Closure::<dyn FnMut(Event)>::new(move |_| state.set(ProbeState::Connected))
                    };
                    let on_close = {
                        let state = state.clone();
                        Closure::<dyn FnMut(Event)>::new(move |_| {
                            state.set(ProbeState::Disconnected)
                        })
                    };
                    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
                    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
                    Some(ProbeSocket {
                        socket,
                        _on_open: on_open,
                        _on_close: on_close,
                    })
                }
                Err(_) => {
                    state.set(ProbeState::Disconnected);
                    None
                }
            };
            move || drop(socket)
        });
    }
    let class = match *state {
        ProbeState::Connected => "probe probe--connected",
        ProbeState::Connecting => "probe probe--connecting",
        ProbeState::Disconnected => "probe probe--disconnected",
    };
    html! {
        <p class={class} role="status" aria-live="polite" data-state={format!("{:?}", *state)}>
            { state.label() }
        </p>
    }
}
