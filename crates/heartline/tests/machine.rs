//! Named scenarios of the connection machine, on a virtual clock.
#![allow(clippy::unwrap_used)]

mod support;

use heartline::core::*;
use serde_json::json;
use support::*;

fn chat_send(text: &str) -> serde_json::Value {
    json!({"socketType":"chat.send","room":"lobby","text":text})
}

// ---------------------------------------------------------------- states

#[test]
fn idle_to_connecting_on_start() {
    let mut h = Harness::new(test_config());
    assert_eq!(h.status(), ConnectionStatus::Idle);
    let actions = h.event(Event::Start);
    assert_eq!(
        actions[0],
        Action::Open {
            socket: SocketId(1),
            transport: Transport::WebSocket,
        }
    );
    assert!(
        actions.contains(&Action::StatusChanged(ConnectionStatus::Connecting {
            attempt: 1
        }))
    );
}

#[test]
fn connecting_to_open_on_opened() {
    let mut h = Harness::new(test_config());
    h.event(Event::Start);
    let actions = h.event(Event::Opened {
        socket: SocketId(1),
    });
    assert!(
        actions.contains(&Action::StatusChanged(ConnectionStatus::Open {
            degraded: false,
            transport: Transport::WebSocket,
        }))
    );
    assert!(actions.contains(&Action::CancelTimer(TimerKind::ConnectTimeout)));
    assert!(actions.contains(&Action::SetTimer {
        kind: TimerKind::Heartbeat,
        at: 10_000
    }));
}

#[test]
fn open_to_reconnecting_on_server_close() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.now = 100;
    h.server_close(1006);
    assert_eq!(
        h.status(),
        ConnectionStatus::Reconnecting {
            attempt: 2,
            at: 1_100
        }
    );
}

#[test]
fn reconnecting_to_connecting_when_the_timer_fires() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(1006);
    let actions = h.advance_to(1_000);
    assert!(actions.contains(&Action::Open {
        socket: SocketId(2),
        transport: Transport::WebSocket,
    }));
    assert_eq!(h.status(), ConnectionStatus::Connecting { attempt: 2 });
}

#[test]
fn connecting_to_reconnecting_on_connect_error() {
    let mut h = Harness::new(test_config());
    h.event(Event::Start);
    let actions = h.event(Event::Error {
        socket: SocketId(1),
    });
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_NORMAL)]);
    assert_eq!(
        h.status(),
        ConnectionStatus::Reconnecting {
            attempt: 2,
            at: 1_000
        }
    );
}

#[test]
fn reconnecting_to_offline_and_back_to_connecting_on_online() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(1006);
    let actions = h.event(Event::Offline);
    assert!(actions.contains(&Action::CancelTimer(TimerKind::Reconnect)));
    assert_eq!(h.status(), ConnectionStatus::Offline);
    // Nothing happens while offline, however long.
    assert_eq!(opens(&h.advance_to(600_000)), 0);
    let actions = h.event(Event::Online);
    assert_eq!(opens(&actions), 1, "online retries at once");
    assert_eq!(h.status(), ConnectionStatus::Connecting { attempt: 2 });
}

#[test]
fn connecting_to_offline_abandons_the_attempt() {
    let mut h = Harness::new(test_config());
    h.event(Event::Start);
    let actions = h.event(Event::Offline);
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_NORMAL)]);
    assert_eq!(h.status(), ConnectionStatus::Offline);
    assert!(h.sockets.is_empty());
}

#[test]
fn start_while_offline_waits_for_the_network() {
    let mut h = Harness::new(test_config());
    h.event(Event::Offline);
    let actions = h.event(Event::Start);
    assert_eq!(opens(&actions), 0);
    assert_eq!(h.status(), ConnectionStatus::Offline);
    assert_eq!(opens(&h.event(Event::Online)), 1);
}

#[test]
fn open_to_closed_on_stop() {
    let mut h = Harness::new(test_config());
    h.connect();
    let actions = h.event(Event::Stop);
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_NORMAL)]);
    assert_eq!(h.status(), ConnectionStatus::Closed);
    assert_eq!(h.status().failure_code(), Some(FailureCode::Closed));
    assert!(h.timers.is_empty(), "{:?}", h.timers);
}

#[test]
fn reconnecting_to_closed_on_stop() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(1006);
    h.event(Event::Stop);
    assert_eq!(h.status(), ConnectionStatus::Closed);
    assert_eq!(opens(&h.advance_to(100_000)), 0);
}

#[test]
fn closed_to_connecting_on_start() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.event(Event::Stop);
    let actions = h.event(Event::Start);
    assert_eq!(
        actions[0],
        Action::Open {
            socket: SocketId(2),
            transport: Transport::WebSocket,
        }
    );
    assert_eq!(h.status(), ConnectionStatus::Connecting { attempt: 1 });
}

#[test]
fn open_to_failed_on_auth_refusal() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(CLOSE_AUTH_REFUSED);
    let status = h.status();
    assert!(matches!(
        status,
        ConnectionStatus::Failed(FailureReason::AuthRefused { .. })
    ));
    assert_eq!(status.failure_code(), Some(FailureCode::AuthFailed));
    assert_eq!(
        status.description(0),
        "Failed: the server refused our credentials"
    );
}

#[test]
fn open_to_failed_on_protocol_error_close() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(CLOSE_PROTOCOL_ERROR);
    assert!(matches!(
        h.status(),
        ConnectionStatus::Failed(FailureReason::ProtocolError { .. })
    ));
    assert_eq!(opens(&h.advance_to(100_000)), 0);
}

