//! The browser driver: one link at a time (a WebSocket, or a long-poll
//! session where the upgrade is refused), the upgrade probe, the core's
//! timers, and the page's `online`/`offline`/`visibilitychange` signals, all
//! fed to the sans-IO [`Connection`]. It owns every JS closure, listener and
//! fetch it creates and drops them with the link or the driver: nothing is
//! leaked with `Closure::forget`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, VisibilityState, WebSocket};
use yew::Callback;

use crate::core::{
    Action, CancelError, Config, Connection, ConnectionStatus, DeliveryState, Endpoints,
    Event as CoreEvent, FrameData, Inbound, MessageId, Millis, Registry, RestoreError, SendError,
    SendOptions, SocketId, Stats, SubscriptionGuard, TimelineEntry, TimerKind, Transport,
    poll::poll_base,
};

use super::error::SocketError;
use super::poll::PollLink;
use super::probe::ProbeSocket;

/// What the driver tells the provider, which turns it into renderable state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Notice {
    Status(ConnectionStatus),
    Message(MessageId, DeliveryState),
    Error(SocketError),
    /// The timeline grew: this many entries were ever logged.
    Timeline(u64),
    /// Which tab leads a shared connection changed (or how many share it).
    Share(super::ShareInfo),
    /// The messages this tab answers for changed without a message state
    /// (a shared connection moved some between tabs): save them.
    OutboxChanged,
}

/// How many links (browser WebSockets, or long-poll sessions where the
/// upgrade is refused) a provider has created and how many are still alive
/// (created and not yet closed and released). After any number of
/// reconnects `live` is at most 1. The upgrade probes of the long-poll
/// fallback are not counted: they never carry the connection.
///
/// ```
/// let counts = heartline::yew::SocketCounts { created: 21, live: 1 };
/// assert!(counts.live <= 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketCounts {
    /// Links opened since the provider mounted.
    pub created: u32,
    /// Links not yet closed and released.
    pub live: u32,
}

/// The app's greeting builder, called afresh on every (re)connect.
pub(crate) type GreetingCallback = Callback<(), Option<Value>>;

pub(crate) struct Driver {
    /// Holds the server URLs too and picks one for every attempt. While
    /// this tab follows a shared connection it is never started: it keeps
    /// the tab's own messages, subscriptions and stream positions, ready
    /// should the tab lead.
    pub(crate) core: RefCell<Connection>,
    pub(crate) registry: Registry,
    config: Config,
    urls: Vec<String>,
    /// Sharing one connection with the browser's other tabs, when on.
    pub(crate) share: RefCell<Option<super::share::Shared>>,
    /// This tab's standing subscriptions with their `leave` frames (the
    /// connection, when shared, subscribes to the union over the tabs).
    pub(crate) own_standing: RefCell<std::collections::BTreeMap<String, super::share::OwnStanding>>,
    /// The provider's storage key for unsent messages.
    pub(crate) persist_key: RefCell<Option<String>>,
    io: RefCell<Io>,
    /// Work queued while the driver is busy: events first go through the
    /// core, actions are carried out in order. A handler or callback that
    /// calls back into the driver (to send, say) only queues.
    events: RefCell<VecDeque<CoreEvent>>,
    actions: RefCell<VecDeque<Action>>,
    pumping: Cell<bool>,
    /// The core's timeline version last told to the provider.
    timeline_seen: Cell<u64>,
    /// The socket written to since its `bufferedAmount` was last reported.
    wrote_on: Cell<Option<SocketId>>,
    /// The transport of the last link opened (the core only shows it in
    /// the `Open` status).
    pub(crate) transport: Cell<Transport>,
    notify: RefCell<Option<Callback<Notice>>>,
    greeting: Rc<RefCell<Option<GreetingCallback>>>,
    counts: Rc<Cell<SocketCounts>>,
    pub(crate) weak_self: Weak<Driver>,
}

