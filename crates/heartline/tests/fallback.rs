//! Issue 13, the core: falling back to long-polling when WebSocket attempts
//! keep failing, probing the way back, and switching without losing or
//! doubling a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use heartline::core::*;
use serde_json::json;
use support::*;

fn fallback_config() -> Config {
    Config {
        fallback: FallbackConfig {
            probe: BackoffConfig {
                base: 2_000,
                factor: 2.0,
                cap: 16_000,
                jitter: Jitter::None,
            },
            probe_timeout: 3_000,
            ..FallbackConfig::default()
        },
        max_retries: None,
        ..test_config()
    }
}

/// The live attempt fails before opening (a proxy refusing the upgrade).
fn refuse(h: &mut Harness) {
    h.server_close(1006);
}

/// Waits out the reconnect delay: the next attempt starts.
fn next_attempt(h: &mut Harness) -> Transport {
    let ConnectionStatus::Reconnecting { at, .. } = h.status() else {
        panic!("not waiting to reconnect: {:?}", h.status());
    };
    h.advance_to(at);
    *h.transports.last().expect("an attempt")
}

/// Starts, lets two WebSocket attempts fail, and opens the long-poll one.
fn fall_back(h: &mut Harness) -> SocketId {
    h.event(Event::Start);
    assert_eq!(h.transports, [Transport::WebSocket]);
    refuse(h);
    assert_eq!(next_attempt(h), Transport::WebSocket);
    refuse(h);
    assert_eq!(next_attempt(h), Transport::LongPoll);
    h.open()
}

fn probe_of(actions: &[Action]) -> Option<SocketId> {
    actions.iter().find_map(|a| match a {
        Action::Probe { probe } => Some(*probe),
        _ => None,
    })
}

#[test]
fn two_refused_upgrades_fall_back_to_long_polling_and_the_status_says_so() {
    let mut h = Harness::new(fallback_config());
    fall_back(&mut h);
    assert_eq!(
        h.status(),
        ConnectionStatus::Open {
            degraded: false,
            transport: Transport::LongPoll
        }
    );
    assert_eq!(h.status().description(h.now), "Connected (long-polling)");
    assert_eq!(h.conn.stats().fallbacks, 1);
    let timeline: Vec<String> = h.conn.timeline().map(|e| e.event.to_string()).collect();
    assert!(
        timeline.iter().any(|e| e == "on long-polling"),
        "{timeline:?}"
    );
}

#[test]
fn while_long_polling_failing_probes_back_off_and_a_stuck_one_times_out() {
    let mut h = Harness::new(fallback_config());
    fall_back(&mut h);
    let opened_at = h.now;
    // The first probe after the base delay.
    assert_eq!(h.timers.get(&TimerKind::Probe), Some(&(opened_at + 2_000)));
    let actions = h.advance_to(opened_at + 2_000);
    let probe = probe_of(&actions).expect("a probe");
    assert_eq!(h.probes, [probe]);
    // The session socket is untouched by probing.
    assert_eq!(h.sockets.len(), 1);
    h.probes.clear();
    h.event(Event::ProbeFailed { probe });
    assert_eq!(h.timers.get(&TimerKind::Probe), Some(&(h.now + 4_000)));
    // The next one never answers: it is ended at its deadline.
    let actions = h.advance_by(4_000);
    let stuck = probe_of(&actions).expect("a second probe");
    let actions = h.advance_by(3_000);
    assert!(actions.contains(&Action::EndProbe { probe: stuck }));
    assert!(h.probes.is_empty());
    assert_eq!(h.timers.get(&TimerKind::Probe), Some(&(h.now + 8_000)));
    // A late report of the ended probe changes nothing.
    let actions = h.event(Event::ProbeOpened { probe: stuck });
    assert_eq!(opens(&actions), 0);
    assert!(matches!(
        h.status(),
        ConnectionStatus::Open {
            transport: Transport::LongPoll,
            ..
        }
    ));
}

