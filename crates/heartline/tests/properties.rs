//! Property tests: random sequences of events and clock steps, checking the
//! core's invariants after every step and at the end.
#![allow(clippy::unwrap_used)]

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use heartline::core::*;
use proptest::prelude::*;
use serde_json::json;
use support::Harness;

#[derive(Debug, Clone)]
enum Op {
    Advance(Millis),
    /// The clock jumps without timers firing, then the earliest one fires
    /// (a throttled background tab).
    LateTimer(Millis),
    Start,
    Stop,
    RetryNow,
    Online,
    Offline,
    Visible,
    Hidden,
    Open,
    ServerClose(u16),
    SocketError,
    StaleEvent(u64),
    Send,
    SendWithTtl(Millis),
    SendVolatile,
    Cancel(usize),
    Ack(usize),
    Refuse(usize),
    /// The server refuses one as `rate_limited`, with a retry hint.
    RateLimit(usize, Millis),
    /// The server announces its limits (frames/s, burst).
    Limits(u32, u32),
    AnswerPing,
    Stream(u8, u64),
    Garbage(String),
    Buffered(u64),
    /// The outstanding upgrade probe opens (true) or fails.
    ProbeAnswer(bool),
    /// The browser turns out to have no WebSocket.
    Unsupported,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..20_000).prop_map(Op::Advance),
        1 => (0u64..120_000).prop_map(Op::LateTimer),
        2 => Just(Op::Start),
        1 => Just(Op::Stop),
        1 => Just(Op::RetryNow),
        1 => Just(Op::Online),
        1 => Just(Op::Offline),
        1 => Just(Op::Visible),
        1 => Just(Op::Hidden),
        5 => Just(Op::Open),
        2 => prop::sample::select(vec![1000u16, 1006, 1006, 4004, 4001]).prop_map(Op::ServerClose),
        1 => Just(Op::SocketError),
        1 => (1u64..6).prop_map(Op::StaleEvent),
        5 => Just(Op::Send),
        1 => (0u64..30_000).prop_map(Op::SendWithTtl),
        1 => Just(Op::SendVolatile),
        1 => any::<usize>().prop_map(Op::Cancel),
        4 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Refuse),
        2 => (any::<usize>(), 1u64..3_000).prop_map(|(i, wait)| Op::RateLimit(i, wait)),
        1 => (1u32..60, 1u32..120).prop_map(|(rate, burst)| Op::Limits(rate, burst)),
        2 => Just(Op::AnswerPing),
        5 => (0u8..2, 1u64..12).prop_map(|(s, q)| Op::Stream(s, q)),
        1 => "\\PC{0,20}".prop_map(Op::Garbage),
        1 => (0u64..3_000).prop_map(Op::Buffered),
        3 => any::<bool>().prop_map(Op::ProbeAnswer),
        1 => Just(Op::Unsupported),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::sample::select(vec![
            Jitter::None,
            Jitter::Equal,
            Jitter::Full,
            Jitter::Decorrelated,
        ]),
        100u64..3_000,
        1.0f64..3.0,
        3_000u64..40_000,
        prop::option::of(0u32..6),
        0u64..5_000,
        1usize..5,
        1usize..30,
        any::<bool>(),
    )
        .prop_map(
            |(
                jitter,
                base,
                factor,
                cap,
                max_retries,
                min_uptime,
                send_window,
                timeline_limit,
                fallback,
            )| {
                let mut config = support::test_config();
                config.backoff = BackoffConfig {
                    base,
                    factor,
                    cap,
                    jitter,
                };
                config.max_retries = max_retries;
                config.min_uptime = min_uptime;
                config.outbox_limit = 8;
                config.send_window = send_window;
                config.high_water_mark = 2_000;
                config.stream_gap_timeout = 3_000;
                config.stream_buffer_limit = 4;
                config.timeline_limit = timeline_limit;
                config.fallback.enabled = fallback;
                config
            },
        )
}

/// The smallest reconnect delay a policy allows: `base` (capped), halved by
/// equal jitter.
fn backoff_floor(backoff: &BackoffConfig) -> Millis {
    let base = backoff.base.min(backoff.cap);
    if backoff.jitter == Jitter::Equal {
        base / 2
    } else {
        base
    }
}

