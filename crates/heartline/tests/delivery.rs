//! Issue 8, the client side: each mismatch between the socket core and the
//! server (or a state that never cleared) has a test here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use heartline::core::*;
use serde_json::json;
use support::*;

fn chat_send(text: &str) -> serde_json::Value {
    json!({"socketType": "chat.send", "room": "lobby", "text": text})
}

/// Connects and opens the first socket, telling `server` about it.
fn open_with(h: &mut Harness, server: &mut ServerSim) -> SocketId {
    h.event(Event::Start);
    let socket = h.live();
    server.accept(h.now, socket);
    let actions = h.event(Event::Opened { socket });
    server.take(h.now, &actions);
    socket
}

#[test]
fn non_chat_reliable_messages_leave_the_outbox_when_acked_and_are_not_resent() {
    let mut h = Harness::new(test_config());
    h.connect();
    let ids = [
        h.send(json!({"socketType": "join", "room": "lobby"})),
        h.send(json!({"socketType": "leave", "room": "lobby"})),
        h.send(json!({"socketType": "metrics.subscribe"})),
        h.send(json!({"socketType": "metrics.unsubscribe"})),
    ];
    for id in &ids {
        let actions = h.ack(id);
        assert_eq!(
            states(&actions),
            vec![(id.clone(), DeliveryState::Acked)],
            "{id}"
        );
    }
    assert!(h.conn.outbox_ids().is_empty());
    h.server_close(1006);
    h.advance_by(10_000);
    let actions = h.event(Event::Opened { socket: h.live() });
    let resent = frames(&actions);
    assert!(
        ids.iter()
            .all(|id| resent.iter().all(|f| !f.contains(id.as_str()))),
        "{resent:?}"
    );
}

#[test]
fn five_hundred_queued_messages_drain_through_the_window_without_a_refusal() {
    let config = Config {
        outbox_limit: 500,
        ..Config::default()
    };
    let mut h = Harness::new(config);
    let mut server = ServerSim::new(50.0, 100, 20);
    // Queued while the link is down (here: before it ever came up).
    let ids: Vec<MessageId> = (0..500)
        .map(|i| h.send(chat_send(&format!("m{i}"))))
        .collect();
    h.event(Event::Start);
    let socket = h.live();
    server.accept(h.now, socket);
    let actions = h.event(Event::Opened { socket });
    server.take(h.now, &actions);
    let until = h.now + 60_000;
    server.run(&mut h, until);

    assert_eq!(server.refusals, 0, "no rate_limited refusal");
    assert!(server.max_in_flight <= 32, "{}", server.max_in_flight);
    assert_eq!(server.max_in_flight, 32, "the window is used");
    let handled: Vec<MessageId> = server
        .handled
        .iter()
        .map(|id| MessageId::from(id.as_str()))
        .collect();
    assert_eq!(handled, ids, "each once, in order");
    assert!(h.conn.outbox_ids().is_empty());
    assert_eq!(h.conn.stats().acked, 500);
    assert!(closes(&h.log).is_empty());
    assert_eq!(h.conn.stats().reconnects, 0);
}

#[test]
fn pacing_keeps_a_tight_server_from_refusing_anything() {
    // A server allowing 5 frames/s with a burst of 6, slower than the window.
    let mut h = Harness::new(Config {
        outbox_limit: 100,
        ..Config::default()
    });
    let mut server = ServerSim::new(5.0, 6, 10);
    open_with(&mut h, &mut server);
    let until = h.now + 100;
    server.run(&mut h, until);
    for i in 0..40 {
        let id = h
            .conn
            .send(h.now, chat_send(&format!("m{i}")), SendOptions::default());
        assert!(id.is_ok());
        let actions = h.drain();
        server.take(h.now, &actions);
    }
    let until = h.now + 30_000;
    server.run(&mut h, until);
    assert_eq!(server.refusals, 0);
    assert_eq!(h.conn.stats().acked, 40);
}