#[test]
fn a_working_probe_moves_back_to_websocket_resending_the_unacked_once() {
    let mut h = Harness::new(fallback_config());
    h.conn
        .add_standing(
            "room:lobby",
            json!({"socketType":"join","room":"lobby"}),
            Some("lobby".into()),
        )
        .unwrap();
    h.drain();
    let poll = fall_back(&mut h);
    h.frame(&chat("lobby", 1));
    h.frame(&chat("lobby", 2));
    let acked = h.send(json!({"socketType":"chat.send","room":"lobby","text":"one"}));
    h.ack(&acked);
    let unacked = h.send(json!({"socketType":"chat.send","room":"lobby","text":"two"}));

    let actions = h.advance_by(2_000);
    let probe = probe_of(&actions).expect("a probe");
    h.probes.clear();
    let actions = h.event(Event::ProbeOpened { probe });
    // The poll session is closed before the WebSocket opens, at once.
    assert_eq!(closes(&actions), [(poll, CLOSE_NORMAL)]);
    let transports: Vec<Transport> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Open { transport, .. } => Some(*transport),
            _ => None,
        })
        .collect();
    assert_eq!(transports, [Transport::WebSocket]);
    assert_eq!(h.sockets.len(), 1);

    let actions = h.event(Event::Opened { socket: h.live() });
    let sent = frames(&actions);
    // Resumed after seq 2; only the unacked message goes again, once.
    assert!(sent.iter().any(|f| f.contains(r#""since":2"#)), "{sent:?}");
    assert_eq!(
        sent.iter().filter(|f| f.contains(unacked.as_str())).count(),
        1
    );
    assert!(!sent.iter().any(|f| f.contains(acked.as_str())));
    assert_eq!(
        h.status(),
        ConnectionStatus::Open {
            degraded: false,
            transport: Transport::WebSocket
        }
    );
    let stats = h.conn.stats();
    assert_eq!((stats.fallbacks, stats.upgrades), (1, 1));
    // Back on WebSocket: no more probes.
    assert!(!h.timers.contains_key(&TimerKind::Probe));
    // A message delivered before the switch is not delivered again.
    let actions = h.frame(&chat("lobby", 2));
    assert!(delivered(&actions).is_empty());
}

#[test]
fn losing_the_poll_link_ends_the_probe_and_reconnects_on_long_polling() {
    let mut h = Harness::new(fallback_config());
    fall_back(&mut h);
    let actions = h.advance_by(2_000);
    let probe = probe_of(&actions).expect("a probe");
    let actions = h.server_close(1006);
    assert!(actions.contains(&Action::EndProbe { probe }));
    assert!(h.probes.is_empty());
    // It worked before: stay on long-polling.
    assert_eq!(next_attempt(&mut h), Transport::LongPoll);
    // A stale probe report is ignored.
    let actions = h.event(Event::ProbeOpened { probe });
    assert_eq!(opens(&actions), 0);
}

#[test]
fn when_long_polling_fails_too_the_attempts_alternate() {
    let mut h = Harness::new(fallback_config());
    h.event(Event::Start);
    let mut seen = vec![Transport::WebSocket];
    for _ in 0..5 {
        refuse(&mut h);
        seen.push(next_attempt(&mut h));
    }
    use Transport::{LongPoll as P, WebSocket as W};
    assert_eq!(seen, [W, W, P, W, P, W]);
    assert_eq!(h.transports, seen);
}

#[test]
fn without_websocket_every_attempt_long_polls_and_nothing_probes() {
    let mut h = Harness::new(fallback_config());
    h.event(Event::Start);
    let actions = h.event(Event::Unsupported);
    assert_eq!(opens(&actions), 1);
    assert_eq!(h.transports, [Transport::WebSocket, Transport::LongPoll]);
    h.sockets.retain(|s| *s != SocketId(1));
    h.open();
    assert!(h.status().is_open());
    assert!(!h.timers.contains_key(&TimerKind::Probe));
    h.server_close(1006);
    assert_eq!(next_attempt(&mut h), Transport::LongPoll);
}

#[test]
fn with_the_fallback_off_it_only_ever_tries_websocket() {
    let mut config = fallback_config();
    config.fallback.enabled = false;
    let mut h = Harness::new(config);
    h.event(Event::Start);
    for _ in 0..4 {
        refuse(&mut h);
        assert_eq!(next_attempt(&mut h), Transport::WebSocket);
    }
    h.event(Event::Unsupported);
    assert_eq!(
        h.status(),
        ConnectionStatus::Failed(FailureReason::Unsupported)
    );
}

#[test]
fn a_websocket_that_opens_resets_the_count_of_refused_upgrades() {
    let mut h = Harness::new(fallback_config());
    h.event(Event::Start);
    refuse(&mut h);
    assert_eq!(next_attempt(&mut h), Transport::WebSocket);
    h.open();
    h.advance_by(10);
    h.server_close(1006);
    // One failure before, then a success: the next failure is the first.
    assert_eq!(next_attempt(&mut h), Transport::WebSocket);
    refuse(&mut h);
    assert_eq!(next_attempt(&mut h), Transport::WebSocket);
}

#[test]
fn after_falling_back_a_lost_link_retries_long_polling_before_alternating_again() {
    let mut h = Harness::new(fallback_config());
    fall_back(&mut h);
    h.advance_by(10);
    h.server_close(1006);
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next_attempt(&mut h));
        refuse(&mut h);
    }
    use Transport::{LongPoll as P, WebSocket as W};
    // Three on long-polling (the server is down), then alternating.
    assert_eq!(seen, [P, P, P, W, P]);
}