/// The fake driver plus a fake server, and everything the invariants need.
struct World {
    h: Harness,
    registry: Registry,
    _guard: SubscriptionGuard,
    seen_stream: Rc<RefCell<Vec<(String, u64)>>>,
    opened: HashSet<SocketId>,
    /// Ids the server received, on any socket.
    server_got: HashSet<String>,
    /// Ids received on the live socket, in order (ack candidates).
    live_ids: Vec<String>,
    last_ping: Option<String>,
    sent_ok: Vec<MessageId>,
    outcome: HashMap<MessageId, DeliveryState>,
    delays: Vec<(Millis, Millis)>,
    next_seq: BTreeMap<u8, u64>,
    /// Ids the server refused as `rate_limited` at least once.
    rate_limited: HashSet<String>,
    /// The endpoint index of every socket opened, in order.
    dialled: Vec<usize>,
}

impl World {
    fn new(config: Config) -> Self {
        let registry = Registry::new();
        let seen_stream: Rc<RefCell<Vec<(String, u64)>>> = Rc::default();
        let seen = seen_stream.clone();
        let guard = registry.subscribe(
            "chat.message",
            Rc::new(move |m: &Inbound| {
                let pos = m.stream.as_ref().unwrap();
                seen.borrow_mut().push((pos.stream.to_string(), pos.seq));
            }),
        );
        let mut h = Harness::new(config);
        h.conn.set_registry(Some(registry.clone()));
        World {
            h,
            registry,
            _guard: guard,
            seen_stream,
            opened: HashSet::new(),
            server_got: HashSet::new(),
            live_ids: Vec::new(),
            last_ping: None,
            sent_ok: Vec::new(),
            outcome: HashMap::new(),
            delays: Vec::new(),
            next_seq: BTreeMap::new(),
            rate_limited: HashSet::new(),
            dialled: Vec::new(),
        }
    }

    fn live_open(&self) -> Option<SocketId> {
        self.h
            .sockets
            .last()
            .copied()
            .filter(|s| self.opened.contains(s))
    }