#[test]
fn rate_limited_messages_are_queued_again_and_resent_in_order_after_the_hint() {
    let mut h = Harness::new(test_config());
    h.connect();
    let a = h.send(chat_send("a"));
    let b = h.send(chat_send("b"));
    let c = h.send(chat_send("c"));
    h.ack(&a);
    let refusal = |id: &MessageId| {
        format!(
            r#"{{"socketType":"error","code":"rate_limited","message":"slow down","id":"{id}","retry_after_ms":500}}"#
        )
    };
    let actions = h.frame(&refusal(&b));
    assert!(states(&actions).contains(&(b.clone(), DeliveryState::Queued)));
    assert!(
        delivered(&actions)
            .iter()
            .any(|m| &*m.socket_type == "error"),
        "the error is still delivered"
    );
    let actions = h.frame(&refusal(&c));
    assert!(states(&actions).contains(&(c.clone(), DeliveryState::Queued)));
    assert_eq!(h.conn.delivery_state(&b), Some(DeliveryState::Queued));
    assert_eq!(h.conn.stats().failed, 0);
    assert_eq!(h.conn.stats().rate_limited, 2);

    // Nothing goes out before the hint.
    let early = h.advance_by(499);
    assert!(frames(&early).iter().all(|f| !f.contains("chat.send")));
    let actions = h.advance_by(1);
    let resent = frames(&actions);
    assert_eq!(resent.len(), 2, "{resent:?}");
    assert!(resent[0].contains(b.as_str()) && resent[1].contains(c.as_str()));
    h.ack(&b);
    h.ack(&c);
    assert!(h.conn.outbox_ids().is_empty());
}

#[test]
fn other_refusals_still_fail_the_message() {
    let mut h = Harness::new(test_config());
    h.connect();
    let id = h.send(chat_send(""));
    let actions = h.frame(&format!(
        r#"{{"socketType":"error","code":"invalid_field","message":"empty","id":"{id}"}}"#
    ));
    assert!(matches!(
        &states(&actions)[..],
        [(_, DeliveryState::Failed(MessageFailure::Refused { .. }))]
    ));
}

#[test]
fn volatile_sends_over_the_pace_are_refused() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.frame(r#"{"socketType":"limits","rate":10,"burst":4,"max_frame_bytes":65536}"#);
    let typing = json!({"socketType": "typing", "room": "lobby"});
    // Burst 4 -> 2 for us, minus nothing written since open but the limits.
    let mut sent = 0;
    let refused = loop {
        match h.conn.send_volatile_at(h.now, typing.clone()) {
            Ok(()) => sent += 1,
            Err(error) => break error,
        }
    };
    assert!(sent <= 2, "{sent}");
    assert!(matches!(refused, SendError::RateLimited { retry_in } if retry_in > 0));
    h.now += 1_000;
    assert_eq!(h.conn.send_volatile_at(h.now, typing), Ok(()));
}

#[test]
fn window_limits_reliable_messages_in_flight_and_acks_open_it() {
    let mut h = Harness::new(Config {
        send_window: 2,
        ..test_config()
    });
    h.connect();
    let ids: Vec<MessageId> = (0..4).map(|i| h.send(chat_send(&format!("{i}")))).collect();
    assert_eq!(h.conn.stats().in_flight, 2);
    assert_eq!(h.conn.delivery_state(&ids[2]), Some(DeliveryState::Queued));
    let actions = h.ack(&ids[0]);
    assert!(frames(&actions)[0].contains(ids[2].as_str()));
    assert_eq!(h.conn.stats().in_flight, 2);
}

fn chat_in(stream: &str, epoch: u64, seq: u64) -> String {
    format!(
        r#"{{"socketType":"chat.message","stream":"{stream}","epoch":{epoch},"seq":{seq},"text":"e{epoch}#{seq}"}}"#
    )
}

fn delivered_seqs(actions: &[Action]) -> Vec<(u64, u64)> {
    delivered(actions)
        .iter()
        .map(|m| {
            let position = m.stream.clone().unwrap();
            (position.epoch.unwrap(), position.seq)
        })
        .collect()
}

#[test]
fn a_room_whose_seq_starts_over_under_a_new_epoch_keeps_every_message() {
    let mut h = Harness::new(test_config());
    h.conn
        .add_standing(
            "room:lobby",
            json!({"socketType": "join", "room": "lobby"}),
            Some("lobby".into()),
        )
        .unwrap();
    h.connect();
    let mut got = Vec::new();
    for seq in 1..=3 {
        got.extend(delivered_seqs(&h.frame(&chat_in("lobby", 5, seq))));
    }
    // The server's database is wiped: the room comes back under epoch 9.
    h.server_close(1006);
    h.advance_by(10_000);
    let actions = h.event(Event::Opened { socket: h.live() });
    let join = frames(&actions)
        .into_iter()
        .find(|f| f.contains("join"))
        .unwrap();
    let join: serde_json::Value = serde_json::from_str(&join).unwrap();
    assert_eq!(
        (join["since"].as_u64(), join["epoch"].as_u64()),
        (Some(3), Some(5))
    );
    let mut reports_seen = Vec::new();
    for seq in 1..=4 {
        let actions = h.frame(&chat_in("lobby", 9, seq));
        reports_seen.extend(reports(&actions));
        got.extend(delivered_seqs(&actions));
    }
    assert_eq!(
        got,
        vec![(5, 1), (5, 2), (5, 3), (9, 1), (9, 2), (9, 3), (9, 4)]
    );
    assert!(reports_seen.contains(&Report::EpochChanged {
        stream: "lobby".into(),
        from: 5,
        to: 9,
        dropped: 0,
    }));
    assert_eq!(h.conn.stats().duplicates, 0);
    assert_eq!(
        (h.conn.last_seq("lobby"), h.conn.stream_epoch("lobby")),
        (Some(4), Some(9))
    );
}

