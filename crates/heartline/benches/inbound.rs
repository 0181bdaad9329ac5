//! Inbound parse + dispatch: text frames fed to the core as `Frame` events,
//! parsed once, sequenced (chat streams), and dispatched through the
//! `Registry` to handlers, as the browser driver does.
//!
//! Run with `scripts/bench` (or `cargo bench -p heartline --bench inbound`).
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use heartline::core::{Action, Config, Connection, Event, FrameData, Inbound, Registry, SocketId};

const BATCH: usize = 1_000;

/// A realistic mix: 60 % chat messages (in-order stream), 20 % metrics
/// samples, 20 % presence updates.
fn frames() -> Vec<String> {
    let mut seq = 0;
    (0..BATCH)
        .map(|i| match i % 5 {
            0..=2 => {
                seq += 1;
                format!(
                    r#"{{"socketType":"chat.message","stream":"lobby","epoch":7,"seq":{seq},"id":"c-{i}","from":"ada","text":"message number {i}, hello everyone","at":1700000000000}}"#
                )
            }
            3 => format!(
                r#"{{"socketType":"metrics.sample","at":{i},"cpu_total":12.5,"cpu_per_core":[10.0,15.0],"mem_used":1234567890,"mem_total":8000000000,"load":[0.5,0.4,0.3],"net_rx_per_sec":12345,"net_tx_per_sec":5432,"connections":3,"messages_in_per_sec":4.5,"messages_out_per_sec":9.0,"rooms":2,"uptime_secs":3600}}"#
            ),
            _ => r#"{"socketType":"presence","room":"lobby","users":["ada","bob","cyd"]}"#.to_owned(),
        })
        .collect()
}

fn open_connection(registry: &Registry) -> Connection {
    let mut conn = Connection::new(Config::default(), 1);
    conn.set_registry(Some(registry.clone()));
    conn.handle(0, Event::Start);
    conn.handle(
        0,
        Event::Opened {
            socket: SocketId(1),
        },
    );
    conn
}

fn bench_inbound(c: &mut Criterion) {
    let registry = Registry::new();
    let handled = Rc::new(Cell::new(0u64));
    let mut guards = Vec::new();
    for socket_type in ["chat.message", "metrics.sample", "presence"] {
        let handled = handled.clone();
        guards.push(registry.subscribe(
            socket_type,
            Rc::new(move |message: &Inbound| {
                black_box(&message.value);
                handled.set(handled.get() + 1);
            }),
        ));
    }
    let template = frames();

    let mut group = c.benchmark_group("inbound");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("parse_dispatch", |b| {
        b.iter_batched(
            || (open_connection(&registry), template.clone()),
            |(mut conn, frames)| {
                let mut now = 1;
                for text in frames {
                    now += 1;
                    let actions = conn.handle(
                        now,
                        Event::Frame {
                            socket: SocketId(1),
                            data: FrameData::Text(text),
                        },
                    );
                    for action in &actions {
                        if let Action::Deliver(message) = action {
                            registry.dispatch(message);
                        }
                    }
                }
                conn
            },
            BatchSize::SmallInput,
        );
    });
    // The baseline: the same frames parsed into JSON values, nothing else.
    group.bench_function("parse_only", |b| {
        b.iter_batched(
            || template.clone(),
            |frames| {
                for text in frames {
                    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                    black_box(value);
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
    assert!(handled.get() > 0);
    drop(guards);
}

criterion_group!(benches, bench_inbound);
criterion_main!(benches);
