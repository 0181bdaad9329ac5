use std::rc::Rc;

use serde::Serialize;
use serde_json::Value;
use yew::prelude::*;

use crate::core::{
    CancelError, ConnectionStatus, DeliveryState, Endpoints, Inbound, MessageId, RestoreError,
    SendError, SendOptions, Stats, TimelineEntry, Transport,
};
use crate::yew::driver::{Driver, SocketCounts};
use crate::yew::error::{NoProviderError, SocketError};
use crate::yew::provider::SocketContext;

/// The nearest provider's connection: send, follow what was sent, read the
/// status and stats, retry or close. Cheap to clone; a component that holds
/// one re-renders when the status or a message state changes.
///
/// ```no_run
/// use heartline::yew::use_socket;
/// use serde_json::json;
/// use yew::prelude::*;
///
/// #[function_component(SendButton)]
/// fn send_button() -> Html {
///     let socket = use_socket();
///     let onclick = {
///         let socket = socket.clone();
///         Callback::from(move |_| {
///             let msg = json!({"socketType": "chat.send", "room": "lobby", "text": "hi"});
///             if let Err(error) = socket.send(msg) {
///                 web_sys::console::warn_1(&error.to_string().into());
///             }
///         })
///     };
///     html! { <button {onclick}>{ socket.status().description(0) }</button> }
/// }
/// ```
#[derive(Clone, PartialEq, Debug)]
pub struct SocketHandle {
    context: SocketContext,
}

impl SocketHandle {
    fn driver(&self) -> &Rc<Driver> {
        &self.context.driver
    }

    /// Sends a reliable message (a JSON object with a `socketType`): it gets
    /// an `id`, goes out now if the link is open or waits in the outbox, is
    /// re-sent after every reconnect until the server acks it, and is never
    /// handled twice by the server. Follow it with
    /// [`message_state`](Self::message_state).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let id = socket
    ///     .send(serde_json::json!({"socketType": "chat.send", "room": "lobby", "text": "hi"}))
    ///     .expect("outbox has room");
    /// # let _ = id;
    /// ```
    pub fn send(&self, message: Value) -> Result<MessageId, SendError> {
        self.driver().send(message, SendOptions::default())
    }

    /// [`send`](Self::send) with options (a time-to-live after which the
    /// message fails instead of going out stale).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// use heartline::core::SendOptions;
    /// let msg = serde_json::json!({"socketType": "chat.send", "room": "lobby", "text": "hi"});
    /// let _ = socket.send_with(msg, SendOptions { ttl: Some(60_000) });
    /// ```
    pub fn send_with(&self, message: Value, options: SendOptions) -> Result<MessageId, SendError> {
        self.driver().send(message, options)
    }

    /// [`send`](Self::send) for any serializable message type (a tagged
    /// protocol enum, say).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// #[derive(serde::Serialize)]
    /// #[serde(tag = "socketType", rename = "chat.send")]
    /// struct ChatSend { room: String, text: String }
    /// let _ = socket.send_message(&ChatSend { room: "lobby".into(), text: "hi".into() });
    /// ```
    pub fn send_message<T: Serialize>(&self, message: &T) -> Result<MessageId, SendError> {
        self.send(to_value(message)?)
    }

    /// Sends a volatile message (typing indicator, cursor): only when open,
    /// never queued, never re-sent. Fails with [`SendError::NotOpen`] when the
    /// link is down, [`SendError::Congested`] while the socket's buffer is
    /// over the high-water mark, and [`SendError::RateLimited`] over the pace
    /// the server announced.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let _ = socket.send_volatile(serde_json::json!({"socketType": "typing", "room": "lobby"}));
    /// ```
    pub fn send_volatile(&self, message: Value) -> Result<(), SendError> {
        self.driver().send_volatile(message)
    }