#[test]
fn a_new_epoch_drops_held_messages_of_the_old_one() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.frame(&chat_in("lobby", 5, 1));
    // #3 of epoch 5 waits behind a gap, then the stream starts over.
    assert!(delivered(&h.frame(&chat_in("lobby", 5, 3))).is_empty());
    let actions = h.frame(&chat_in("lobby", 9, 1));
    assert_eq!(delivered_seqs(&actions), vec![(9, 1)]);
    assert!(reports(&actions).contains(&Report::EpochChanged {
        stream: "lobby".into(),
        from: 5,
        to: 9,
        dropped: 1,
    }));
    assert!(!h.timers.contains_key(&TimerKind::StreamGap));
}

#[test]
fn a_joined_under_a_new_epoch_resets_the_position() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.frame(&chat_in("lobby", 5, 1));
    h.frame(&chat_in("lobby", 5, 2));
    let actions = h.frame(r#"{"socketType":"joined","stream":"lobby","last_seq":0,"epoch":9}"#);
    assert_eq!(delivered(&actions).len(), 1, "joined is delivered");
    assert_eq!(h.conn.stream_epoch("lobby"), Some(9));
    assert_eq!(
        delivered_seqs(&h.frame(&chat_in("lobby", 9, 1))),
        vec![(9, 1)]
    );
}

