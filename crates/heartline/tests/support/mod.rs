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
        // The fallback has its own tests (tests/fallback.rs); here every
        // attempt is a WebSocket.
        fallback: FallbackConfig {
            enabled: false,
            ..FallbackConfig::default()
        },
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
    /// The transport of every socket opened, in order.
    pub transports: Vec<Transport>,
    /// Upgrade probes out (asked for and not ended or reported).
    pub probes: Vec<SocketId>,
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
            transports: Vec::new(),
            probes: Vec::new(),
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
                Action::Open { socket, transport } => {
                    assert!(
                        self.sockets.is_empty(),
                        "opened {socket} while {:?} still held",
                        self.sockets
                    );
                    self.sockets.push(*socket);
                    self.transports.push(*transport);
                }
                Action::Probe { probe } => {
                    assert!(
                        self.probes.is_empty(),
                        "probe {probe} while {:?} out",
                        self.probes
                    );
                    self.probes.push(*probe);
                }
                Action::EndProbe { probe } => self.probes.retain(|p| p != probe),
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

/// The frames written, parsed: compare these, not the text, since key order
/// is not part of the contract (and serde_json's `preserve_order`, which a
/// workspace dependency may switch on, changes it).
pub fn json_frames(actions: &[Action]) -> Vec<serde_json::Value> {
    frames(actions)
        .iter()
        .map(|text| serde_json::from_str(text).expect("frames are JSON"))
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

/// A server on the other end of the harness's live socket: a token bucket
/// per connection (refusing past it with `rate_limited`, the id and a
/// retry hint), an ack for every frame with an id it handles, a pong for
/// every ping; replies arrive `rtt` ms later. Sends `limits` first.
#[derive(Debug)]
pub struct ServerSim {
    pub rate: f64,
    pub burst: f64,
    pub rtt: Millis,
    tokens: f64,
    refilled_at: Millis,
    replies: Vec<(Millis, SocketId, String)>,
    /// Ids handled (acked), in the order handled.
    pub handled: Vec<String>,
    pub refusals: u64,
    pub max_in_flight: usize,
}

impl ServerSim {
    pub fn new(rate: f64, burst: u32, rtt: Millis) -> Self {
        ServerSim {
            rate,
            burst: f64::from(burst),
            rtt,
            tokens: f64::from(burst),
            refilled_at: 0,
            replies: Vec::new(),
            handled: Vec::new(),
            refusals: 0,
            max_in_flight: 0,
        }
    }

    /// A new connection: a full bucket and the `limits` frame.
    pub fn accept(&mut self, now: Millis, socket: SocketId) {
        self.tokens = self.burst;
        self.refilled_at = now;
        let limits = format!(
            r#"{{"socketType":"limits","rate":{},"burst":{},"max_frame_bytes":65536}}"#,
            self.rate, self.burst
        );
        self.replies.push((now + self.rtt, socket, limits));
    }

    fn receive(&mut self, now: Millis, socket: SocketId, text: &str) {
        let elapsed = now.saturating_sub(self.refilled_at) as f64;
        self.tokens = (self.tokens + elapsed * self.rate / 1_000.0).min(self.burst);
        self.refilled_at = now;
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let id = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        if self.tokens < 1.0 {
            self.refusals += 1;
            let wait = (((1.0 - self.tokens) * 1_000.0 / self.rate).ceil() as Millis).max(1);
            let id = id.map(|id| format!(r#","id":"{id}""#)).unwrap_or_default();
            let reply = format!(
                r#"{{"socketType":"error","code":"rate_limited","message":"slow down","retry_after_ms":{wait}{id}}}"#
            );
            self.replies.push((now + self.rtt, socket, reply));
            return;
        }
        self.tokens -= 1.0;
        if value["socketType"] == "ping" {
            let reply = format!(r#"{{"socketType":"pong","t":{}}}"#, value["t"]);
            self.replies.push((now + self.rtt, socket, reply));
        }
        if let Some(id) = id {
            self.handled.push(id.clone());
            let reply = format!(r#"{{"socketType":"ack","id":"{id}"}}"#);
            self.replies.push((now + self.rtt, socket, reply));
        }
    }

    /// Reads what the core wrote in `actions`.
    pub fn take(&mut self, now: Millis, actions: &[Action]) {
        for action in actions {
            if let Action::SendFrame { socket, text } = action {
                self.receive(now, *socket, text);
            }
        }
    }

    /// Runs the harness and this server until `until` or until nothing is
    /// left to do; checks the window after every step.
    pub fn run(&mut self, h: &mut Harness, until: Millis) {
        let window = h.conn.config().send_window;
        loop {
            self.max_in_flight = self.max_in_flight.max(h.conn.stats().in_flight);
            assert!(h.conn.stats().in_flight <= window, "window exceeded");
            let next_reply = self.replies.iter().map(|r| r.0).min();
            let next_timer = h.timers.values().copied().min();
            let next = match (next_reply, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            if next_reply == Some(next) {
                let index = self.replies.iter().position(|r| r.0 == next).unwrap();
                let (at, socket, text) = self.replies.remove(index);
                h.now = h.now.max(at);
                if h.sockets.last() != Some(&socket) {
                    continue;
                }
                let actions = h.frame(&text);
                self.take(h.now, &actions);
            } else {
                let actions = h.advance_to(next);
                self.take(h.now, &actions);
            }
        }
    }
}
