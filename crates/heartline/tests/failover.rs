//! Failover between several server URLs, on a virtual clock: the core picks
//! the URL of every attempt, moves on round robin after a failed attempt or
//! a lost link, and the backoff goes on as if there were one server.
#![allow(clippy::unwrap_used)]

mod support;

use heartline::core::*;
use serde_json::json;
use support::*;

const A: &str = "ws://a.test/ws";
const B: &str = "ws://b.test/ws";
const C: &str = "ws://c.test/ws";

fn harness(urls: &[&str]) -> Harness {
    let mut h = Harness::new(test_config());
    h.conn.set_endpoints(urls);
    h
}

/// Carries out `event`; when it opened a socket, the URL the driver dials.
fn dial(h: &mut Harness, event: Event) -> Option<String> {
    let actions = h.event(event);
    (opens(&actions) > 0).then(|| h.conn.endpoint().unwrap().to_owned())
}

/// Every attempt fails at once (refused): the URL of each attempt and the
/// delay before the next, until the core gives up.
fn fail_every_attempt(h: &mut Harness) -> (Vec<String>, Vec<Millis>) {
    let mut urls = vec![dial(h, Event::Start).unwrap()];
    let mut delays = Vec::new();
    loop {
        let socket = h.live();
        h.sockets.clear();
        h.event(Event::Error { socket });
        let ConnectionStatus::Reconnecting { at, .. } = h.status() else {
            break;
        };
        delays.push(at - h.now);
        h.now = at;
        h.timers.remove(&TimerKind::Reconnect);
        urls.push(dial(h, Event::TimerFired(TimerKind::Reconnect)).unwrap());
    }
    (urls, delays)
}

#[test]
fn failed_attempts_go_round_the_list_with_the_backoff_of_one_server() {
    let mut one = harness(&[A]);
    let (one_urls, one_delays) = fail_every_attempt(&mut one);
    assert_eq!(one_urls, [A, A, A, A]);

    let mut three = harness(&[A, B, C]);
    let (urls, delays) = fail_every_attempt(&mut three);
    assert_eq!(urls, [A, B, C, A], "round robin, from the first");
    // The same schedule: switching servers does not reset (or hurry) it.
    assert_eq!(delays, [1_000, 2_000, 4_000]);
    assert_eq!(delays, one_delays);
    // The retry limit counts attempts over the whole list.
    assert_eq!(
        three.status(),
        ConnectionStatus::Failed(FailureReason::ConnectFailed { attempts: 4 })
    );
    assert_eq!(three.conn.stats().failovers, 4);
    assert_eq!(one.conn.stats().failovers, 0);
    assert_eq!(three.conn.stats().connect_attempts, 4);
}

#[test]
fn a_working_server_is_kept() {
    let mut h = harness(&[A, B]);
    assert_eq!(dial(&mut h, Event::Start).as_deref(), Some(A));
    h.open();
    // Traffic, pings and pongs for a minute: no reason to move.
    for _ in 0..6 {
        h.advance_by(10_000);
        let ping = frames(&h.log)
            .into_iter()
            .rev()
            .find(|f| f.contains("ping"))
            .unwrap();
        let ping: serde_json::Value = serde_json::from_str(&ping).unwrap();
        h.frame(&json!({"socketType":"pong","t":ping["t"]}).to_string());
    }
    let id = h.send(json!({"socketType":"chat.send","room":"lobby","text":"hi"}));
    h.ack(&id);
    assert!(h.status().is_open());
    assert_eq!(h.conn.endpoint(), Some(A));
    assert_eq!(h.conn.stats().failovers, 0);
    assert_eq!(opens(&h.log), 1);
}

#[test]
fn a_lost_link_resumes_on_the_next_server_with_since_and_the_outbox() {
    let mut h = harness(&[A, B]);
    h.conn.set_greeting(Some(Box::new(|| {
        Some(json!({"socketType":"hello","name":"ada"}))
    })));
    h.conn
        .add_standing(
            "room:lobby",
            json!({"socketType":"join","room":"lobby"}),
            Some("lobby".into()),
        )
        .unwrap();
    h.connect();
    h.frame(&chat("lobby", 1));
    h.frame(&chat("lobby", 2));
    let acked = h.send(json!({"socketType":"chat.send","room":"lobby","text":"one"}));
    h.ack(&acked);
    let unacked = h.send(json!({"socketType":"chat.send","room":"lobby","text":"two"}));
    h.advance_by(5_000); // healthy: the next loss starts the backoff afresh

    // Server A is gone.
    h.server_close(1006);
    assert_eq!(h.conn.endpoint(), Some(B), "the retry goes to B");
    assert_eq!(
        h.status(),
        ConnectionStatus::Reconnecting {
            attempt: 2,
            at: h.now + 1_000
        }
    );
    let actions = h.advance_by(1_000);
    assert_eq!(opens(&actions), 1);
    assert_eq!(h.conn.endpoint(), Some(B));
    let socket = h.live();
    let actions = h.event(Event::Opened { socket });
    let sent = json_frames(&actions);
    assert_eq!(sent[0]["socketType"], "hello");
    assert_eq!(
        sent[1],
        json!({"socketType":"join","room":"lobby","since":2})
    );
    // Only the unacked message is re-sent, with its id (B de-duplicates).
    let ids: Vec<&str> = sent.iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(ids, [unacked.as_str()]);
    let actions = h.ack(&unacked);
    assert_eq!(states(&actions), [(unacked.clone(), DeliveryState::Acked)]);
    assert_eq!(h.conn.stats().acked, 2);
    // B goes on from where A stopped.
    let delivered = delivered(&h.frame(&chat("lobby", 3)));
    assert_eq!(delivered.len(), 1);
    assert_eq!(h.conn.stats().duplicates, 0);
}