#[test]
fn app_marked_final_close_code_stops_reconnecting() {
    let config = Config {
        final_close_codes: vec![4001, 4009],
        ..test_config()
    };
    let mut h = Harness::new(config);
    h.connect();
    h.server_close(4009);
    assert_eq!(
        h.status(),
        ConnectionStatus::Failed(FailureReason::ClosedByServer {
            code: 4009,
            reason: String::new()
        })
    );
    assert_eq!(opens(&h.advance_to(100_000)), 0);
}

#[test]
fn reconnecting_to_failed_after_the_retry_limit() {
    let mut h = Harness::new(test_config()); // max_retries = 3
    h.event(Event::Start);
    let mut attempts = 1;
    loop {
        let socket = h.live();
        h.sockets.clear();
        h.event(Event::Closed {
            socket,
            code: 1006,
            reason: String::new(),
            was_clean: false,
        });
        if let ConnectionStatus::Failed(reason) = h.status() {
            assert_eq!(reason, FailureReason::ConnectFailed { attempts: 4 });
            assert_eq!(h.status().failure_code(), Some(FailureCode::ConnectFailed));
            break;
        }
        let ConnectionStatus::Reconnecting { at, .. } = h.status() else {
            panic!("{:?}", h.status())
        };
        let actions = h.advance_to(at);
        assert_eq!(opens(&actions), 1);
        attempts += 1;
    }
    assert_eq!(attempts, 4, "one attempt and three retries");
    assert_eq!(h.conn.stats().connect_attempts, 4);
}

#[test]
fn infinite_retries_never_give_up() {
    let config = Config {
        max_retries: None,
        ..test_config()
    };
    let mut h = Harness::new(config);
    h.event(Event::Start);
    for _ in 0..200 {
        let socket = h.live();
        h.sockets.clear();
        h.event(Event::Error { socket });
        assert!(matches!(h.status(), ConnectionStatus::Reconnecting { .. }));
        h.advance_by(8_000);
    }
}

#[test]
fn failed_to_connecting_on_retry_now_starts_afresh() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(CLOSE_AUTH_REFUSED);
    let actions = h.event(Event::RetryNow);
    assert_eq!(opens(&actions), 1);
    assert_eq!(h.status(), ConnectionStatus::Connecting { attempt: 1 });
}

#[test]
fn retry_now_skips_the_wait() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(1006);
    h.now = 10;
    let actions = h.event(Event::RetryNow);
    assert_eq!(opens(&actions), 1);
    assert!(actions.contains(&Action::CancelTimer(TimerKind::Reconnect)));
    assert_eq!(h.status(), ConnectionStatus::Connecting { attempt: 2 });
}

#[test]
fn unsupported_browser_fails_at_once() {
    let mut h = Harness::new(test_config());
    h.event(Event::Unsupported);
    assert_eq!(
        h.status(),
        ConnectionStatus::Failed(FailureReason::Unsupported)
    );
    assert_eq!(h.status().failure_code(), Some(FailureCode::Unsupported));
}

#[test]
fn heartbeat_lost_repeatedly_fails() {
    let mut h = Harness::new(test_config()); // max_losses = 3
    h.connect();
    for round in 1..=3 {
        let actions = h.advance_by(15_000);
        assert!(
            closes(&actions)
                .iter()
                .any(|(_, code)| *code == CLOSE_HEARTBEAT_LOST)
        );
        if round < 3 {
            h.advance_by(10_000);
            h.open();
        }
    }
    assert_eq!(
        h.status(),
        ConnectionStatus::Failed(FailureReason::HeartbeatLost { times: 3 })
    );
    assert_eq!(h.status().failure_code(), Some(FailureCode::HeartbeatLost));
}