    /// What the real driver and server would do with actions.
    fn observe(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::SendFrame { socket, text } => {
                    assert!(
                        self.live_open() == Some(*socket),
                        "frame written on {socket}, which is not open"
                    );
                    let value: serde_json::Value =
                        serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
                    if value["socketType"] == "ping" {
                        self.last_ping = Some(text.clone());
                    }
                    if let Some(id) = value["id"].as_str() {
                        self.server_got.insert(id.to_owned());
                        self.live_ids.push(id.to_owned());
                    }
                }
                Action::Close { socket, .. } => {
                    self.opened.remove(socket);
                    self.live_ids.clear();
                }
                Action::SetTimer {
                    kind: TimerKind::Reconnect,
                    at,
                } => self.delays.push((self.h.now, *at)),
                Action::Deliver(message) => {
                    self.registry.dispatch(message);
                }
                // The driver reads the URL as it carries out the open.
                Action::Open { .. } => self.dialled.push(self.h.conn.endpoints().index()),
                Action::MessageState { id, state } if state.is_final() => {
                    assert!(
                        !self.outcome.contains_key(id),
                        "{id} ended twice: {:?} then {state:?}",
                        self.outcome[id]
                    );
                    if *state == DeliveryState::Acked {
                        assert!(self.server_got.contains(id.as_str()), "{id} acked unsent");
                    }
                    self.outcome.insert(id.clone(), state.clone());
                }
                _ => {}
            }
        }
    }

    fn event(&mut self, event: Event) {
        let actions = self.h.event(event);
        self.observe(&actions);
    }

    fn frame(&mut self, text: String) {
        if let Some(socket) = self.live_open() {
            self.event(Event::Frame {
                socket,
                data: FrameData::Text(text),
            });
        }
    }

    fn drain(&mut self) {
        let actions = self.h.drain();
        self.observe(&actions);
    }

    fn fire_due(&mut self, to: Millis) {
        loop {
            let due = self
                .h
                .timers
                .iter()
                .filter(|(_, at)| **at <= to)
                .min_by_key(|(_, at)| **at)
                .map(|(k, at)| (*k, *at));
            let Some((kind, at)) = due else { break };
            self.h.timers.remove(&kind);
            self.h.now = self.h.now.max(at);
            self.event(Event::TimerFired(kind));
        }
        self.h.now = self.h.now.max(to);
    }

    fn apply(&mut self, op: Op) {
        let now = self.h.now;
        match op {
            Op::Advance(dt) => self.fire_due(now + dt),
            Op::LateTimer(dt) => {
                self.h.now += dt;
                let earliest = self
                    .h
                    .timers
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| *k);
                if let Some(kind) = earliest {
                    self.h.timers.remove(&kind);
                    self.event(Event::TimerFired(kind));
                }
            }
            Op::Start => self.event(Event::Start),
            Op::Stop => self.event(Event::Stop),
            Op::RetryNow => self.event(Event::RetryNow),
            Op::Online => self.event(Event::Online),
            Op::Offline => self.event(Event::Offline),
            Op::Visible => self.event(Event::Visible),
            Op::Hidden => self.event(Event::Hidden),
            Op::ProbeAnswer(opened) => {
                if let Some(probe) = self.h.probes.pop() {
                    if opened {
                        self.event(Event::ProbeOpened { probe })
                    } else {
                        self.event(Event::ProbeFailed { probe })
                    }
                }
            }
            Op::Unsupported => self.event(Event::Unsupported),
            Op::Open => {
                if let Some(socket) = self.h.sockets.last().copied()
                    && !self.opened.contains(&socket)
                {
                    self.opened.insert(socket);
                    self.live_ids.clear();
                    self.event(Event::Opened { socket });
                }
            }
            Op::ServerClose(code) => {
                if let Some(socket) = self.h.sockets.last().copied() {
                    self.h.sockets.retain(|s| *s != socket);
                    self.opened.remove(&socket);
                    self.live_ids.clear();
                    self.event(Event::Closed {
                        socket,
                        code,
                        reason: String::new(),
                        was_clean: code != 1006,
                    });
                }
            }
            Op::SocketError => {
                if let Some(socket) = self.h.sockets.last().copied() {
                    self.event(Event::Error { socket });
                }
            }
            Op::StaleEvent(id) => {
                let socket = SocketId(id);
                if !self.h.sockets.contains(&socket) {
                    let before = self.h.conn.stats();
                    let actions = self.h.conn.handle(
                        now,
                        Event::Frame {
                            socket,
                            data: FrameData::Text(r#"{"socketType":"x"}"#.into()),
                        },
                    );
                    assert!(actions.is_empty(), "stale socket event acted on");
                    assert_eq!(before, self.h.conn.stats());
                    let actions = self.h.conn.handle(now, Event::Opened { socket });
                    assert!(actions.is_empty(), "stale open acted on");
                }
            }
            Op::Send | Op::SendWithTtl(_) => {
                let options = match op {
                    Op::SendWithTtl(ttl) => SendOptions { ttl: Some(ttl) },
                    _ => SendOptions::default(),
                };
                let message = json!({"socketType":"chat.send","room":"r","text":"t"});
                if let Ok(id) = self.h.conn.send(now, message, options) {
                    self.sent_ok.push(id);
                }
                self.drain();
            }
            Op::SendVolatile => {
                let result = self.h.conn.send_volatile(json!({"socketType":"typing"}));
                let before = self.h.conn.outbox_ids().len();
                self.drain();
                if result.is_err() {
                    assert_eq!(before, self.h.conn.outbox_ids().len());
                }
            }
            Op::Cancel(index) => {
                if !self.sent_ok.is_empty() {
                    let id = self.sent_ok[index % self.sent_ok.len()].clone();
                    let _ = self.h.conn.cancel(&id);
                    self.drain();
                }
            }
            Op::Ack(index) => {
                if !self.live_ids.is_empty() {
                    let id = self.live_ids[index % self.live_ids.len()].clone();
                    self.frame(format!(r#"{{"socketType":"ack","id":"{id}"}}"#));
                }
            }
            Op::Refuse(index) => {
                if !self.live_ids.is_empty() {
                    let id = self.live_ids[index % self.live_ids.len()].clone();
                    self.frame(format!(
                        r#"{{"socketType":"error","code":"invalid_field","message":"no","id":"{id}"}}"#
                    ));
                }
            }
            Op::RateLimit(index, wait) => {
                if !self.live_ids.is_empty() {
                    let id = self.live_ids.remove(index % self.live_ids.len());
                    self.rate_limited.insert(id.clone());
                    self.frame(format!(
                        r#"{{"socketType":"error","code":"rate_limited","message":"slow","id":"{id}","retry_after_ms":{wait}}}"#
                    ));
                }
            }
            Op::Limits(rate, burst) => {
                self.frame(format!(
                    r#"{{"socketType":"limits","rate":{rate},"burst":{burst},"max_frame_bytes":65536}}"#
                ));
            }
            Op::AnswerPing => {
                if let Some(ping) = self.last_ping.take() {
                    let value: serde_json::Value = serde_json::from_str(&ping).unwrap();
                    self.frame(json!({"socketType":"pong","t":value["t"]}).to_string());
                }
            }
            Op::Stream(stream, seq) => {
                // Mostly the next one, sometimes a replay or a jump ahead.
                let next = self.next_seq.entry(stream).or_insert(1);
                let seq = if seq > 9 { *next } else { seq };
                *next = (*next).max(seq + 1);
                self.frame(support::chat(&format!("s{stream}"), seq));
            }
            Op::Garbage(text) => self.frame(text),
            Op::Buffered(bytes) => {
                if let Some(socket) = self.live_open() {
                    self.event(Event::BufferedAmount { socket, bytes });
                }
            }
        }
    }

    fn check_step(&self, config: &Config) {
        assert!(
            self.h.sockets.len() <= 1,
            "more than one socket connecting or open: {:?}",
            self.h.sockets
        );
        // A probe is out only beside a live long-poll link.
        if !self.h.probes.is_empty() {
            assert!(
                matches!(
                    self.h.conn.status(),
                    ConnectionStatus::Open {
                        transport: Transport::LongPoll,
                        ..
                    }
                ),
                "probe {:?} while {:?}",
                self.h.probes,
                self.h.conn.status()
            );
        }
        if !config.fallback.enabled {
            assert!(self.h.transports.iter().all(|t| *t == Transport::WebSocket));
        }
        let floor = backoff_floor(&config.backoff);
        for (now, at) in &self.delays {
            let delay = at - now;
            assert!(
                (floor..=config.backoff.cap).contains(&delay),
                "delay {delay} outside [{floor}, {}]",
                config.backoff.cap
            );
        }
        let stats = self.h.conn.stats();
        assert!(
            stats.in_flight <= config.send_window.max(1),
            "{} in flight, window {}",
            stats.in_flight,
            config.send_window
        );
        // The timeline stays bounded and in time order.
        let times: Vec<Millis> = self.h.conn.timeline().map(|entry| entry.at).collect();
        assert!(
            times.len() <= config.timeline_limit,
            "{} timeline entries, limit {}",
            times.len(),
            config.timeline_limit
        );
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "timeline out of order: {times:?}"
        );
        let seen = self.seen_stream.borrow();
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (stream, seq) in seen.iter() {
            if let Some(previous) = last.get(stream.as_str()) {
                assert!(seq > previous, "{stream}: {seq} after {previous}");
            }
            last.insert(stream, *seq);
        }
    }

    fn check_end(&self) {
        let in_outbox: HashSet<MessageId> = self.h.conn.outbox_ids().into_iter().collect();
        for id in &self.sent_ok {
            let ended = self.outcome.get(id);
            let kept = in_outbox.contains(id);
            assert!(
                ended.is_some() != kept,
                "{id}: outcome {ended:?}, in outbox {kept}"
            );
        }
        let stats = self.h.conn.stats();
        assert_eq!(stats.queued + stats.in_flight, in_outbox.len());
        // A rate_limited refusal never fails a message: it ends acked (or
        // failed for another reason) or waits in the outbox.
        for (id, outcome) in &self.outcome {
            if let DeliveryState::Failed(MessageFailure::Refused { code, .. }) = outcome {
                assert_ne!(code, "rate_limited", "{id} failed on rate_limited");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_random_event_sequences(
        config in config(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut world = World::new(config.clone());
        for op in ops {
            world.apply(op);
            world.check_step(&config);
        }
        world.check_end();
    }

    #[test]
    fn every_reliable_message_is_acked_failed_or_kept_after_recovery(
        config in config(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut world = World::new(config.clone());
        for op in ops {
            world.apply(op);
            world.check_step(&config);
        }
        // Heal: online and visible, a responsive server that answers pings
        // and acks everything; restart whenever the core stopped.
        world.event(Event::Online);
        world.event(Event::Visible);
        for _ in 0..200 {
            if world.h.conn.outbox_ids().is_empty() {
                break;
            }
            if matches!(
                world.h.status(),
                ConnectionStatus::Idle | ConnectionStatus::Closed | ConnectionStatus::Failed(_)
            ) {
                world.event(Event::Start);
            }
            world.apply(Op::Open);
            while let Some(id) = world.live_ids.first().cloned() {
                world.frame(format!(r#"{{"socketType":"ack","id":"{id}"}}"#));
                world.live_ids.remove(0);
            }
            world.apply(Op::AnswerPing);
            world.apply(Op::Advance(1_000));
            world.check_step(&config);
        }
        world.check_end();
        prop_assert!(world.h.conn.outbox_ids().is_empty(), "{:?}", world.h.status());
    }

    #[test]
    fn backoff_delays_stay_within_base_and_cap(
        base in 0u64..10_000,
        cap in 0u64..100_000,
        factor in 0.0f64..10.0,
        jitter in prop::sample::select(vec![Jitter::None, Jitter::Equal, Jitter::Full, Jitter::Decorrelated]),
        seed in any::<u64>(),
        retries in prop::collection::vec(0u32..100, 1..50),
    ) {
        let config = BackoffConfig { base, factor, cap, jitter };
        let mut backoff = Backoff::new(config.clone(), seed);
        let floor = backoff_floor(&config);
        for retry in retries {
            let delay = backoff.next_delay(retry);
            prop_assert!((floor..=cap).contains(&delay), "{delay} outside [{floor}, {cap}]");
            if jitter == Jitter::Equal {
                // Equal jitter: within [nominal / 2, nominal].
                let nominal = backoff.envelope(retry);
                prop_assert!(
                    (nominal / 2..=nominal).contains(&delay),
                    "{delay} outside [{}, {nominal}]",
                    nominal / 2
                );
            }
        }
    }

    /// Several URLs change which server each attempt dials and nothing
    /// else: the same events give the same actions (delays, attempts,
    /// frames, message states) as with one URL. And the URL moves only
    /// between attempts, one step round the list at a time, once per
    /// counted failover.
    #[test]
    fn several_urls_change_only_the_url_dialled(
        config in config(),
        count in 2usize..5,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let urls: Vec<String> = (0..count).map(|i| format!("ws://s{i}.test/ws")).collect();
        let mut solo = World::new(config.clone());
        solo.h.conn.set_endpoints(urls[0].as_str());
        let mut many = World::new(config.clone());
        many.h.conn.set_endpoints(urls.clone());
        for op in ops {
            solo.apply(op.clone());
            many.apply(op);
            many.check_step(&config);
            prop_assert_eq!(&solo.h.log, &many.h.log);
            let endpoints = many.h.conn.endpoints();
            let stats = many.h.conn.stats();
            prop_assert_eq!(endpoints.index() as u64, stats.failovers % count as u64);
            prop_assert_eq!(solo.h.conn.endpoint(), Some(urls[0].as_str()));
        }
        prop_assert_eq!(many.dialled.first().copied().unwrap_or(0), 0, "starts on the first");
        for pair in many.dialled.windows(2) {
            prop_assert!(
                pair[1] == pair[0] || pair[1] == (pair[0] + 1) % count,
                "dialled {} after {}", pair[1], pair[0]
            );
        }
        let mut solo_stats = solo.h.conn.stats();
        solo_stats.failovers = many.h.conn.stats().failovers;
        prop_assert_eq!(solo_stats, many.h.conn.stats());
    }

    #[test]
    fn no_frame_makes_the_core_panic(text in "\\PC{0,200}", bytes in 0usize..200_000) {
        let mut h = Harness::new(support::test_config());
        let socket = h.connect();
        h.event(Event::Frame { socket, data: FrameData::Text(text) });
        h.event(Event::Frame { socket, data: FrameData::Binary(bytes) });
        prop_assert!(h.status().is_open());
    }
}