/// Drivers are compared by identity: the same connection or another one.
impl PartialEq for Driver {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("endpoints", self.core.borrow().endpoints())
            .field("status", &self.core.borrow().status())
            .field("counts", &self.counts.get())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Io {
    /// The connection's link, connecting or open.
    link: Option<Link>,
    /// The upgrade probe, while one runs.
    probe: Option<ProbeSocket>,
    timers: HashMap<TimerKind, Timeout>,
    listeners: Vec<EventListener>,
}

/// The connection's link: the core treats both kinds as one socket.
enum Link {
    Socket(BrowserSocket),
    Poll(PollLink),
}

impl Link {
    fn id(&self) -> SocketId {
        match self {
            Link::Socket(live) => live.id,
            Link::Poll(poll) => poll.id(),
        }
    }

    /// Writes a frame; `false` when the browser refused it at once.
    fn send(&self, text: String) -> bool {
        match self {
            Link::Socket(live) => live.ws.send_with_str(&text).is_ok(),
            Link::Poll(poll) => {
                poll.send(text);
                true
            }
        }
    }

    /// Bytes written and not yet on the wire (a WebSocket's
    /// `bufferedAmount`) or not yet acknowledged (a poll link's queue).
    fn buffered_amount(&self) -> u64 {
        match self {
            Link::Socket(live) => u64::from(live.ws.buffered_amount()),
            Link::Poll(poll) => poll.buffered_amount(),
        }
    }

    fn close(self, code: u16, reason: &str) {
        match self {
            Link::Socket(live) => live.close(code, reason),
            // Dropping it aborts its fetches and closes the session.
            Link::Poll(poll) => drop(poll),
        }
    }
}

/// Milliseconds since the epoch, the core's clock.
pub(crate) fn now() -> Millis {
    // Date.now() is a positive whole number of ms well inside u64.
    js_sys::Date::now().max(0.0) as Millis
}

fn random_seed() -> u64 {
    let high = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    let low = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    (high << 32) ^ low ^ now()
}

impl Driver {
    /// A driver for the resolved socket `urls`, in failover order.
    pub(crate) fn new(urls: Vec<String>, config: Config) -> Rc<Driver> {
        Rc::new_cyclic(|weak_self| {
            let registry = Registry::new();
            let greeting: Rc<RefCell<Option<GreetingCallback>>> = Rc::default();
            let core = new_core(&config, &urls, &registry, &greeting);
            Driver {
                core: RefCell::new(core),
                registry,
                config,
                urls,
                share: RefCell::default(),
                own_standing: RefCell::default(),
                persist_key: RefCell::default(),
                io: RefCell::default(),
                events: RefCell::default(),
                actions: RefCell::default(),
                pumping: Cell::new(false),
                timeline_seen: Cell::new(0),
                wrote_on: Cell::new(None),
                transport: Cell::new(Transport::WebSocket),
                notify: RefCell::default(),
                greeting,
                counts: Rc::default(),
                weak_self: weak_self.clone(),
            }
        })
    }

    /// A new, idle core like the first (a tab that stops leading a shared
    /// connection starts over with one).
    pub(crate) fn fresh_core(&self) -> Connection {
        new_core(&self.config, &self.urls, &self.registry, &self.greeting)
    }

    /// The URL in use (connecting or open, or the next attempt's).
    pub(crate) fn url(&self) -> String {
        self.core.borrow().endpoint().unwrap_or_default().to_owned()
    }

    pub(crate) fn endpoints(&self) -> Endpoints {
        self.core.borrow().endpoints().clone()
    }

    pub(crate) fn set_greeting(&self, greeting: Option<GreetingCallback>) {
        *self.greeting.borrow_mut() = greeting;
    }

    /// Starts listening to the page and connecting; `notify` receives every
    /// status, message-state and error change. With `share`, the tabs of
    /// this origin elect one to connect and the others go through it.
    pub(crate) fn start(&self, notify: Callback<Notice>, share: Option<&super::ShareOptions>) {
        *self.notify.borrow_mut() = Some(notify);
        self.listen_to_page();
        if let Some(share) = share
            && self.start_sharing(share)
        {
            return;
        }
        self.connect();
    }