#[test]
fn open_is_flagged_degraded_on_slow_round_trips_without_closing() {
    let mut h = Harness::new(test_config()); // degraded at 2 s smoothed RTT
    h.connect();
    h.advance_to(10_000); // ping with t = 10000
    h.now = 14_000;
    let actions = h.frame(r#"{"socketType":"pong","t":10000}"#);
    assert!(
        actions.contains(&Action::StatusChanged(ConnectionStatus::Open {
            degraded: true,
            transport: Transport::WebSocket,
        }))
    );
    assert_eq!(h.conn.stats().last_rtt, Some(4_000));
    assert!(closes(&actions).is_empty());
    // Fast pongs bring the smoothed RTT back under the threshold.
    for _ in 0..30 {
        h.advance_to(h.now + 10_000);
        let t = h.now;
        h.now += 10;
        h.frame(&format!(r#"{{"socketType":"pong","t":{t}}}"#));
    }
    assert_eq!(
        h.status(),
        ConnectionStatus::Open {
            degraded: false,
            transport: Transport::WebSocket
        }
    );
}

#[test]
fn stale_socket_events_are_ignored() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(1006);
    h.advance_to(1_000);
    h.open(); // socket 2
    let before = h.conn.stats();
    let actions = h.event(Event::Frame {
        socket: SocketId(1),
        data: FrameData::Text("{}".into()),
    });
    assert!(actions.is_empty());
    let actions = h.event(Event::Closed {
        socket: SocketId(1),
        code: 1006,
        reason: String::new(),
        was_clean: false,
    });
    assert!(actions.is_empty());
    assert_eq!(h.conn.stats(), before);
    assert!(h.status().is_open());
}

// ---------------------------------------------------------------- backoff

#[test]
fn backoff_grows_by_the_factor_up_to_the_cap() {
    let config = BackoffConfig {
        base: 1_000,
        factor: 2.0,
        cap: 30_000,
        jitter: Jitter::None,
    };
    let mut backoff = Backoff::new(config, 1);
    let delays: Vec<Millis> = (1..=7).map(|n| backoff.next_delay(n)).collect();
    assert_eq!(
        delays,
        vec![1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
    );
}

#[test]
fn full_jitter_stays_inside_the_growing_envelope() {
    let config = BackoffConfig {
        base: 1_000,
        factor: 1.5,
        cap: 30_000,
        jitter: Jitter::Full,
    };
    let mut backoff = Backoff::new(config, 99);
    for retry in 1..=30 {
        let envelope = backoff.envelope(retry);
        let mut seen_max = 0;
        for _ in 0..200 {
            let delay = backoff.next_delay(retry);
            assert!(
                (1_000..=envelope).contains(&delay),
                "{retry}: {delay} > {envelope}"
            );
            seen_max = seen_max.max(delay);
        }
        // Jitter actually spreads the delays once the envelope is wide.
        if envelope >= 4_000 {
            assert!(
                seen_max > envelope / 2,
                "{retry}: max {seen_max} of {envelope}"
            );
        }
    }
    assert!(backoff.envelope(2) > backoff.envelope(1));
}

#[test]
fn decorrelated_jitter_stays_within_base_and_cap() {
    let config = BackoffConfig {
        base: 500,
        factor: 2.0,
        cap: 10_000,
        jitter: Jitter::Decorrelated,
    };
    let mut backoff = Backoff::new(config, 5);
    let delays: Vec<Millis> = (1..2_000).map(|n| backoff.next_delay(n)).collect();
    assert!(delays.iter().all(|d| (500..=10_000).contains(d)));
    assert!(delays.iter().any(|d| *d > 5_000), "it grows");
    assert!(delays.windows(2).any(|w| w[0] != w[1]), "it varies");
}

#[test]
fn machine_reconnect_delays_grow_between_base_and_cap() {
    let config = Config {
        max_retries: None,
        ..test_config()
    };
    let mut h = Harness::new(config);
    h.event(Event::Start);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let socket = h.live();
        h.sockets.clear();
        h.event(Event::Error { socket });
        let ConnectionStatus::Reconnecting { at, .. } = h.status() else {
            panic!()
        };
        delays.push(at - h.now);
        h.advance_to(at);
    }
    assert_eq!(
        delays,
        vec![1_000, 2_000, 4_000, 8_000, 8_000, 8_000, 8_000, 8_000]
    );
}

// ---------------------------------------------------------------- timeouts

#[test]
fn connect_timeout_abandons_the_attempt_and_counts_as_failed() {
    let mut h = Harness::new(test_config()); // connect_timeout 5 s
    h.event(Event::Start);
    assert!(closes(&h.advance_to(4_999)).is_empty());
    assert!(matches!(h.status(), ConnectionStatus::Connecting { .. }));
    let actions = h.advance_to(5_000);
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_NORMAL)]);
    assert_eq!(
        h.status(),
        ConnectionStatus::Reconnecting {
            attempt: 2,
            at: 6_000
        }
    );
    // The abandoned socket opening late changes nothing.
    let actions = h.event(Event::Opened {
        socket: SocketId(1),
    });
    assert!(actions.is_empty());
}

#[test]
fn min_uptime_accept_and_drop_does_not_reset_the_attempt_counter() {
    let mut h = Harness::new(test_config()); // min_uptime 3 s
    h.event(Event::Start);
    h.event(Event::Error {
        socket: SocketId(1),
    }); // failure 1
    h.advance_to(1_000);
    h.open(); // opens...
    h.now += 500; // ...and is dropped at once
    h.server_close(1006);
    assert_eq!(
        h.status(),
        ConnectionStatus::Reconnecting {
            attempt: 3,
            at: 1_500 + 2_000
        },
        "an accept-and-drop is still a failure"
    );
}

#[test]
fn min_uptime_reached_resets_the_attempt_counter() {
    let mut h = Harness::new(test_config());
    h.event(Event::Start);
    h.event(Event::Error {
        socket: SocketId(1),
    });
    h.advance_to(1_000);
    h.open();
    h.advance_by(3_000); // healthy for min_uptime
    h.server_close(1006);
    assert_eq!(
        h.status(),
        ConnectionStatus::Reconnecting {
            attempt: 2,
            at: 5_000
        }
    );
}

#[test]
fn no_reconnect_after_intentional_close() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.event(Event::Stop);
    // The browser's close event for the closed socket arrives later.
    let actions = h.event(Event::Closed {
        socket: SocketId(1),
        code: 1000,
        reason: String::new(),
        was_clean: true,
    });
    assert!(actions.is_empty());
    assert_eq!(opens(&h.advance_to(1_000_000)), 0);
    assert_eq!(opens(&h.event(Event::Online)), 0);
    assert_eq!(opens(&h.event(Event::RetryNow)), 0);
    assert_eq!(h.status(), ConnectionStatus::Closed);
}

#[test]
fn no_reconnect_after_auth_refusal() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(CLOSE_AUTH_REFUSED);
    assert_eq!(opens(&h.advance_to(1_000_000)), 0);
    assert_eq!(opens(&h.event(Event::Online)), 0);
    assert_eq!(opens(&h.event(Event::Visible)), 0);
}

