//! The upgrade probe ([`Action::Probe`](crate::core::Action::Probe)): a
//! WebSocket opened while the link long-polls, only to learn whether the
//! upgrade works again. Nothing is sent on it; it is closed as soon as it
//! opens. It is not the connection's socket, so it is not counted in
//! [`SocketCounts`](super::SocketCounts).

use std::rc::Weak;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::WebSocket;

use crate::core::SocketId;

use super::driver::Driver;

/// One probe socket and its three closures. Dropping it detaches them
/// and closes the socket if it is still connecting or open.
pub(super) struct ProbeSocket {
    id: SocketId,
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_close: Closure<dyn FnMut(web_sys::Event)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl ProbeSocket {
    /// Opens a probe to `url`; its outcome goes to
    /// `Driver::probe_ended(id, opened)`, once.
    pub(super) fn open(
        url: &str,
        id: SocketId,
        driver: &Weak<Driver>,
    ) -> Result<ProbeSocket, wasm_bindgen::JsValue> {
        let ws = WebSocket::new(url)?;
        let weak = driver.clone();
        let socket = ws.clone();
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            // Only the upgrade was in question: close before the server
            // starts a session on it.
            let _ = socket.close_with_code_and_reason(1000, "probe");
            ended(&weak, id, true);
        });
        let weak = driver.clone();
        let on_close = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| ended(&weak, id, false));
        let weak = driver.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| ended(&weak, id, false));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(ProbeSocket {
            id,
            ws,
            _on_open: on_open,
            _on_close: on_close,
            _on_error: on_error,
        })
    }

    pub(super) fn id(&self) -> SocketId {
        self.id
    }
}

/// The driver drops the probe on its first outcome (detaching the other
/// handlers), so each probe is reported once.
fn ended(driver: &Weak<Driver>, id: SocketId, opened: bool) {
    if let Some(driver) = driver.upgrade() {
        driver.probe_ended(id, opened);
    }
}

impl Drop for ProbeSocket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let state = self.ws.ready_state();
        if state == WebSocket::CONNECTING || state == WebSocket::OPEN {
            // A destructor has nobody to tell of a failed close.
            let _ = self.ws.close_with_code_and_reason(1000, "probe ended");
        }
    }
}
