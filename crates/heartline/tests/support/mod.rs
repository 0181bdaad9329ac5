//! A fake driver with a virtual clock: performs the core's actions the way
//! the browser driver would, and records everything for assertions.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use heartline::core::*;

/// The policy most tests use: no jitter, so times are exact.
pub fn test_config() -> Config {
    Config {
        backoff: BackoffConfig {
            base: 1_000,
            factor: 2.0,
            cap: 8_000,
            jitter: Jitter::None,
        },
        max_retries: Some(3),
        connect_timeout: 5_000,
        min_uptime: 3_000,
        heartbeat: HeartbeatConfig {
            interval: 10_000,
            timeout: 5_000,
            probe_timeout: 2_000,
            style: HeartbeatStyle::Json,
            max_losses: Some(3),
        },
        outbox_limit: 10,
        ..Config::default()
    }
}

#[derive(Debug)]
pub struct Harness {
    pub conn: Connection,
    pub now: Millis,
    pub timers: BTreeMap<TimerKind, Millis>,
    /// Sockets the driver holds (opened by the core and not closed).
    pub sockets: Vec<SocketId>,
    /// Every action performed, in order.
    pub log: Vec<Action>,
}

impl Harness {
    pub fn new(config: Config) -> Self {
        Harness {
            conn: Connection::new(config, 7),
            now: 0,
            timers: BTreeMap::new(),
            sockets: Vec::new(),
            log: Vec::new(),
        }
    }

    pub fn event(&mut self, event: Event) -> Vec<Action> {
        let actions = self.conn.handle(self.now, event);
        self.apply(&actions);
        actions
    }

    pub fn drain(&mut self) -> Vec<Action> {
        let actions = self.conn.drain_actions();
        self.apply(&actions);
        actions
    }

    fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::Open { socket } => {
                    assert!(
                        self.sockets.is_empty(),
                        "opened {socket} while {:?} still held",
                        self.sockets
                    );
                    self.sockets.push(*socket);
                }
                Action::Close { socket, .. } => self.sockets.retain(|s| s != socket),
                Action::SetTimer { kind, at } => {
                    self.timers.insert(*kind, *at);
                }
                Action::CancelTimer(kind) => {
                    self.timers.remove(kind);
                }
                _ => {}
            }
            self.log.push(action.clone());
        }
    }

    /// Moves the clock to `to`, firing due timers on time, in order.
    pub fn advance_to(&mut self, to: Millis) -> Vec<Action> {
        let mut all = Vec::new();
        loop {
            let due = self
                .timers
                .iter()
                .filter(|(_, at)| **at <= to)
                .min_by_key(|(_, at)| **at)
                .map(|(kind, at)| (*kind, *at));
            let Some((kind, at)) = due else { break };
            self.timers.remove(&kind);
            self.now = self.now.max(at);
            all.extend(self.event(Event::TimerFired(kind)));
        }
        self.now = self.now.max(to);
        all
    }

    pub fn advance_by(&mut self, by: Millis) -> Vec<Action> {
        self.advance_to(self.now + by)
    }

    /// Fires a pending timer now, however late (a throttled tab).
    pub fn fire_now(&mut self, kind: TimerKind) -> Vec<Action> {
        assert!(self.timers.remove(&kind).is_some(), "{kind:?} not pending");
        self.event(Event::TimerFired(kind))
    }

    pub fn live(&self) -> SocketId {
        *self.sockets.last().expect("a live socket")
    }

    /// Start and open the first socket.
    pub fn connect(&mut self) -> SocketId {
        self.event(Event::Start);
        self.open()
    }

    /// The pending socket opens.
    pub fn open(&mut self) -> SocketId {
        let socket = self.live();
        self.event(Event::Opened { socket });
        socket
    }

    pub fn frame(&mut self, text: &str) -> Vec<Action> {
        let socket = self.live();
        self.event(Event::Frame {
            socket,
            data: FrameData::Text(text.to_owned()),
        })
    }

    /// The server (or network) closes the live socket.
    pub fn server_close(&mut self, code: u16) -> Vec<Action> {
        let socket = self.live();
        self.sockets.retain(|s| *s != socket);
        self.event(Event::Closed {
            socket,
            code,
            reason: String::new(),
            was_clean: code != 1006,
        })
    }

    pub fn status(&self) -> ConnectionStatus {
        self.conn.status()
    }

    pub fn send(&mut self, value: serde_json::Value) -> MessageId {
        let id = self
            .conn
            .send(self.now, value, SendOptions::default())
            .unwrap();
        self.drain();
        id
    }

    pub fn ack(&mut self, id: &MessageId) -> Vec<Action> {
        self.frame(&format!(r#"{{"socketType":"ack","id":"{id}"}}"#))
    }
}

pub fn frames(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendFrame { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

pub fn delivered(actions: &[Action]) -> Vec<Inbound> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

pub fn reports(actions: &[Action]) -> Vec<Report> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub fn states(actions: &[Action]) -> Vec<(MessageId, DeliveryState)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::MessageState { id, state } => Some((id.clone(), state.clone())),
            _ => None,
        })
        .collect()
}

pub fn closes(actions: &[Action]) -> Vec<(SocketId, u16)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { socket, code, .. } => Some((*socket, *code)),
            _ => None,
        })
        .collect()
}

pub fn opens(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Open { .. }))
        .count()
}

pub fn chat(stream: &str, seq: u64) -> String {
    format!(r#"{{"socketType":"chat.message","stream":"{stream}","seq":{seq},"text":"m{seq}"}}"#)
}