#[test]
fn error_and_close_of_one_socket_schedule_one_reconnect() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.event(Event::Error {
        socket: SocketId(1),
    });
    let actions = h.event(Event::Closed {
        socket: SocketId(1),
        code: 1006,
        reason: String::new(),
        was_clean: false,
    });
    assert!(actions.is_empty());
    let actions = h.advance_to(1_000);
    assert_eq!(opens(&actions), 1);
    let reconnect_timers = h
        .log
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::SetTimer {
                    kind: TimerKind::Reconnect,
                    ..
                }
            )
        })
        .count();
    assert_eq!(reconnect_timers, 1);
}

// ---------------------------------------------------------------- heartbeat

#[test]
fn heartbeat_kills_a_silent_link_after_interval_plus_timeout_and_not_before() {
    let mut h = Harness::new(test_config()); // interval 10 s, timeout 5 s
    h.connect();
    assert!(frames(&h.advance_to(9_999)).is_empty());
    let actions = h.advance_to(10_000);
    assert_eq!(frames(&actions), vec![r#"{"socketType":"ping","t":10000}"#]);
    assert!(closes(&h.advance_to(14_999)).is_empty());
    assert!(h.status().is_open());
    let actions = h.advance_to(15_000);
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_HEARTBEAT_LOST)]);
    assert!(matches!(h.status(), ConnectionStatus::Reconnecting { .. }));
    assert_eq!(h.conn.stats().heartbeat_losses, 1);
}

#[test]
fn any_inbound_frame_counts_as_life() {
    let mut h = Harness::new(test_config()); // interval 10 s, timeout 5 s
    h.connect();
    let mut pings = Vec::new();
    for t in (1_000..120_000).step_by(4_000) {
        let actions = h.advance_to(t);
        pings.extend(frames(&actions).into_iter().map(|_| h.now));
        h.frame(r#"{"socketType":"presence","users":[]}"#);
    }
    assert!(
        h.status().is_open(),
        "a talking link is never declared dead"
    );
    // Only round-trip samples, every third interval, never for liveness.
    assert!(pings.iter().all(|t| *t >= 30_000), "{pings:?}");
    assert_eq!(h.conn.stats().heartbeat_losses, 0);
}

#[test]
fn a_talking_link_still_gets_round_trip_samples() {
    let mut h = Harness::new(test_config());
    h.connect();
    let mut answered = 0;
    for t in (1_000..100_000).step_by(1_000) {
        let actions = h.advance_to(t);
        for ping in frames(&actions) {
            let value: serde_json::Value = serde_json::from_str(&ping).unwrap();
            h.now += 40;
            h.frame(&json!({"socketType":"pong","t":value["t"]}).to_string());
            answered += 1;
        }
        h.frame(r#"{"socketType":"metrics.sample"}"#);
    }
    assert!(answered >= 3, "{answered}");
    assert_eq!(h.conn.stats().last_rtt, Some(40));
    assert_eq!(
        h.status(),
        ConnectionStatus::Open {
            degraded: false,
            transport: Transport::WebSocket
        }
    );
}

#[test]
fn late_heartbeat_timer_does_not_kill_a_link_that_is_still_talking() {
    let mut h = Harness::new(test_config());
    h.connect();
    // The tab is throttled: the heartbeat timer (due at 10 s) is held back
    // while frames keep arriving.
    for t in (2_000..=80_000).step_by(2_000) {
        h.now = t;
        h.frame(r#"{"socketType":"metrics.sample"}"#);
    }
    h.now = 80_500;
    let actions = h.fire_now(TimerKind::Heartbeat);
    assert!(closes(&actions).is_empty());
    // At most a round-trip sample goes out; the link keeps talking past its
    // deadline and stays up.
    for t in (81_000..=100_000).step_by(1_000) {
        assert!(closes(&h.advance_to(t)).is_empty());
        h.frame(r#"{"socketType":"metrics.sample"}"#);
    }
    assert!(h.status().is_open());
    assert_eq!(h.conn.stats().heartbeat_losses, 0);
}

#[test]
fn late_pong_timer_does_not_kill_a_link_that_talked_after_the_ping() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.advance_to(10_000); // ping
    h.now = 11_000;
    h.frame(r#"{"socketType":"metrics.sample"}"#);
    h.now = 70_000; // pong timer due at 15 s fires a minute late
    let actions = h.fire_now(TimerKind::PongTimeout);
    assert!(closes(&actions).is_empty());
    assert!(h.status().is_open());
}

#[test]
fn late_pong_timer_after_silence_gets_one_short_grace() {
    let mut h = Harness::new(test_config()); // probe_timeout 2 s
    h.connect();
    h.advance_to(10_000); // ping, nothing comes back (the tab froze)
    h.now = 70_000;
    let actions = h.fire_now(TimerKind::PongTimeout);
    assert!(
        closes(&actions).is_empty(),
        "a late timer alone is no verdict"
    );
    assert!(matches!(
        reports(&actions)[..],
        [Report::LateTimer {
            kind: TimerKind::PongTimeout,
            ..
        }]
    ));
    // The frames queued behind the frozen timer arrive: the link lives.
    h.now = 70_010;
    h.frame(r#"{"socketType":"pong","t":10000}"#);
    assert!(h.status().is_open());

    // Without any frame, the grace ends in a verdict.
    let mut h = Harness::new(test_config());
    h.connect();
    h.advance_to(10_000);
    h.now = 70_000;
    h.fire_now(TimerKind::PongTimeout);
    let actions = h.advance_to(72_000);
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_HEARTBEAT_LOST)]);
}

#[test]
fn visible_probes_an_open_link_at_once() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.event(Event::Hidden);
    h.now = 3_000;
    let actions = h.event(Event::Visible);
    assert_eq!(frames(&actions), vec![r#"{"socketType":"ping","t":3000}"#]);
    assert!(actions.contains(&Action::SetTimer {
        kind: TimerKind::PongTimeout,
        at: 5_000
    }));
    let actions = h.advance_to(5_000);
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_HEARTBEAT_LOST)]);
}