    /// [`send_volatile`](Self::send_volatile) for any serializable type.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// #[derive(serde::Serialize)]
    /// #[serde(tag = "socketType", rename = "typing")]
    /// struct Typing { room: String }
    /// let _ = socket.send_volatile_message(&Typing { room: "lobby".into() });
    /// ```
    pub fn send_volatile_message<T: Serialize>(&self, message: &T) -> Result<(), SendError> {
        self.send_volatile(to_value(message)?)
    }

    /// Where a reliable message is: queued, sent, acked or failed (and why).
    /// `None` for an id this provider never saw.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// # let id: heartline::core::MessageId = unimplemented!();
    /// use heartline::core::DeliveryState;
    /// let acked = socket.message_state(&id) == Some(DeliveryState::Acked);
    /// # let _ = acked;
    /// ```
    pub fn message_state(&self, id: &MessageId) -> Option<DeliveryState> {
        self.context
            .view
            .messages
            .get(id)
            .cloned()
            .or_else(|| self.driver().delivery_state(id))
    }

    /// Withdraws a queued message (not one already written to the socket).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// # let id: heartline::core::MessageId = unimplemented!();
    /// let _ = socket.cancel(&id);
    /// ```
    pub fn cancel(&self, id: &MessageId) -> Result<(), CancelError> {
        self.driver().cancel(id)
    }

    /// The connection's state, as of the last render.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let open = socket.status().is_open();
    /// # let _ = open;
    /// ```
    pub fn status(&self) -> ConnectionStatus {
        self.context.view.status.clone()
    }

    /// What carries the link: the transport of the open link, or of the
    /// last attempt while connecting or waiting (WebSocket before the
    /// first). The core only names it in [`ConnectionStatus::Open`]; this
    /// also answers in between, e.g. for a `data-transport` attribute.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// use heartline::core::Transport;
    /// let polling = socket.transport() == Transport::LongPoll;
    /// # let _ = polling;
    /// ```
    pub fn transport(&self) -> Transport {
        match self.status() {
            ConnectionStatus::Open { transport, .. } => transport,
            _ => self.driver().transport(),
        }
    }

    /// Counters (frames, bytes, reconnects, invalid frames, queued, in
    /// flight, round-trip time), read live.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let waiting = socket.stats().queued + socket.stats().in_flight;
    /// # let _ = waiting;
    /// ```
    pub fn stats(&self) -> Stats {
        self.driver().stats()
    }