    /// Starts the core connecting (a tab that shares its connection does
    /// so when it becomes the leader). Without WebSocket the core
    /// long-polls (or fails, with the fallback off); either way the page's
    /// network state applies.
    pub(crate) fn connect(&self) {
        if web_socket_supported() {
            self.feed(CoreEvent::Start);
        } else {
            self.feed(CoreEvent::Unsupported);
        }
        if !navigator_online() {
            self.feed(CoreEvent::Offline);
        }
    }

    /// Closes the link on purpose and releases the socket, its closures,
    /// every timer and listener. The driver stays usable (`start` again).
    pub(crate) fn shutdown(&self) {
        self.stop_sharing();
        self.release_link();
        self.io.borrow_mut().listeners.clear();
        *self.notify.borrow_mut() = None;
    }

    /// Closes the link on purpose (the core stops) and releases the socket,
    /// the probe and every timer; the page listeners stay.
    pub(crate) fn release_link(&self) {
        self.feed(CoreEvent::Stop);
        let mut io = self.io.borrow_mut();
        let link = io.link.take();
        let probe = io.probe.take();
        io.timers.clear();
        drop(io);
        // Dropped with no borrow held: a poll link's drop starts its close.
        drop((link, probe));
    }

    fn listen_to_page(&self) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let mut listeners = Vec::with_capacity(3);
        let weak = self.weak_self.clone();
        listeners.push(EventListener::new(&window, "online", move |_| {
            page_event_weak(&weak, CoreEvent::Online)
        }));
        let weak = self.weak_self.clone();
        listeners.push(EventListener::new(&window, "offline", move |_| {
            page_event_weak(&weak, CoreEvent::Offline)
        }));
        // A tab that closes (or navigates away) says goodbye to the tabs it
        // shares with; `pagehide` is the last event a page reliably gets.
        let weak = self.weak_self.clone();
        listeners.push(EventListener::new(&window, "pagehide", move |_| {
            if let Some(driver) = weak.upgrade() {
                driver.page_leaving();
            }
        }));
        if let Some(document) = window.document() {
            let weak = self.weak_self.clone();
            let doc = document.clone();
            listeners.push(EventListener::new(
                &document,
                "visibilitychange",
                move |_| {
                    let hidden = doc.visibility_state() == VisibilityState::Hidden;
                    let event = if hidden {
                        CoreEvent::Hidden
                    } else {
                        CoreEvent::Visible
                    };
                    if let Some(driver) = weak.upgrade() {
                        driver.share_visibility(!hidden);
                    }
                    page_event_weak(&weak, event)
                },
            ));
        }
        self.io.borrow_mut().listeners = listeners;
    }

    pub(crate) fn feed(&self, event: CoreEvent) {
        self.events.borrow_mut().push_back(event);
        self.pump();
    }

    /// Runs queued actions, then queued events, until both are empty. Not
    /// re-entrant: a nested call only queues, and the outer loop picks it up,
    /// so actions are carried out in the order the core produced them and no
    /// `RefCell` is borrowed while app code (handlers, callbacks) runs.
    pub(crate) fn pump(&self) {
        if self.pumping.replace(true) {
            return;
        }
        loop {
            let next_action = self.actions.borrow_mut().pop_front();
            if let Some(action) = next_action {
                self.perform(action);
                continue;
            }
            // A batch of writes is done: tell the core what the browser
            // really buffers, so its estimate can fall as well as grow.
            if let Some(event) = self.wrote_on.take().and_then(|s| self.buffered_amount(s)) {
                self.events.borrow_mut().push_front(event);
            }
            let next_event = self.events.borrow_mut().pop_front();
            let Some(event) = next_event else { break };
            let produced = self.core.borrow_mut().handle(now(), event);
            self.actions.borrow_mut().extend(produced);
        }
        self.pumping.set(false);
        self.share_flush();
        // One notice per batch in which the timeline grew (not per frame).
        let version = self.core.borrow().timeline_version();
        if self.timeline_seen.replace(version) != version {
            self.emit(Notice::Timeline(version));
        }
    }

