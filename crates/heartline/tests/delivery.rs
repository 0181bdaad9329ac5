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