    /// The connection timeline, oldest first (at most
    /// [`Config::timeline_limit`](crate::core::Config::timeline_limit)
    /// entries): state changes, scheduled retries, heartbeat losses,
    /// degradation, refused frames, refusals by the server, rate limiting,
    /// drained backlogs. A component holding the handle re-renders when an
    /// entry is added.
    ///
    /// ```no_run
    /// use heartline::yew::use_socket;
    /// use yew::prelude::*;
    ///
    /// #[function_component(Timeline)]
    /// fn timeline() -> Html {
    ///     let socket = use_socket();
    ///     html! {
    ///         <ol>{ for socket.timeline().iter().rev().map(|entry| html! {
    ///             <li>{ entry.event.to_string() }</li>
    ///         }) }</ol>
    ///     }
    /// }
    /// ```
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        self.driver().timeline()
    }

    /// The last 60 round-trip times (ms), oldest first, read live: for a
    /// latency sparkline ([`use_rtt_history`](crate::yew::use_rtt_history)
    /// refreshes it every second).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let samples = socket.rtt_history();
    /// let worst = samples.iter().copied().fold(0.0, f64::max);
    /// # let _ = worst;
    /// ```
    pub fn rtt_history(&self) -> Vec<f64> {
        self.driver().rtt_history()
    }

    /// The last error the layer reported (rejected frame, decode failure).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// if let Some(error) = socket.last_error() { web_sys::console::warn_1(&error.to_string().into()); }
    /// ```
    pub fn last_error(&self) -> Option<SocketError> {
        self.context.view.last_error.clone()
    }

    /// Skips the backoff wait and connects now; after the layer gave up, it
    /// starts afresh.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// socket.retry_now();
    /// ```
    pub fn retry_now(&self) {
        // A tab that shares the connection asks the leading tab.
        if self.driver().forward_retry() {
            return;
        }
        let event = if matches!(self.driver().status(), ConnectionStatus::Closed) {
            crate::core::Event::Start
        } else {
            crate::core::Event::RetryNow
        };
        self.driver().feed(event);
    }

    /// Closes the connection on purpose: no reconnect until
    /// [`retry_now`](Self::retry_now). Unsent messages stay in the outbox.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// socket.close();
    /// ```
    pub fn close(&self) {
        self.driver().close();
    }

    /// Registers a message re-sent on every (re)connect, after the greeting:
    /// a room join, a metrics subscription. With `resume_stream`, its `since`
    /// field is set to the last sequence number delivered on that stream, so
    /// the server sends only what was missed. Sent at once if open.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let join = serde_json::json!({"socketType": "join", "room": "lobby"});
    /// let _ = socket.add_standing("room:lobby", join, Some("lobby".into()));
    /// ```
    pub fn add_standing(
        &self,
        key: impl Into<String>,
        message: Value,
        resume_stream: Option<String>,
    ) -> Result<(), SendError> {
        self.driver()
            .add_standing(key.into(), message, resume_stream, None)
    }

    /// [`add_standing`](Self::add_standing) with the frame that ends it on
    /// the server, sent by [`leave_standing`](Self::leave_standing). Tabs
    /// that share one connection subscribe to the union of their standing
    /// messages: the `leave` goes out only when the last tab lets go.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let join = serde_json::json!({"socketType": "join", "room": "lobby"});
    /// let leave = serde_json::json!({"socketType": "leave", "room": "lobby"});
    /// let _ = socket.add_standing_with_leave("room:lobby", join, Some("lobby".into()), Some(leave));
    /// ```
    pub fn add_standing_with_leave(
        &self,
        key: impl Into<String>,
        message: Value,
        resume_stream: Option<String>,
        leave: Option<Value>,
    ) -> Result<(), SendError> {
        self.driver()
            .add_standing(key.into(), message, resume_stream, leave)
    }

    /// Ends a standing message: no longer re-sent, the position of
    /// `stream` forgotten (a later join starts from the server's recent
    /// history), and `leave` sent as a volatile message while the link is
    /// open (a closed link means the server already forgot the
    /// membership). With a shared connection, the `leave` goes out only
    /// when no other tab holds the subscription.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let leave = serde_json::json!({"socketType": "leave", "room": "lobby"});
    /// socket.leave_standing("room:lobby", Some("lobby".into()), Some(leave));
    /// ```
    pub fn leave_standing(&self, key: &str, stream: Option<String>, leave: Option<Value>) {
        self.driver().leave_standing(key, stream, leave);
    }

    /// Which tab leads the shared connection, when the provider shares one
    /// with the browser's other tabs ([`SocketProviderProps::share`](crate::yew::SocketProviderProps::share)).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let leading = socket.share().is_some_and(|info| info.leading());
    /// # let _ = leading;
    /// ```
    pub fn share(&self) -> Option<crate::yew::ShareInfo> {
        self.context.view.share.clone()
    }

    /// Stops re-sending a standing message (the app sends its own `leave`).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// socket.remove_standing("room:lobby");
    /// ```
    pub fn remove_standing(&self, key: &str) -> Option<Value> {
        self.driver().remove_standing(key)
    }

    /// Forgets where `stream` resumes: the next subscription to it starts
    /// from what the server sends first (its recent history), not after
    /// the last message seen. For a view that is gone and will load afresh.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// socket.remove_standing("room:lobby");
    /// socket.forget_stream("lobby");
    /// ```
    pub fn forget_stream(&self, stream: &str) {
        self.driver().forget_stream(stream);
    }

    /// The unacked messages as JSON, to keep across a reload (localStorage).
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let saved = socket.export_outbox();
    /// assert!(saved.starts_with('{'));
    /// ```
    pub fn export_outbox(&self) -> String {
        self.driver().export_outbox()
    }

    /// Puts messages saved by [`export_outbox`](Self::export_outbox) back;
    /// they go out once, with their original ids.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// # let saved = String::new();
    /// let _ = socket.restore_outbox(&saved);
    /// ```
    pub fn restore_outbox(&self, json: &str) -> Result<Vec<MessageId>, RestoreError> {
        self.driver().restore_outbox(json)
    }

    /// The last message received of a type, for a component that mounts
    /// after it arrived.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let last_sample = socket.last("metrics.sample");
    /// # let _ = last_sample;
    /// ```
    pub fn last(&self, socket_type: &str) -> Option<Inbound> {
        self.driver().last(socket_type)
    }

    /// Browser sockets created and still alive since the provider mounted.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// assert!(socket.socket_counts().live <= 1);
    /// ```
    pub fn socket_counts(&self) -> SocketCounts {
        self.driver().counts()
    }

    /// The resolved socket URL of the server in use: connecting or open,
    /// or the one the next attempt opens. With one URL it is that URL; with
    /// [`fallback_urls`](crate::yew::SocketProviderProps::fallback_urls) it
    /// changes on a failover.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// assert!(socket.url().starts_with("ws"));
    /// ```
    pub fn url(&self) -> String {
        self.driver().url()
    }

    /// Every resolved server URL, in failover order, and which one is in
    /// use: for a "server 2 of 3" line.
    ///
    /// ```no_run
    /// # let socket: heartline::yew::SocketHandle = unimplemented!();
    /// let endpoints = socket.endpoints();
    /// let line = format!("server {} of {}", endpoints.index() + 1, endpoints.len());
    /// # let _ = line;
    /// ```
    pub fn endpoints(&self) -> Endpoints {
        self.driver().endpoints()
    }

    pub(crate) fn report(&self, error: SocketError) {
        self.driver().report(error);
    }

    pub(crate) fn subscribe(
        &self,
        socket_type: &str,
        handler: crate::core::Handler,
    ) -> crate::core::SubscriptionGuard {
        self.driver().subscribe(socket_type, handler)
    }

    pub(crate) fn driver_ptr(&self) -> *const Driver {
        Rc::as_ptr(self.driver())
    }
}