    /// Queues what a core method (send, cancel, …) left to do, and does it.
    pub(crate) fn flush_core(&self) {
        let produced = self.core.borrow_mut().drain_actions();
        self.actions.borrow_mut().extend(produced);
        self.pump();
    }

    fn perform(&self, action: Action) {
        match action {
            Action::Open { socket, transport } => self.open(socket, transport),
            Action::Probe { probe } => self.start_probe(probe),
            Action::EndProbe { probe } => {
                let ended = {
                    let mut io = self.io.borrow_mut();
                    match &io.probe {
                        Some(running) if running.id() == probe => io.probe.take(),
                        _ => None,
                    }
                };
                drop(ended);
            }
            Action::SendFrame { socket, text } => {
                let failed = {
                    let io = self.io.borrow();
                    match &io.link {
                        Some(live) if live.id() == socket => !live.send(text),
                        // The core only writes to the socket it opened; a
                        // mismatch means it is already gone.
                        _ => false,
                    }
                };
                if failed {
                    self.events
                        .borrow_mut()
                        .push_back(CoreEvent::Error { socket });
                } else {
                    self.wrote_on.set(Some(socket));
                }
            }
            Action::Close {
                socket,
                code,
                reason,
            } => {
                let closing = {
                    let mut io = self.io.borrow_mut();
                    match &io.link {
                        Some(live) if live.id() == socket => io.link.take(),
                        _ => None,
                    }
                };
                if let Some(live) = closing {
                    live.close(code, &reason);
                }
            }
            Action::SetTimer { kind, at } => {
                let delay = at.saturating_sub(now()).min(u64::from(u32::MAX)) as u32;
                let weak = self.weak_self.clone();
                let timeout = Timeout::new(delay, move || {
                    if let Some(driver) = weak.upgrade() {
                        driver.timer_fired(kind);
                    }
                });
                // Replacing the entry drops (cancels) the pending timer.
                self.io.borrow_mut().timers.insert(kind, timeout);
            }
            Action::CancelTimer(kind) => {
                self.io.borrow_mut().timers.remove(&kind);
            }
            Action::Deliver(inbound) => {
                if self.share_deliver(&inbound) {
                    self.registry.dispatch(&inbound);
                }
            }
            Action::StatusChanged(status) => {
                // A follower shows the leader's connection, not its idle core.
                if !self.following() {
                    self.share_status_changed();
                    self.emit(Notice::Status(status));
                }
            }
            Action::MessageState { id, state } => {
                self.share_message_state(&id, &state);
                self.emit(Notice::Message(id, state));
            }
            Action::Report(report) => self.emit(Notice::Error(SocketError::Report(report))),
        }
    }

    pub(crate) fn emit(&self, notice: Notice) {
        let notify = self.notify.borrow().clone();
        if let Some(notify) = notify {
            notify.emit(notice);
        }
    }

    pub(crate) fn report(&self, error: SocketError) {
        self.emit(Notice::Error(error));
    }

    fn timer_fired(&self, kind: TimerKind) {
        // The timeout has run; forget it so a later SetTimer starts afresh.
        self.io.borrow_mut().timers.remove(&kind);
        if kind == TimerKind::Flush {
            // Tell the core what the browser really holds back; it polls
            // again until the buffer drains.
            let live = self.io.borrow().link.as_ref().map(Link::id);
            if let Some(event) = live.and_then(|socket| self.buffered_amount(socket)) {
                self.feed(event);
                return;
            }
        }
        self.feed(CoreEvent::TimerFired(kind));
    }

    /// The live link's real `bufferedAmount`, if `socket` is still live.
    fn buffered_amount(&self, socket: SocketId) -> Option<CoreEvent> {
        let io = self.io.borrow();
        let live = io.link.as_ref().filter(|live| live.id() == socket)?;
        Some(CoreEvent::BufferedAmount {
            socket,
            bytes: live.buffered_amount(),
        })
    }

