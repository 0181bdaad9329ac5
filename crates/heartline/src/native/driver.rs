//! The native driver task: owns the [`Connection`], the [`Registry`], the
//! core's timers and at most one socket, and serves the [`Client`] handles'
//! commands. It runs on a `LocalSet` (the core's registry and greeting are
//! `Rc`-based), so it is `!Send`.
//!
//! [`Client`]: super::Client

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::core::{
    Action, CancelError, Connection, ConnectionStatus, DeliveryState, Event, FrameData, Inbound,
    MessageId, Millis, Registry, Report, RestoreError, SendError, SendOptions, SocketId, Stats,
    SubscriptionGuard, TimelineEntry, TimerKind,
};

use super::poll::{PollEvent, PollLink};
use super::socket::{LiveSocket, Probe, SocketEvent, SocketSlot};
use crate::core::Transport;
use crate::core::poll::poll_base;

/// Final states remembered for [`Client::message_state`](super::Client::message_state)
/// after the core forgot the message.
const REMEMBERED_FINAL_STATES: usize = 4_096;

/// Close code reported for a link that ended without a close frame, as a
/// browser does.
const CLOSE_ABNORMAL: u16 = 1006;
/// Close code reported for a close frame without a code.
const CLOSE_NO_STATUS: u16 = 1005;

/// A message handler registered by a `Client` handle; it runs on the
/// driver's thread.
pub(super) type RemoteHandler = Box<dyn Fn(&Inbound) + Send>;