fn to_value<T: Serialize>(message: &T) -> Result<Value, SendError> {
    serde_json::to_value(message).map_err(|_| SendError::NotAnObject)
}

/// The nearest [`SocketProvider`](crate::yew::SocketProvider)'s connection,
/// or [`NoProviderError`] outside one.
///
/// ```no_run
/// use heartline::yew::use_socket_checked;
/// use yew::prelude::*;
///
/// #[function_component(Status)]
/// fn status() -> Html {
///     match use_socket_checked() {
///         Ok(socket) => html! { socket.status().description(0) },
///         Err(error) => html! { error.to_string() },
///     }
/// }
/// ```
#[hook]
pub fn use_socket_checked() -> Result<SocketHandle, NoProviderError> {
    use_context::<SocketContext>()
        .map(|context| SocketHandle { context })
        .ok_or(NoProviderError)
}

/// The nearest [`SocketProvider`](crate::yew::SocketProvider)'s connection.
///
/// # Panics
///
/// Outside a provider, with the message of [`NoProviderError`] (it names
/// `<SocketProvider>`). Use [`use_socket_checked`] to handle that case.
///
/// ```no_run
/// use heartline::yew::use_socket;
/// use yew::prelude::*;
///
/// #[function_component(Status)]
/// fn status() -> Html {
///     let socket = use_socket();
///     html! { socket.status().description(0) }
/// }
/// ```
#[hook]
pub fn use_socket() -> SocketHandle {
    match use_socket_checked() {
        Ok(handle) => handle,
        Err(error) => panic!("{error}"),
    }
}