#[test]
fn the_timeline_says_where_the_retry_goes() {
    let mut h = harness(&[A, B]);
    h.connect();
    h.now = 100;
    h.server_close(1006);
    h.drain();
    let events: Vec<String> = h.conn.timeline().map(|e| e.event.to_string()).collect();
    assert_eq!(
        events[events.len() - 3..],
        [
            "connection lost: closed (1006)".to_owned(),
            format!("switching to {B} (server 2 of 2)"),
            "reconnecting in 1 s (attempt 2)".to_owned(),
        ]
    );
    // One URL: nothing to switch to, nothing said.
    let mut solo = harness(&[A]);
    solo.connect();
    solo.server_close(1006);
    assert!(
        !solo
            .conn
            .timeline()
            .any(|e| matches!(e.event, TimelineEvent::Failover { .. }))
    );
}

#[test]
fn a_connect_timeout_moves_on_too() {
    let mut h = harness(&[A, B]);
    h.event(Event::Start);
    h.advance_to(5_000); // connect_timeout
    assert_eq!(h.conn.endpoint(), Some(B));
    let actions = h.advance_to(6_000);
    assert_eq!(opens(&actions), 1);
    assert_eq!(h.conn.endpoint(), Some(B));
}

#[test]
fn the_app_stopping_or_the_network_going_offline_does_not_switch() {
    let mut h = harness(&[A, B]);
    h.event(Event::Start);
    h.event(Event::Offline); // abandons the attempt: not the server's fault
    assert_eq!(h.conn.endpoint(), Some(A));
    assert_eq!(dial(&mut h, Event::Online).as_deref(), Some(A));
    h.open();
    h.event(Event::Stop);
    assert_eq!(dial(&mut h, Event::Start).as_deref(), Some(A));
    assert_eq!(h.conn.stats().failovers, 0);
}

#[test]
fn a_final_close_stops_on_the_server_that_said_it() {
    let mut h = harness(&[A, B]);
    h.connect();
    h.server_close(CLOSE_AUTH_REFUSED);
    assert!(matches!(
        h.status(),
        ConnectionStatus::Failed(FailureReason::AuthRefused { .. })
    ));
    assert_eq!(h.conn.endpoint(), Some(A));
    // Retrying by hand starts afresh on the same server.
    assert_eq!(dial(&mut h, Event::RetryNow).as_deref(), Some(A));
}

#[test]
fn the_rotation_comes_back_to_a_server_that_worked() {
    let mut h = harness(&[A, B]);
    h.connect(); // A works...
    h.advance_by(5_000);
    h.server_close(1006); // ...then goes
    h.advance_by(1_000);
    assert_eq!(h.conn.endpoint(), Some(B));
    let socket = h.live();
    h.sockets.clear();
    h.event(Event::Error { socket }); // B refuses
    assert_eq!(h.conn.endpoint(), Some(A), "back to A by the rotation");
    let ConnectionStatus::Reconnecting { at, attempt } = h.status() else {
        panic!("{:?}", h.status())
    };
    assert_eq!((attempt, at - h.now), (3, 2_000), "the backoff went on");
}

#[test]
fn new_endpoints_keep_the_server_in_use_when_listed() {
    let mut h = harness(&[A, B]);
    h.connect();
    h.server_close(1006);
    assert_eq!(h.conn.endpoint(), Some(B));
    h.conn.set_endpoints([C, B]);
    assert_eq!(h.conn.endpoint(), Some(B));
    assert_eq!(h.conn.endpoints().index(), 1);
    h.conn.set_endpoints(vec![C.to_owned()]);
    assert_eq!(h.conn.endpoint(), Some(C));
}

#[test]
fn without_endpoints_the_core_names_none_and_works_as_before() {
    let mut h = Harness::new(test_config());
    h.connect();
    h.server_close(1006);
    assert_eq!(h.conn.endpoint(), None);
    assert!(h.conn.endpoints().is_empty());
    assert_eq!(h.conn.stats().failovers, 0);
    assert!(matches!(h.status(), ConnectionStatus::Reconnecting { .. }));
}