    fn open(&self, socket: SocketId, transport: Transport) {
        // The core closes a socket before it opens the next; dropping any
        // leftover here keeps "one link at a time" true regardless.
        let old = self.io.borrow_mut().link.take();
        drop(old);
        self.transport.set(transport);
        // The core chose the server for this attempt.
        let url = self.url();
        let opened = match transport {
            Transport::WebSocket => {
                BrowserSocket::open(&url, socket, &self.weak_self, &self.counts)
                    .map(Link::Socket)
                    .map_err(|_| {
                        if web_socket_supported() {
                            // A URL the browser rejects outright fails
                            // like an attempt.
                            CoreEvent::Error { socket }
                        } else {
                            CoreEvent::Unsupported
                        }
                    })
            }
            Transport::LongPoll => poll_base(&url)
                .map(|base| Link::Poll(PollLink::open(base, socket, &self.weak_self, &self.counts)))
                // Not a ws:// or wss:// URL: nowhere to poll.
                .ok_or(CoreEvent::Error { socket }),
        };
        match opened {
            Ok(link) => self.io.borrow_mut().link = Some(link),
            Err(event) => self.events.borrow_mut().push_back(event),
        }
    }

    fn start_probe(&self, probe: SocketId) {
        // The core ends a probe before it starts the next.
        let old = self.io.borrow_mut().probe.take();
        drop(old);
        let url = self.url();
        match ProbeSocket::open(&url, probe, &self.weak_self) {
            Ok(running) => self.io.borrow_mut().probe = Some(running),
            // No WebSocket, or a URL the browser rejects: the upgrade
            // cannot work.
            Err(_) => self
                .events
                .borrow_mut()
                .push_back(CoreEvent::ProbeFailed { probe }),
        }
    }

    /// The probe's first outcome: release it and tell the core. Later
    /// outcomes cannot come (its handlers are detached when it drops).
    pub(super) fn probe_ended(&self, probe: SocketId, opened: bool) {
        let ended = {
            let mut io = self.io.borrow_mut();
            match &io.probe {
                Some(running) if running.id() == probe => io.probe.take(),
                _ => None,
            }
        };
        let Some(ended) = ended else { return };
        drop(ended);
        self.feed(if opened {
            CoreEvent::ProbeOpened { probe }
        } else {
            CoreEvent::ProbeFailed { probe }
        });
    }

    // --- the app-facing API, used by SocketHandle -------------------------

    pub(crate) fn send(&self, value: Value, options: SendOptions) -> Result<MessageId, SendError> {
        // A follower's idle core validates, names and keeps the message;
        // the leader sends it.
        let result = self.core.borrow_mut().send(now(), value, options);
        self.flush_core();
        if let Ok(id) = &result
            && self.following()
        {
            self.forward_send(id);
        }
        result
    }

    pub(crate) fn send_volatile(&self, value: Value) -> Result<(), SendError> {
        if self.following() {
            return self.forward_volatile(value);
        }
        let result = self.core.borrow_mut().send_volatile_at(now(), value);
        self.flush_core();
        result
    }

    pub(crate) fn cancel(&self, id: &MessageId) -> Result<(), CancelError> {
        if self.following() {
            // While the leader's link is open it has most likely written
            // the message already: too late, as for a tab of its own.
            if self.core.borrow().delivery_state(id).is_none() {
                return Err(CancelError::NotFound);
            }
            if self.shared_link_open() {
                return Err(CancelError::InFlight);
            }
            let result = self.core.borrow_mut().cancel(id);
            self.flush_core();
            if result.is_ok() {
                self.forward_cancel(id);
            }
            return result;
        }
        let result = self.core.borrow_mut().cancel(id);
        self.flush_core();
        result
    }

