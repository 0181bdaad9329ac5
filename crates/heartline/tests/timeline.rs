//! The connection timeline and the round-trip history, on a virtual clock.
#![allow(clippy::unwrap_used)]

mod support;

use heartline::core::*;
use serde_json::json;
use support::*;

fn events(h: &Harness) -> Vec<TimelineEvent> {
    h.conn.timeline().map(|e| e.event.clone()).collect()
}

fn lines(h: &Harness) -> Vec<String> {
    h.conn.timeline().map(|e| e.event.to_string()).collect()
}

fn position(h: &Harness, wanted: impl Fn(&TimelineEvent) -> bool) -> usize {
    events(h)
        .iter()
        .position(wanted)
        .unwrap_or_else(|| panic!("not in the timeline: {:#?}", lines(h)))
}

#[test]
fn a_cut_and_a_reconnect_are_logged_in_order() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.now = 4_000;
    h.server_close(1006);
    let ConnectionStatus::Reconnecting { at, attempt } = h.status() else {
        panic!("expected a reconnect, got {:?}", h.status())
    };
    h.advance_to(at);
    h.open();
    assert!(h.status().is_open());

    let connected = position(&h, |e| *e == TimelineEvent::Open { reconnect: false });
    let lost = position(&h, |e| {
        matches!(
            e,
            TimelineEvent::Lost {
                cause: LinkLoss::Closed { code: 1006, .. }
            }
        )
    });
    let scheduled = position(&h, |e| {
        *e == TimelineEvent::Reconnecting {
            attempt,
            delay: at - 4_000,
        }
    });
    let reconnected = position(&h, |e| *e == TimelineEvent::Open { reconnect: true });
    assert!(
        connected < lost && lost < scheduled && scheduled < reconnected,
        "{:#?}",
        lines(&h)
    );
    assert_eq!(
        lines(&h),
        [
            "connecting",
            "connected",
            "connection lost: closed (1006)",
            "reconnecting in 1 s (attempt 2)",
            "connecting (attempt 2)",
            "reconnected",
        ]
    );
    // Times are the virtual clock's.
    let times: Vec<Millis> = h.conn.timeline().map(|e| e.at).collect();
    assert_eq!(times, [0, 0, 4_000, 4_000, 5_000, 5_000]);
}

#[test]
fn a_silent_link_logs_the_heartbeat_loss_then_the_retry() {
    let mut h = Harness::new(test_config());
    h.connect();
    // interval 10 s + timeout 5 s of silence.
    h.advance_to(15_000);
    let lost = position(&h, |e| matches!(e, TimelineEvent::HeartbeatLost { .. }));
    assert_eq!(
        events(&h)[lost],
        TimelineEvent::HeartbeatLost { silent_for: 15_000 }
    );
    assert_eq!(lines(&h)[lost], "heartbeat lost: no frame for 15 s");
    assert!(matches!(
        events(&h)[lost + 1],
        TimelineEvent::Reconnecting { .. }
    ));
    // The loss is not logged twice (no separate "connection lost").
    assert!(
        !events(&h)
            .iter()
            .any(|e| matches!(e, TimelineEvent::Lost { .. }))
    );
}