#[test]
fn online_probes_an_open_link_and_a_pong_keeps_it() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.now = 1_000;
    let actions = h.event(Event::Online);
    assert_eq!(frames(&actions).len(), 1);
    h.now = 1_050;
    h.frame(r#"{"socketType":"pong","t":1000}"#);
    h.advance_to(2_000);
    assert!(h.status().is_open());
    assert_eq!(h.conn.stats().last_rtt, Some(50));
    assert_eq!(h.conn.stats().smoothed_rtt, Some(50));
}

#[test]
fn text_heartbeat_style_pings_and_matches_text_pong() {
    let mut config = test_config();
    config.heartbeat.style = HeartbeatStyle::Text {
        ping: "ping".into(),
        pong: "pong".into(),
    };
    let mut h = Harness::new(config);
    h.connect();
    let actions = h.advance_to(10_000);
    assert_eq!(frames(&actions), vec!["ping"]);
    h.now = 10_120;
    let actions = h.frame("pong");
    assert!(delivered(&actions).is_empty());
    assert_eq!(h.conn.stats().last_rtt, Some(120));
    assert_eq!(h.conn.stats().malformed, 0, "the text pong is not bad JSON");
    h.advance_to(19_000);
    assert!(h.status().is_open());
}

#[test]
fn server_json_ping_is_answered_with_the_same_t() {
    let mut h = Harness::new(test_config());
    h.connect();
    let actions = h.frame(r#"{"socketType":"ping","t":12.5}"#);
    assert_eq!(frames(&actions), vec![r#"{"socketType":"pong","t":12.5}"#]);
    assert!(delivered(&actions).is_empty());
}

#[test]
fn disabled_heartbeat_never_pings() {
    let mut config = test_config();
    config.heartbeat.style = HeartbeatStyle::Disabled;
    let mut h = Harness::new(config);
    h.connect();
    h.event(Event::Visible);
    let actions = h.advance_to(1_000_000);
    assert!(frames(&actions).is_empty());
    assert!(h.status().is_open());
}

// ---------------------------------------------------------------- outbox

#[test]
fn queued_messages_are_resent_in_order_after_reconnect_and_removed_only_on_ack() {
    let mut h = Harness::new(test_config());
    let a = h.send(chat_send("a")); // queued before any socket
    h.connect();
    let b = h.send(chat_send("b"));
    let c = h.send(chat_send("c"));
    h.ack(&a);
    assert_eq!(h.conn.outbox_ids(), vec![b.clone(), c.clone()]);
    assert_eq!(h.conn.stats().in_flight, 2);

    h.server_close(1006);
    let d = h.send(chat_send("d"));
    assert_eq!(h.conn.stats().queued, 3);
    h.advance_to(1_000);
    let actions = h.event(Event::Opened {
        socket: SocketId(2),
    });
    let sent = frames(&actions);
    assert_eq!(sent.len(), 3);
    for (frame, id) in sent.iter().zip([&b, &c, &d]) {
        assert!(frame.contains(&format!(r#""id":"{id}""#)), "{frame}");
    }
    assert_eq!(h.conn.outbox_ids(), vec![b.clone(), c.clone(), d.clone()]);
    h.ack(&c);
    h.ack(&b);
    h.ack(&d);
    assert!(h.conn.outbox_ids().is_empty());
    assert_eq!(h.conn.stats().acked, 4);
    // A duplicate ack is reported, not counted twice.
    let actions = h.ack(&d);
    assert!(matches!(reports(&actions)[..], [Report::UnknownAck { .. }]));
    assert_eq!(h.conn.stats().acked, 4);
}

#[test]
fn new_messages_wait_behind_resent_ones() {
    let mut h = Harness::new(test_config());
    h.connect();
    let a = h.send(chat_send("a"));
    h.server_close(1006);
    h.advance_to(1_000);
    h.open();
    let b = h.send(chat_send("b"));
    let sent: Vec<String> = frames(&h.log)
        .into_iter()
        .filter(|f| f.contains("chat.send"))
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent[1].contains(a.as_str()) && sent[2].contains(b.as_str()));
}

#[test]
fn queue_full_is_a_clear_error_not_a_silent_drop() {
    let mut h = Harness::new(Config {
        outbox_limit: 2,
        ..test_config()
    });
    h.send(chat_send("1"));
    h.send(chat_send("2"));
    let err = h
        .conn
        .send(0, chat_send("3"), SendOptions::default())
        .unwrap_err();
    assert_eq!(err, SendError::QueueFull { limit: 2 });
    assert_eq!(err.to_string(), "the outbox is full (2 messages)");
    assert_eq!(h.conn.outbox_ids().len(), 2);
}

#[test]
fn volatile_messages_are_never_queued() {
    let mut h = Harness::new(test_config());
    let typing = json!({"socketType":"typing","room":"lobby"});
    assert_eq!(
        h.conn.send_volatile(typing.clone()),
        Err(SendError::NotOpen)
    );
    h.connect();
    assert_eq!(h.conn.send_volatile(typing.clone()), Ok(()));
    let sent = json_frames(&h.drain());
    assert_eq!(sent, vec![json!({"room":"lobby","socketType":"typing"})]);
    h.server_close(1006);
    assert_eq!(h.conn.send_volatile(typing), Err(SendError::NotOpen));
    h.advance_to(1_000);
    let actions = h.event(Event::Opened {
        socket: SocketId(2),
    });
    assert!(frames(&actions).is_empty(), "nothing volatile re-sent");
    assert!(h.conn.outbox_ids().is_empty());
}

#[test]
fn invalid_sends_are_refused() {
    let mut h = Harness::new(test_config());
    let opts = SendOptions::default();
    assert_eq!(
        h.conn.send(0, json!([1]), opts),
        Err(SendError::NotAnObject)
    );
    assert_eq!(
        h.conn.send(0, json!({"type":"x"}), opts),
        Err(SendError::MissingSocketType)
    );
    let big = json!({"socketType":"x","text":"y".repeat(70_000)});
    assert!(matches!(
        h.conn.send(0, big, opts),
        Err(SendError::TooLarge { .. })
    ));
    h.connect();
    h.event(Event::Stop);
    assert_eq!(
        h.conn.send(0, chat_send("late"), opts),
        Err(SendError::Closed)
    );
}

#[test]
fn queued_message_can_be_cancelled_but_not_one_in_flight() {
    let mut h = Harness::new(test_config());
    let a = h.send(chat_send("a"));
    assert_eq!(h.conn.cancel(&a), Ok(()));
    assert_eq!(
        states(&h.drain()),
        vec![(a.clone(), DeliveryState::Failed(MessageFailure::Cancelled))]
    );
    h.connect();
    let b = h.send(chat_send("b"));
    assert_eq!(h.conn.cancel(&b), Err(CancelError::InFlight));
    assert_eq!(h.conn.cancel(&a), Err(CancelError::NotFound));
}

#[test]
fn message_past_its_ttl_fails_visibly_instead_of_going_out_stale() {
    let mut h = Harness::new(test_config());
    let id = h
        .conn
        .send(0, chat_send("old"), SendOptions { ttl: Some(2_000) })
        .unwrap();
    h.drain();
    let actions = h.advance_to(2_000);
    assert_eq!(
        states(&actions),
        vec![(id, DeliveryState::Failed(MessageFailure::Expired))]
    );
    h.connect();
    assert!(!frames(&h.log).iter().any(|f| f.contains("old")));
    assert_eq!(h.conn.stats().failed, 1);
}

#[test]
fn in_flight_message_expires_only_if_the_link_drops_before_its_ack() {
    let mut h = Harness::new(Config {
        default_ttl: Some(2_000),
        ..test_config()
    });
    h.connect();
    let id = h.send(chat_send("x"));
    h.advance_to(5_000);
    assert_eq!(h.conn.delivery_state(&id), Some(DeliveryState::Sent));
    let actions = h.server_close(1006);
    assert!(states(&actions).contains(&(id, DeliveryState::Failed(MessageFailure::Expired))));
}

#[test]
fn refused_message_is_removed_and_never_retried() {
    let mut h = Harness::new(test_config());
    h.connect();
    let id = h.send(chat_send(""));
    let refusal =
        format!(r#"{{"socketType":"error","code":"invalid_field","message":"empty","id":"{id}"}}"#);
    let actions = h.frame(&refusal);
    assert_eq!(
        states(&actions),
        vec![(
            id.clone(),
            DeliveryState::Failed(MessageFailure::Refused {
                code: "invalid_field".into(),
                message: "empty".into()
            })
        )]
    );
    assert_eq!(delivered(&actions).len(), 1, "the error is also delivered");
    h.server_close(1006);
    h.advance_to(1_000);
    let actions = h.event(Event::Opened {
        socket: SocketId(2),
    });
    assert!(frames(&actions).is_empty());
}

#[test]
fn back_pressure_holds_reliable_messages_until_the_buffer_drains() {
    let mut h = Harness::new(Config {
        high_water_mark: 100,
        ..test_config()
    });
    let socket = h.connect();
    h.send(chat_send(&"a".repeat(150))); // written: the buffer was empty
    let second = h.send(chat_send("b")); // over the mark: waits
    assert_eq!(h.conn.delivery_state(&second), Some(DeliveryState::Queued));
    assert!(h.timers.contains_key(&TimerKind::Flush));
    assert_eq!(
        h.conn.send_volatile(json!({"socketType":"typing"})),
        Err(SendError::Congested)
    );
    let actions = h.event(Event::BufferedAmount { socket, bytes: 500 });
    assert!(frames(&actions).is_empty());
    let actions = h.event(Event::BufferedAmount { socket, bytes: 0 });
    assert_eq!(frames(&actions).len(), 1);
    assert_eq!(h.conn.delivery_state(&second), Some(DeliveryState::Sent));
}

#[test]
fn outbox_export_and_restore_sends_each_message_once() {
    let mut before = Harness::new(test_config());
    let a = before.send(chat_send("a"));
    let b = before
        .conn
        .send(0, chat_send("b"), SendOptions { ttl: Some(60_000) })
        .unwrap();
    let saved = before.conn.export_outbox();

    // After a reload: a new machine with another seed.
    let mut after = Harness::new(test_config());
    after.conn = Connection::new(test_config(), 99);
    let restored = after.conn.restore_outbox(1_000, &saved).unwrap();
    assert_eq!(restored, vec![a.clone(), b.clone()]);
    // Restoring the same dump twice adds nothing.
    assert_eq!(after.conn.restore_outbox(1_000, &saved), Ok(vec![]));
    after.drain();
    after.connect();
    let sent = frames(&after.log);
    assert_eq!(sent.len(), 2);
    assert!(sent[0].contains(a.as_str()) && sent[1].contains(b.as_str()));
    let c = after.send(chat_send("c"));
    assert!(c != a && c != b);

    assert!(matches!(
        after
            .conn
            .restore_outbox(0, r#"{"version":9,"messages":[]}"#),
        Err(RestoreError::Version(9))
    ));
    assert!(matches!(
        after
            .conn
            .restore_outbox(0, r#"{"version":1,"messages":[{"id":"z","frame":"[1]"}]}"#),
        Err(RestoreError::InvalidMessage(_))
    ));
}

#[test]
fn restore_beyond_the_limit_restores_nothing() {
    let mut source = Harness::new(test_config());
    for i in 0..5 {
        source.send(chat_send(&i.to_string()));
    }
    let saved = source.conn.export_outbox();
    let mut small = Harness::new(Config {
        outbox_limit: 3,
        ..test_config()
    });
    assert_eq!(
        small.conn.restore_outbox(0, &saved),
        Err(RestoreError::QueueFull {
            needed: 5,
            limit: 3
        })
    );
    assert!(small.conn.outbox_ids().is_empty());
}

// ---------------------------------------------------------------- session replay

#[test]
fn greeting_is_built_afresh_for_every_attempt_then_standing_then_outbox() {
    let mut h = Harness::new(test_config());
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = calls.clone();
    h.conn.set_greeting(Some(Box::new(move || {
        counter.set(counter.get() + 1);
        Some(json!({"socketType":"hello","token":format!("t{}", counter.get())}))
    })));
    h.conn
        .add_standing("metrics", json!({"socketType":"metrics.subscribe"}), None)
        .unwrap();
    h.send(chat_send("x"));
    h.event(Event::Start);
    let actions = h.open();
    let _ = actions;
    let first = frames(&h.log);
    assert!(first[0].contains(r#""token":"t1""#));
    assert!(first[1].contains("metrics.subscribe"));
    assert!(first[2].contains("chat.send"));

    h.server_close(1006);
    h.advance_to(1_000);
    let actions = h.event(Event::Opened {
        socket: SocketId(2),
    });
    let second = frames(&actions);
    assert!(second[0].contains(r#""token":"t2""#), "a fresh token");
    assert!(second[1].contains("metrics.subscribe"));
    assert!(second[2].contains("chat.send"));
    assert_eq!(calls.get(), 2);
}

#[test]
fn standing_subscription_added_while_open_is_sent_at_once_and_resumes_with_since() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.conn
        .add_standing(
            "room:lobby",
            json!({"socketType":"join","room":"lobby"}),
            Some("lobby".into()),
        )
        .unwrap();
    assert_eq!(
        json_frames(&h.drain()),
        vec![json!({"room":"lobby","socketType":"join"})]
    );
    h.frame(&chat("lobby", 1));
    h.frame(&chat("lobby", 2));
    h.server_close(1006);
    h.advance_to(1_000);
    let actions = h.event(Event::Opened {
        socket: SocketId(2),
    });
    assert_eq!(
        json_frames(&actions),
        vec![json!({"room":"lobby","since":2,"socketType":"join"})]
    );
    h.conn.remove_standing("room:lobby");
    h.server_close(1006);
    h.advance_to(10_000);
    let actions = h.event(Event::Opened {
        socket: SocketId(3),
    });
    assert!(frames(&actions).is_empty());
}

// ---------------------------------------------------------------- inbound

#[test]
fn stream_duplicates_are_dropped_and_out_of_order_messages_reordered() {
    let mut h = Harness::new(test_config());
    h.connect();
    let seqs = |actions: &[Action]| -> Vec<u64> {
        delivered(actions)
            .iter()
            .map(|m| m.stream.as_ref().unwrap().seq)
            .collect()
    };
    assert_eq!(seqs(&h.frame(&chat("lobby", 1))), vec![1]);
    assert_eq!(seqs(&h.frame(&chat("lobby", 1))), Vec::<u64>::new());
    let actions = h.frame(&chat("lobby", 3));
    assert_eq!(seqs(&actions), Vec::<u64>::new(), "3 waits for 2");
    assert!(matches!(
        reports(&actions)[..],
        [Report::Gap {
            expected: 2,
            got: 3,
            ..
        }]
    ));
    assert_eq!(seqs(&h.frame(&chat("lobby", 3))), Vec::<u64>::new());
    assert_eq!(seqs(&h.frame(&chat("lobby", 2))), vec![2, 3]);
    assert_eq!(
        seqs(&h.frame(&chat("other", 7))),
        vec![7],
        "streams are independent"
    );
    assert_eq!(h.conn.stats().duplicates, 2);
    assert_eq!(h.conn.last_seq("lobby"), Some(3));
}

#[test]
fn gap_after_reconnect_is_filled_by_the_resume_before_newer_messages() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.conn
        .add_standing(
            "room:lobby",
            json!({"socketType":"join","room":"lobby"}),
            Some("lobby".into()),
        )
        .unwrap();
    h.drain();
    h.frame(&chat("lobby", 1));
    h.server_close(1006);
    h.advance_to(1_000);
    let actions = h.open();
    let _ = actions;
    assert!(frames(&h.log).last().unwrap().contains(r#""since":1"#));
    // A live message overtakes the history the resume asked for.
    assert!(delivered(&h.frame(&chat("lobby", 4))).is_empty());
    assert!(delivered(&h.frame(&chat("lobby", 2))).len() == 1);
    let actions = h.frame(&chat("lobby", 3));
    let seqs: Vec<u64> = delivered(&actions)
        .iter()
        .map(|m| m.stream.as_ref().unwrap().seq)
        .collect();
    assert_eq!(seqs, vec![3, 4]);
}

#[test]
fn gap_opened_while_open_asks_again_and_is_skipped_after_a_timeout() {
    let mut h = Harness::new(test_config()); // stream_gap_timeout 5 s
    h.connect();
    h.conn
        .add_standing(
            "room:lobby",
            json!({"socketType":"join","room":"lobby"}),
            Some("lobby".into()),
        )
        .unwrap();
    h.drain();
    h.frame(&chat("lobby", 1));
    let actions = h.frame(&chat("lobby", 5));
    assert_eq!(
        json_frames(&actions),
        vec![json!({"room":"lobby","since":1,"socketType":"join"})],
        "asks for what it missed"
    );
    h.now = 4_000;
    h.frame(&chat("lobby", 6));
    let actions = h.advance_to(5_000);
    assert_eq!(
        reports(&actions),
        vec![Report::GapSkipped {
            stream: "lobby".into(),
            from: 2,
            to: 4
        }]
    );
    assert_eq!(delivered(&actions).len(), 2);
    assert_eq!(h.conn.stats().gaps_skipped, 1);
}

#[test]
fn malformed_inputs_are_counted_and_reported_never_a_panic() {
    let mut h = Harness::new(test_config());
    let registry = Registry::new();
    let _guard = registry.subscribe("presence", std::rc::Rc::new(|_| {}));
    h.conn.set_registry(Some(registry));
    let socket = h.connect();
    let cases = [
        "{not json",
        "",
        "null",
        "[1,2,3]",
        r#"{"socketType":42}"#,
        r#"{"type":"presence"}"#,
        "\u{0}\u{ffff}",
        r#"{"socketType":"mystery"}"#,
        r#"{"socketType":"presence","users":[]}"#,
        r#"{"socketType":"ack"}"#,
        r#"{"socketType":"pong","t":"soon"}"#,
        r#"{"socketType":"pong","t":-1e308}"#,
        r#"{"socketType":"chat.message","stream":"s","seq":-1}"#,
        r#"{"socketType":"chat.message","stream":5,"seq":18446744073709551615}"#,
    ];
    for case in cases {
        h.frame(case);
    }
    h.event(Event::Frame {
        socket,
        data: FrameData::Text(format!(
            r#"{{"socketType":"presence","x":"{}"}}"#,
            "y".repeat(70_000)
        )),
    });
    h.event(Event::Frame {
        socket,
        data: FrameData::Binary(12),
    });
    let stats = h.conn.stats();
    assert_eq!(stats.malformed, 3, "{stats:?}");
    assert_eq!(stats.missing_type, 4, "{stats:?}");
    assert_eq!(stats.oversized, 1);
    assert_eq!(stats.binary_frames, 1);
    assert_eq!(stats.invalid_frames, 9);
    assert_eq!(
        stats.unknown_types, 3,
        "mystery and two chat.message without handler"
    );
    assert_eq!(stats.frames_in, 16);
    let reported = reports(&h.log);
    assert!(
        reported
            .iter()
            .any(|r| matches!(r, Report::Oversized { .. }))
    );
    assert!(
        reported
            .iter()
            .any(|r| matches!(r, Report::UnknownType { socket_type } if socket_type == "mystery"))
    );
    assert!(h.status().is_open());
}

#[test]
fn stats_count_frames_bytes_and_reconnects() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.frame(r#"{"socketType":"presence"}"#);
    h.conn
        .send_volatile(json!({"socketType":"typing"}))
        .unwrap();
    h.drain();
    h.server_close(1006);
    h.advance_to(1_000);
    h.open();
    let stats = h.conn.stats();
    assert_eq!(stats.frames_in, 1);
    assert_eq!(stats.bytes_in, r#"{"socketType":"presence"}"#.len() as u64);
    assert_eq!(stats.frames_out, 1);
    assert_eq!(stats.bytes_out, r#"{"socketType":"typing"}"#.len() as u64);
    assert_eq!(stats.connect_attempts, 2);
    assert_eq!(stats.reconnects, 1);
}

#[test]
fn status_changes_are_emitted_once_per_change() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.frame(r#"{"socketType":"presence"}"#);
    h.frame(r#"{"socketType":"presence"}"#);
    let changes: Vec<ConnectionStatus> = h
        .log
        .iter()
        .filter_map(|a| match a {
            Action::StatusChanged(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ConnectionStatus::Connecting { attempt: 1 },
            ConnectionStatus::Open {
                degraded: false,
                transport: Transport::WebSocket
            }
        ]
    );
}

#[test]
fn offline_while_open_probes_and_a_dead_link_waits_offline() {
    let mut h = Harness::new(test_config()); // probe_timeout 2 s
    h.connect();
    h.now = 1_000;
    let actions = h.event(Event::Offline);
    assert_eq!(frames(&actions).len(), 1, "a probe, not a blind teardown");
    assert!(h.status().is_open());
    let actions = h.advance_to(3_000);
    assert_eq!(closes(&actions), vec![(SocketId(1), CLOSE_HEARTBEAT_LOST)]);
    assert_eq!(h.status(), ConnectionStatus::Offline);
    assert_eq!(opens(&h.advance_to(100_000)), 0, "retries paused");
    assert_eq!(opens(&h.event(Event::Online)), 1);
}

#[test]
fn visible_after_a_throttled_reconnect_timer_connects_at_once() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(1006); // reconnect due at 1 s
    h.event(Event::Hidden);
    h.now = 50_000; // the timer never fired while hidden
    let actions = h.event(Event::Visible);
    assert_eq!(opens(&actions), 1);
}