/// What a `Client` handle asks of the driver.
pub(super) enum Command {
    Send {
        value: Value,
        options: SendOptions,
        reply: oneshot::Sender<Result<MessageId, SendError>>,
    },
    SendVolatile {
        value: Value,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    Cancel {
        id: MessageId,
        reply: oneshot::Sender<Result<(), CancelError>>,
    },
    MessageState {
        id: MessageId,
        reply: oneshot::Sender<Option<DeliveryState>>,
    },
    Stats(oneshot::Sender<Stats>),
    Timeline(oneshot::Sender<Vec<TimelineEntry>>),
    RttHistory(oneshot::Sender<Vec<f64>>),
    Last {
        socket_type: String,
        reply: oneshot::Sender<Option<Inbound>>,
    },
    Subscribe {
        id: u64,
        socket_type: String,
        handler: RemoteHandler,
    },
    Unsubscribe(u64),
    AddStanding {
        key: String,
        value: Value,
        resume_stream: Option<String>,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    RemoveStanding {
        key: String,
        reply: oneshot::Sender<Option<Value>>,
    },
    ExportOutbox(oneshot::Sender<String>),
    RestoreOutbox {
        json: String,
        reply: oneshot::Sender<Result<Vec<MessageId>, RestoreError>>,
    },
    /// `Start`, `RetryNow` or `Stop`.
    Core(Event),
}

/// Where the driver publishes what the handles watch.
pub(super) struct Outlets {
    pub(super) status: watch::Sender<ConnectionStatus>,
    /// The URL of the socket connecting or open (or of the next attempt).
    pub(super) endpoint: watch::Sender<String>,
    pub(super) message_events: broadcast::Sender<(MessageId, DeliveryState)>,
    pub(super) reports: broadcast::Sender<Report>,
}

pub(super) struct Driver {
    core: Connection,
    registry: Registry,
    handlers: HashMap<u64, SubscriptionGuard>,
    commands: mpsc::UnboundedReceiver<Command>,
    outlets: Outlets,
    /// The core's clock: milliseconds since this instant.
    origin: Instant,
    /// One pending deadline per timer kind.
    timers: HashMap<TimerKind, Instant>,
    socket: SocketSlot,
    /// The upgrade probe out while long-polling, if any.
    probe: Option<Probe>,
    /// Events raised while carrying out actions (a failed write), fed next.
    pending: VecDeque<Event>,
    final_states: FinalStates,
}

impl Driver {
    /// A driver for `core`, which holds the server URLs
    /// ([`Connection::set_endpoints`]) and picks one for every attempt.
    pub(super) fn new(
        mut core: Connection,
        commands: mpsc::UnboundedReceiver<Command>,
        outlets: Outlets,
    ) -> Driver {
        let registry = Registry::new();
        core.set_registry(Some(registry.clone()));
        Driver {
            core,
            registry,
            handlers: HashMap::new(),
            commands,
            outlets,
            origin: Instant::now(),
            timers: HashMap::new(),
            socket: SocketSlot::Empty,
            probe: None,
            pending: VecDeque::new(),
            final_states: FinalStates::default(),
        }
    }

    /// Connects and runs until every `Client` handle is gone; then closes
    /// the link as `stop()` would.
    pub(super) async fn run(mut self) {
        self.feed(Event::Start);
        let sleep = tokio::time::sleep_until(far_future());
        tokio::pin!(sleep);
        loop {
            let next_timer = self.timers.values().min().copied();
            if let Some(at) = next_timer
                && sleep.deadline() != at
            {
                sleep.as_mut().reset(at);
            }
            tokio::select! {
                // Commands first: a handler guard dropped before a frame is
                // read never sees that frame.
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                () = &mut sleep, if next_timer.is_some() => self.fire_due_timers(),
                event = self.socket.next_event() => self.socket_event(event),
                (probe, opened) = Probe::outcome(&mut self.probe) => {
                    self.probe = None;
                    self.feed(if opened {
                        Event::ProbeOpened { probe }
                    } else {
                        Event::ProbeFailed { probe }
                    });
                }
            }
        }
        self.feed(Event::Stop);
        self.socket.release(None);
    }

    fn now(&self) -> Millis {
        Millis::try_from(self.origin.elapsed().as_millis()).unwrap_or(Millis::MAX)
    }

    fn instant_at(&self, at: Millis) -> Instant {
        self.origin
            .checked_add(Duration::from_millis(at))
            .unwrap_or_else(far_future)
    }

    // ---- feeding the core ----

    fn feed(&mut self, event: Event) {
        let actions = self.core.handle(self.now(), event);
        self.perform_all(actions);
    }

    /// Carries out what a core method (send, cancel, …) left queued.
    fn drain_core(&mut self) {
        let actions = self.core.drain_actions();
        self.perform_all(actions);
    }

    /// Carries out actions in order, then feeds the events they raised, and
    /// after a batch that wrote frames reports the writer's backlog (the
    /// native `bufferedAmount`) so the core's estimate stays honest.
    fn perform_all(&mut self, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        loop {
            let mut wrote = false;
            while let Some(action) = queue.pop_front() {
                wrote |= self.perform(action);
            }
            let event = match self.pending.pop_front() {
                Some(event) => event,
                None => match self.socket.backlog() {
                    Some((socket, bytes)) if wrote => Event::BufferedAmount { socket, bytes },
                    _ => break,
                },
            };
            queue.extend(self.core.handle(self.now(), event));
        }
    }

    /// Carries out one action; true when it wrote a frame.
    fn perform(&mut self, action: Action) -> bool {
        match action {
            Action::Open { socket, transport } => {
                // The core closes a socket before it opens the next; letting
                // go of any leftover keeps "one socket at a time" true anyway.
                self.socket.release(None);
                // The core chose the server for this attempt.
                let url = self.publish_endpoint();
                self.socket = match transport {
                    Transport::WebSocket => SocketSlot::connect(socket, url),
                    Transport::LongPoll => match poll_base(&url) {
                        Some(base) => SocketSlot::Polling(PollLink::start(socket, base)),
                        None => {
                            // Not a ws:// URL: nothing to poll. Fail the
                            // attempt as an unreachable server would.
                            self.pending.push_back(lost(
                                socket,
                                CLOSE_ABNORMAL,
                                "no poll URL for this endpoint".into(),
                                false,
                            ));
                            SocketSlot::Empty
                        }
                    },
                };
            }
            Action::Probe { probe } => {
                let url = self.publish_endpoint();
                self.probe = Some(Probe::start(probe, url));
            }
            Action::EndProbe { probe } => {
                if self.probe.as_ref().is_some_and(|p| p.id == probe) {
                    self.probe = None;
                }
            }
            Action::SendFrame { socket, text } => return self.write(socket, text),
            Action::Close {
                socket,
                code,
                reason,
            } => {
                if self.socket.id() == Some(socket) {
                    self.socket.release(Some((code, reason)));
                }
            }
            Action::SetTimer { kind, at } => {
                let deadline = self.instant_at(at);
                self.timers.insert(kind, deadline);
            }
            Action::CancelTimer(kind) => {
                self.timers.remove(&kind);
            }
            Action::Deliver(inbound) => {
                self.registry.dispatch(&inbound);
            }
            Action::StatusChanged(status) => {
                // A failover shows with the wait before its attempt.
                self.publish_endpoint();
                self.outlets.status.send_replace(status);
            }
            Action::MessageState { id, state } => {
                if state.is_final() {
                    self.final_states.remember(id.clone(), state.clone());
                }
                // Nobody listening is fine.
                let _ = self.outlets.message_events.send((id, state));
            }
            Action::Report(report) => {
                let _ = self.outlets.reports.send(report);
            }
        }
        false
    }

    /// Tells the handles which server is in use (when it changed); returns
    /// its URL.
    fn publish_endpoint(&self) -> String {
        let url = self.core.endpoint().unwrap_or_default().to_owned();
        self.outlets.endpoint.send_if_modified(|current| {
            let changed = *current != url;
            if changed {
                current.clone_from(&url);
            }
            changed
        });
        url
    }

    fn write(&mut self, socket: SocketId, text: String) -> bool {
        match self.socket.send(socket, text) {
            Some(true) => true,
            Some(false) => {
                // The writer stopped: its socket failed.
                self.pending.push_back(Event::Error { socket });
                false
            }
            // The core only writes to the socket it opened; a mismatch means
            // it is already gone.
            None => false,
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, TimerKind)> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(kind, at)| (*at, *kind))
            .collect();
        due.sort_unstable();
        for (_, kind) in due {
            // An earlier fire may have re-armed or cancelled this one.
            if self.timers.get(&kind).is_some_and(|at| *at <= now) {
                self.timers.remove(&kind);
                self.feed(Event::TimerFired(kind));
            }
        }
    }

    // ---- the socket ----

    fn socket_event(&mut self, event: SocketEvent) {
        match event {
            SocketEvent::Connected(socket, Ok(ws)) => {
                self.socket = SocketSlot::Open(LiveSocket::start(socket, ws));
                self.feed(Event::Opened { socket });
            }
            SocketEvent::Connected(socket, Err(_)) => {
                // Refused, unreachable, or a failed handshake: what a browser
                // reports as `error` then `close` 1006.
                self.socket = SocketSlot::Empty;
                self.feed(Event::Error { socket });
                self.feed(lost(socket, CLOSE_ABNORMAL, String::new(), false));
            }
            SocketEvent::Read(socket, Some(Ok(message))) => self.read(socket, message),
            SocketEvent::Read(socket, Some(Err(_))) => {
                self.socket.release(None);
                self.feed(Event::Error { socket });
                self.feed(lost(socket, CLOSE_ABNORMAL, String::new(), false));
            }
            SocketEvent::Read(socket, None) => {
                self.socket.release(None);
                self.feed(lost(socket, CLOSE_ABNORMAL, String::new(), false));
            }
            SocketEvent::Drained(socket) => {
                if let Some((_, bytes)) = self.socket.backlog() {
                    self.feed(Event::BufferedAmount { socket, bytes });
                }
            }
            SocketEvent::Poll(socket, Some(PollEvent::Opened)) => {
                self.feed(Event::Opened { socket });
            }
            SocketEvent::Poll(socket, Some(PollEvent::Frame(text))) => {
                self.feed(Event::Frame {
                    socket,
                    data: FrameData::Text(text),
                });
            }
            SocketEvent::Poll(socket, Some(PollEvent::Closed { code, reason })) => {
                self.socket.release(None);
                let clean = code != CLOSE_ABNORMAL;
                self.feed(lost(socket, code, reason, clean));
            }
            SocketEvent::Poll(socket, None) => {
                self.socket.release(None);
                self.feed(lost(socket, CLOSE_ABNORMAL, String::new(), false));
            }
        }
    }

    fn read(&mut self, socket: SocketId, message: Message) {
        let data = match message {
            Message::Text(text) => FrameData::Text(text.as_str().to_owned()),
            Message::Binary(bytes) => FrameData::Binary(bytes.len()),
            Message::Close(frame) => {
                // The peer closes: report it now (the writer answers the
                // close frame as it finishes).
                let (code, reason) = match frame {
                    Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
                    None => (CLOSE_NO_STATUS, String::new()),
                };
                self.socket.release(None);
                self.feed(lost(socket, code, reason, true));
                return;
            }
            // tungstenite answers pings itself; the core's heartbeat is the
            // JSON (or text) ping.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return,
        };
        self.feed(Event::Frame { socket, data });
    }

    // ---- commands ----

    fn command(&mut self, command: Command) {
        // A reply nobody waits for any more is fine to drop: hence `let _`.
        match command {
            Command::Send {
                value,
                options,
                reply,
            } => {
                let result = self.core.send(self.now(), value, options);
                self.drain_core();
                let _ = reply.send(result);
            }
            Command::SendVolatile { value, reply } => {
                let result = self.core.send_volatile(value);
                self.drain_core();
                let _ = reply.send(result);
            }
            Command::Cancel { id, reply } => {
                let result = self.core.cancel(&id);
                self.drain_core();
                let _ = reply.send(result);
            }
            Command::MessageState { id, reply } => {
                let state = self
                    .core
                    .delivery_state(&id)
                    .or_else(|| self.final_states.get(&id));
                let _ = reply.send(state);
            }
            Command::Timeline(reply) => {
                let _ = reply.send(self.core.timeline().cloned().collect());
            }
            Command::RttHistory(reply) => {
                let _ = reply.send(self.core.rtt_history());
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.core.stats());
            }
            Command::Last { socket_type, reply } => {
                let _ = reply.send(self.registry.last(&socket_type));
            }
            Command::Subscribe {
                id,
                socket_type,
                handler,
            } => {
                let guard = self.registry.subscribe(
                    &socket_type,
                    Rc::new(move |message: &Inbound| handler(message)),
                );
                self.handlers.insert(id, guard);
            }
            Command::Unsubscribe(id) => {
                self.handlers.remove(&id);
            }
            Command::AddStanding {
                key,
                value,
                resume_stream,
                reply,
            } => {
                let result = self.core.add_standing(key, value, resume_stream);
                self.drain_core();
                let _ = reply.send(result);
            }
            Command::RemoveStanding { key, reply } => {
                let removed = self.core.remove_standing(&key);
                self.drain_core();
                let _ = reply.send(removed);
            }
            Command::ExportOutbox(reply) => {
                let _ = reply.send(self.core.export_outbox());
            }
            Command::RestoreOutbox { json, reply } => {
                let result = self.core.restore_outbox(self.now(), &json);
                self.drain_core();
                let _ = reply.send(result);
            }
            Command::Core(event) => self.feed(event),
        }
    }
}

fn lost(socket: SocketId, code: u16, reason: String, was_clean: bool) -> Event {
    Event::Closed {
        socket,
        code,
        reason,
        was_clean,
    }
}

/// A deadline that never comes (about 30 years), as tokio uses for "none".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The last final states, oldest forgotten first.
#[derive(Default)]
struct FinalStates {
    states: HashMap<MessageId, DeliveryState>,
    order: VecDeque<MessageId>,
}

impl FinalStates {
    fn remember(&mut self, id: MessageId, state: DeliveryState) {
        if self.states.insert(id.clone(), state).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > REMEMBERED_FINAL_STATES {
            if let Some(old) = self.order.pop_front() {
                self.states.remove(&old);
            }
        }
    }

    fn get(&self, id: &MessageId) -> Option<DeliveryState> {
        self.states.get(id).cloned()
    }
}