#[test]
fn the_timeline_is_bounded_by_its_configured_size() {
    let config = Config {
        max_retries: None,
        timeline_limit: 5,
        ..test_config()
    };
    let mut h = Harness::new(config);
    h.event(Event::Start);
    for _ in 0..50 {
        h.server_close(1006);
        let ConnectionStatus::Reconnecting { at, .. } = h.status() else {
            panic!("expected a reconnect")
        };
        h.advance_to(at);
    }
    assert_eq!(h.conn.timeline().count(), 5);
    assert!(h.conn.timeline_version() > 100);
    // Oldest first, and the newest is the attempt just started.
    let times: Vec<Millis> = h.conn.timeline().map(|e| e.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(matches!(
        h.conn.timeline().last().map(|e| &e.event),
        Some(TimelineEvent::Connecting { .. })
    ));
    // The default is 200.
    assert_eq!(Config::default().timeline_limit, 200);
}

#[test]
fn a_flood_of_malformed_frames_makes_a_bounded_number_of_entries() {
    let mut h = Harness::new(test_config());
    h.connect();
    let before = h.conn.timeline().count();
    let version = h.conn.timeline_version();
    for _ in 0..1_000 {
        h.frame("{not json");
    }
    assert_eq!(h.conn.stats().malformed, 1_000);
    assert_eq!(h.conn.timeline().count(), before + 1);
    assert_eq!(h.conn.timeline_version(), version + 1);
    assert_eq!(
        h.conn.timeline().last().map(|e| e.event.clone()),
        Some(TimelineEvent::FramesRefused {
            kind: RefusedKind::Malformed,
            count: 1_000
        })
    );
    assert_eq!(lines(&h).last().unwrap(), "refused 1000 malformed frames");

    // Other kinds get one entry each per burst.
    let socket = h.live();
    for _ in 0..1_000 {
        h.event(Event::Frame {
            socket,
            data: FrameData::Binary(8),
        });
        h.frame(r#"{"socketType":"nobody.handles.this"}"#);
        h.frame("[1,2,3]");
        h.frame(&"x".repeat(70_000));
    }
    let refused: Vec<(RefusedKind, u64)> = events(&h)
        .into_iter()
        .filter_map(|e| match e {
            TimelineEvent::FramesRefused { kind, count } => Some((kind, count)),
            _ => None,
        })
        .collect();
    // Unknown types count only with a registry that knows the handlers.
    assert_eq!(
        refused,
        [
            (RefusedKind::Malformed, 1_000),
            (RefusedKind::Binary, 1_000),
            (RefusedKind::MissingType, 1_000),
            (RefusedKind::Oversized, 1_000),
        ]
    );
}

#[test]
fn a_long_flood_makes_one_entry_per_burst_window() {
    let mut h = Harness::new(Config {
        heartbeat: HeartbeatConfig {
            style: HeartbeatStyle::Disabled,
            ..HeartbeatConfig::default()
        },
        ..test_config()
    });
    h.conn.set_registry(Some(Registry::new()));
    h.connect();
    let before = h.conn.timeline().count();
    // 1000 frames over 100 s: one every 100 ms.
    for _ in 0..1_000 {
        h.advance_by(100);
        h.frame(r#"{"socketType":"nobody.handles.this"}"#);
    }
    assert_eq!(h.conn.stats().unknown_types, 1_000);
    let added = h.conn.timeline().count() - before;
    assert!((10..=11).contains(&added), "{added} entries");
}

#[test]
fn refusals_rate_limits_and_a_drained_backlog_are_logged() {
    let mut h = Harness::new(test_config());
    h.event(Event::Start);
    // A backlog: three messages wait for the link.
    let ids: Vec<MessageId> = (0..3)
        .map(|i| h.send(json!({"socketType":"chat.send","text":i})))
        .collect();
    h.open();
    h.frame(&format!(
        r#"{{"socketType":"error","code":"rate_limited","retry_after_ms":1500,"id":"{}"}}"#,
        ids[2]
    ));
    h.frame(r#"{"socketType":"error","code":"rate_limited","retry_after_ms":500}"#);
    h.frame(&format!(
        r#"{{"socketType":"error","code":"forbidden","message":"no","id":"{}"}}"#,
        ids[0]
    ));
    h.ack(&ids[1]);
    assert!(
        !events(&h)
            .iter()
            .any(|e| matches!(e, TimelineEvent::OutboxDrained { .. }))
    );
    h.advance_by(1_500);
    h.ack(&ids[2]);
    let tail: Vec<TimelineEvent> = events(&h).into_iter().skip(2).collect();
    assert_eq!(
        tail,
        [
            TimelineEvent::RateLimited {
                retry_after: 1_500,
                count: 2
            },
            TimelineEvent::MessageRefused {
                id: ids[0].clone(),
                code: "forbidden".into()
            },
            TimelineEvent::OutboxDrained { messages: 2 },
        ]
    );
    assert_eq!(
        lines(&h)[2..],
        [
            "rate limited (2 refusals), retrying after 1.5 s".to_owned(),
            format!("server refused message {}: forbidden", ids[0]),
            "outbox drained (2 messages)".to_owned(),
        ]
    );

    // Routine traffic on an open link is not a backlog.
    let count = h.conn.timeline().count();
    let id = h.send(json!({"socketType":"chat.send","text":"live"}));
    h.ack(&id);
    assert_eq!(h.conn.timeline().count(), count);
}

#[test]
fn degradation_is_logged_on_and_off() {
    let mut h = Harness::new(Config {
        degraded: DegradedThresholds {
            rtt: 100,
            missed_pongs: 0,
        },
        ..test_config()
    });
    h.connect();
    h.advance_to(10_000); // ping at 10 s
    h.now = 10_900;
    h.frame(r#"{"socketType":"pong","t":10000}"#);
    assert_eq!(
        h.status(),
        ConnectionStatus::Open {
            degraded: true,
            transport: Transport::WebSocket
        }
    );
    assert_eq!(
        events(&h).last(),
        Some(&TimelineEvent::Degraded { on: true })
    );
    // Fast pongs pull the smoothed RTT back under the threshold.
    for _ in 0..40 {
        let due = *h.timers.get(&TimerKind::Heartbeat).unwrap();
        h.advance_to(due);
        h.frame(&format!(r#"{{"socketType":"pong","t":{due}}}"#));
    }
    assert_eq!(
        h.status(),
        ConnectionStatus::Open {
            degraded: false,
            transport: Transport::WebSocket
        }
    );
    assert_eq!(
        events(&h).last(),
        Some(&TimelineEvent::Degraded { on: false })
    );
    assert_eq!(lines(&h).last().unwrap(), "link recovered");
}

#[test]
fn rtt_history_keeps_the_last_sixty_samples() {
    let mut h = Harness::new(test_config());
    h.connect();
    assert!(h.conn.rtt_history().is_empty());
    for i in 0..70u64 {
        let due = *h.timers.get(&TimerKind::Heartbeat).unwrap();
        h.advance_to(due);
        h.now += i;
        h.frame(&format!(r#"{{"socketType":"pong","t":{due}}}"#));
    }
    let history = h.conn.rtt_history();
    assert_eq!(history.len(), 60);
    assert_eq!(history.first(), Some(&10.0));
    assert_eq!(history.last(), Some(&69.0));
    assert_eq!(h.conn.stats().last_rtt, Some(69));
}

#[test]
fn going_offline_and_giving_up_are_logged() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.event(Event::Offline);
    h.server_close(1006);
    assert_eq!(events(&h).last(), Some(&TimelineEvent::Offline));
    h.event(Event::Online);
    h.open();
    h.server_close(4001);
    assert!(matches!(
        events(&h).last(),
        Some(TimelineEvent::Failed {
            reason: FailureReason::AuthRefused { .. }
        })
    ));
    h.event(Event::RetryNow);
    h.event(Event::Stop);
    assert_eq!(events(&h).last(), Some(&TimelineEvent::Closed));
    assert_eq!(lines(&h).last().unwrap(), "closed by the app");
}