    /// Adds a standing subscription; `leave` is what ends it on the server
    /// (sent by [`leave_standing`](Self::leave_standing)).
    pub(crate) fn add_standing(
        &self,
        key: String,
        value: Value,
        resume_stream: Option<String>,
        leave: Option<Value>,
    ) -> Result<(), SendError> {
        let joined = self.share_add_standing(&key, &value, resume_stream.as_deref(), leave);
        if joined == Some(crate::core::share::Joined::Again) {
            // The connection follows it for another tab already: show this
            // tab what a fresh join would have.
            if let Some(stream) = &resume_stream {
                self.share_replay_here(stream);
            }
            return Ok(());
        }
        let result = self
            .core
            .borrow_mut()
            .add_standing(key, value, resume_stream);
        self.flush_core();
        result
    }

    /// Ends a standing subscription: no longer re-sent, its stream's
    /// position forgotten (a later join starts from the server's recent
    /// history), and `leave` sent while the link is open. With a shared
    /// connection, only once no tab holds it any more.
    pub(crate) fn leave_standing(&self, key: &str, stream: Option<String>, leave: Option<Value>) {
        match self.share_leave_standing(key) {
            // Following: the idle core forgets it, the leader decides.
            Some(_) if self.following() => {
                self.core.borrow_mut().remove_standing(key);
                if let Some(stream) = &stream {
                    self.core.borrow_mut().forget_stream(stream);
                }
            }
            // Leading, and another tab still holds it.
            Some(false) => {}
            Some(true) | None => self.leave_on_connection(key, stream, leave),
        }
    }

    /// Stops re-sending a standing message; returns it (the app sends its
    /// own `leave`).
    pub(crate) fn remove_standing(&self, key: &str) -> Option<Value> {
        let value = self
            .own_standing
            .borrow()
            .get(key)
            .map(|own| own.value().clone());
        // Leading a shared connection that another tab still needs it on:
        // the connection keeps it, as `leave_standing` does.
        if self.share_leave_standing(key) == Some(false) && !self.following() {
            return value;
        }
        let removed = self.core.borrow_mut().remove_standing(key);
        self.flush_core();
        removed
    }

    pub(crate) fn forget_stream(&self, stream: &str) {
        self.core.borrow_mut().forget_stream(stream);
    }

    pub(crate) fn export_outbox(&self) -> String {
        // With a shared connection, only the messages this tab answers for.
        self.own_outbox()
            .unwrap_or_else(|| self.core.borrow().export_outbox())
    }

    pub(crate) fn restore_outbox(&self, json: &str) -> Result<Vec<MessageId>, RestoreError> {
        let result = self.core.borrow_mut().restore_outbox(now(), json);
        self.flush_core();
        result
    }

    pub(crate) fn outbox_is_empty(&self) -> bool {
        self.own_outbox_is_empty()
            .unwrap_or_else(|| self.core.borrow().outbox_ids().is_empty())
    }

    pub(crate) fn delivery_state(&self, id: &MessageId) -> Option<DeliveryState> {
        self.core.borrow().delivery_state(id)
    }

    pub(crate) fn status(&self) -> ConnectionStatus {
        self.shared_status()
            .unwrap_or_else(|| self.core.borrow().status())
    }

    pub(crate) fn stats(&self) -> Stats {
        match self.shared_link() {
            Some(link) => link.stats,
            None => self.core.borrow().stats(),
        }
    }

    pub(crate) fn timeline(&self) -> Vec<TimelineEntry> {
        self.core.borrow().timeline().cloned().collect()
    }

    pub(crate) fn rtt_history(&self) -> Vec<f64> {
        self.core.borrow().rtt_history()
    }

    pub(crate) fn counts(&self) -> SocketCounts {
        self.counts.get()
    }

    pub(crate) fn transport(&self) -> Transport {
        match self.shared_link() {
            Some(link) => link.transport,
            None => self.transport.get(),
        }
    }

    pub(crate) fn subscribe(
        &self,
        socket_type: &str,
        handler: crate::core::Handler,
    ) -> SubscriptionGuard {
        self.registry.subscribe(socket_type, handler)
    }