#[test]
fn a_first_message_past_one_under_a_new_epoch_asks_for_the_rest() {
    let mut h = Harness::new(test_config());
    h.conn
        .add_standing(
            "room:lobby",
            json!({"socketType": "join", "room": "lobby"}),
            Some("lobby".into()),
        )
        .unwrap();
    h.connect();
    h.frame(&chat_in("lobby", 5, 7));
    let actions = h.frame(&chat_in("lobby", 9, 3));
    assert!(delivered(&actions).is_empty(), "held behind #1 and #2");
    let resume = frames(&actions);
    assert!(
        resume
            .iter()
            .any(|f| f.contains(r#""since":0"#) && f.contains(r#""epoch":9"#)),
        "{resume:?}"
    );
    h.frame(&chat_in("lobby", 9, 1));
    let actions = h.frame(&chat_in("lobby", 9, 2));
    assert_eq!(delivered_seqs(&actions), vec![(9, 2), (9, 3)]);
}

/// The delay of the first retry after an open link drops, under the
/// default policy and `seed`.
fn first_retry_delay(seed: u64) -> Millis {
    let mut conn = Connection::new(Config::default(), seed);
    let Some(Action::Open { socket, .. }) = conn.handle(0, Event::Start).first().cloned() else {
        panic!("no open")
    };
    conn.handle(10, Event::Opened { socket });
    let actions = conn.handle(
        20_000,
        Event::Closed {
            socket,
            code: 1006,
            reason: String::new(),
            was_clean: false,
        },
    );
    actions
        .iter()
        .find_map(|a| match a {
            Action::SetTimer {
                kind: TimerKind::Reconnect,
                at,
            } => Some(at - 20_000),
            _ => None,
        })
        .expect("a reconnect")
}

#[test]
fn default_first_retry_comes_within_250_ms_jittered_across_clients() {
    let delays: Vec<Millis> = (0..200).map(first_retry_delay).collect();
    assert!(delays.iter().all(|d| *d <= 250), "{delays:?}");
    let distinct: std::collections::HashSet<_> = delays.iter().collect();
    assert!(distinct.len() > 50, "jittered: {} distinct", distinct.len());
}

#[test]
fn default_policy_declares_a_dead_link_within_15_s() {
    let mut h = Harness::new(Config::default());
    h.connect();
    let opened_at = h.now;
    // The link goes silent; nothing comes back.
    let mut lost_at = None;
    while h.now < opened_at + 60_000 {
        let actions = h.advance_by(100);
        if closes(&actions)
            .iter()
            .any(|(_, code)| *code == CLOSE_HEARTBEAT_LOST)
        {
            lost_at = Some(h.now);
            break;
        }
    }
    let lost_at = lost_at.expect("the dead link is declared");
    assert!(lost_at - opened_at <= 15_000, "{} ms", lost_at - opened_at);
}

#[test]
fn default_policy_keeps_retrying_past_ten_failures_at_the_capped_delay() {
    let mut h = Harness::new(Config::default());
    h.event(Event::Start);
    let mut last_delay = 0;
    for _ in 0..30 {
        // The attempt fails at once.
        let socket = h.live();
        h.event(Event::Error { socket });
        h.sockets.retain(|s| *s != socket);
        let ConnectionStatus::Reconnecting { at, .. } = h.status() else {
            panic!("gave up: {:?}", h.status());
        };
        last_delay = at - h.now;
        h.advance_to(at);
        assert_eq!(h.sockets.len(), 1, "a new attempt");
    }
    assert!(
        (5_000..=10_000).contains(&last_delay),
        "capped: {last_delay}"
    );
    assert!(h.conn.stats().connect_attempts > 30);
}

fn ping_t(actions: &[Action]) -> Option<u64> {
    frames(actions).iter().find_map(|f| {
        let value: serde_json::Value = serde_json::from_str(f).ok()?;
        (value["socketType"] == "ping").then(|| value["t"].as_u64())?
    })
}

#[test]
fn a_stale_pong_gives_no_round_trip_sample_but_the_matching_one_does() {
    let mut h = Harness::new(test_config());
    h.connect();
    // Ping 1 at 10 s; the link talks but its pong is slow, so it is given up.
    let first = ping_t(&h.advance_to(10_000)).expect("ping 1");
    h.advance_to(12_000);
    h.frame(r#"{"socketType":"presence","room":"r","users":[]}"#);
    h.advance_to(15_000);
    assert_eq!(h.conn.stats().missed_pongs, 1);
    // Ping 2, then ping 1's pong finally arrives: it answers nothing we wait for.
    let second = ping_t(&h.advance_to(22_000)).expect("ping 2");
    assert_ne!(first, second);
    h.advance_by(50);
    h.frame(&format!(r#"{{"socketType":"pong","t":{first}}}"#));
    assert_eq!(h.conn.stats().last_rtt, None, "no sample from a stale pong");
    assert!(
        h.timers.contains_key(&TimerKind::PongTimeout),
        "ping 2 still waits"
    );
    // A pong whose t matches no ping at all is no sample either.
    h.frame(&format!(r#"{{"socketType":"pong","t":{}}}"#, h.now - 1));
    assert_eq!(h.conn.stats().last_rtt, None);
    // Ping 2's own pong (echoed as a float) is the sample.
    h.advance_by(30);
    h.frame(&format!(r#"{{"socketType":"pong","t":{second}.0}}"#));
    assert_eq!(h.conn.stats().last_rtt, Some(h.now - second));
    assert!(!h.timers.contains_key(&TimerKind::PongTimeout));
}

#[test]
fn send_volatile_works_again_after_a_mebibyte_of_volatile_writes_drains() {
    let mut h = Harness::new(test_config());
    let socket = h.connect();
    let blob = "x".repeat(60_000);
    let mut written = 0usize;
    let refused = loop {
        match h
            .conn
            .send_volatile_at(h.now, json!({"socketType": "cursor", "blob": blob}))
        {
            Ok(()) => written += 60_000,
            Err(error) => break error,
        }
        h.drain();
    };
    assert_eq!(refused, SendError::Congested);
    assert!(written > 1024 * 1024);
    // The core polls the buffer while its estimate is above zero...
    assert!(h.timers.contains_key(&TimerKind::Flush));
    // ...and the driver reports what the socket really holds: it drained.
    h.event(Event::BufferedAmount { socket, bytes: 0 });
    assert!(!h.timers.contains_key(&TimerKind::Flush));
    assert_eq!(
        h.conn
            .send_volatile_at(h.now, json!({"socketType": "typing"})),
        Ok(())
    );
    // A driver that cannot read it lets the poll fire: also drained.
    while h
        .conn
        .send_volatile_at(h.now, json!({"socketType": "cursor", "blob": blob}))
        .is_ok()
    {
        h.drain();
    }
    h.advance_by(100);
    assert_eq!(
        h.conn
            .send_volatile_at(h.now, json!({"socketType": "typing"})),
        Ok(())
    );
}

#[test]
fn a_partial_drain_keeps_the_poll_going_until_the_buffer_is_empty() {
    let mut h = Harness::new(test_config());
    let socket = h.connect();
    h.send(chat_send("a"));
    // The poll is due; the driver reads the buffer instead of firing it.
    let due = h.timers.remove(&TimerKind::Flush).expect("a poll");
    h.now = due;
    h.event(Event::BufferedAmount { socket, bytes: 10 });
    assert!(h.timers.contains_key(&TimerKind::Flush), "still polling");
    h.event(Event::BufferedAmount { socket, bytes: 0 });
    assert!(!h.timers.contains_key(&TimerKind::Flush), "drained");
}