    pub(crate) fn last(&self, socket_type: &str) -> Option<Inbound> {
        self.registry.last(socket_type)
    }
}

/// The page's network and visibility events: for the core that holds the
/// link (a follower's idle core must not start on `online`).
fn page_event_weak(weak: &Weak<Driver>, event: CoreEvent) {
    if let Some(driver) = weak.upgrade()
        && !driver.following()
    {
        driver.feed(event);
    }
}

fn new_core(
    config: &Config,
    urls: &[String],
    registry: &Registry,
    greeting: &Rc<RefCell<Option<GreetingCallback>>>,
) -> Connection {
    let mut core = Connection::new(config.clone(), random_seed());
    core.set_endpoints(urls.to_vec());
    core.set_registry(Some(registry.clone()));
    let provider = Rc::clone(greeting);
    core.set_greeting(Some(Box::new(move || {
        provider.borrow().as_ref().and_then(|make| make.emit(()))
    })));
    core
}

pub(super) fn feed_weak(weak: &Weak<Driver>, event: CoreEvent) {
    if let Some(driver) = weak.upgrade() {
        driver.feed(event);
    }
}

fn web_socket_supported() -> bool {
    web_sys::window()
        .map(|w| js_sys::Reflect::has(&w, &"WebSocket".into()).unwrap_or(false))
        .unwrap_or(false)
}

fn navigator_online() -> bool {
    web_sys::window()
        .map(|w| w.navigator().on_line())
        .unwrap_or(true)
}

/// One browser WebSocket and the four closures it calls. Dropping it detaches
/// the closures before they are freed and closes the socket if it is still
/// connecting or open.
struct BrowserSocket {
    id: SocketId,
    ws: WebSocket,
    counts: Rc<Cell<SocketCounts>>,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl BrowserSocket {
    fn open(
        url: &str,
        id: SocketId,
        driver: &Weak<Driver>,
        counts: &Rc<Cell<SocketCounts>>,
    ) -> Result<BrowserSocket, wasm_bindgen::JsValue> {
        let ws = WebSocket::new(url)?;
        ws.set_binary_type(BinaryType::Arraybuffer);

        let weak = driver.clone();
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            feed_weak(&weak, CoreEvent::Opened { socket: id })
        });
        let weak = driver.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let frame = if let Some(text) = data.as_string() {
                FrameData::Text(text)
            } else if let Some(buffer) = data.dyn_ref::<js_sys::ArrayBuffer>() {
                FrameData::Binary(buffer.byte_length() as usize)
            } else {
                FrameData::Binary(0)
            };
            feed_weak(
                &weak,
                CoreEvent::Frame {
                    socket: id,
                    data: frame,
                },
            )
        });
        let weak = driver.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            feed_weak(
                &weak,
                CoreEvent::Closed {
                    socket: id,
                    code: event.code(),
                    reason: event.reason(),
                    was_clean: event.was_clean(),
                },
            )
        });
        let weak = driver.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            feed_weak(&weak, CoreEvent::Error { socket: id })
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        let mut c = counts.get();
        c.created += 1;
        c.live += 1;
        counts.set(c);
        Ok(BrowserSocket {
            id,
            ws,
            counts: Rc::clone(counts),
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
        })
    }

    fn close(self, code: u16, reason: &str) {
        // Browsers accept 1000 and 3000–4999 only; fall back to a plain close.
        if self.ws.close_with_code_and_reason(code, reason).is_err() {
            let _ = self.ws.close();
        }
        // Dropping `self` detaches the closures.
    }
}

impl Drop for BrowserSocket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let state = self.ws.ready_state();
        if state == WebSocket::CONNECTING || state == WebSocket::OPEN {
            // Nobody is left to hear an error from close; ignoring it is all
            // a destructor can do.
            let _ = self.ws.close_with_code_and_reason(1000, "released");
        }
        let mut c = self.counts.get();
        c.live = c.live.saturating_sub(1);
        self.counts.set(c);
    }
}
