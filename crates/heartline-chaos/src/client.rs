//! One chaos client: a native Heartline client (the real socket core on the
//! tokio driver) that greets with a stable identity, stands in one room,
//! sends numbered chat messages at a steady pace and records everything it
//! sees, with times.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use heartline::core::{
    BackoffConfig, Config, ConnectionStatus, DeliveryState, FallbackConfig, MessageId, Transport,
};
use heartline::native::{Client, ClientOptions};
use heartline_protocol::ClientMessage;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// A chat message as one client received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub epoch: u64,
    pub seq: u64,
    pub from: String,
    pub text: String,
}

/// Everything one client saw, in arrival order.
#[derive(Debug, Default)]
pub struct Record {
    pub deliveries: Vec<Delivery>,
    /// (when, open?) at every change between open and not open.
    pub open_edges: Vec<(Instant, bool)>,
    /// Arrivals of `joined` (the room subscription took effect).
    pub joined: Vec<Instant>,
    /// Message id -> (its number, when it was handed to the core).
    pub sent: HashMap<MessageId, (usize, Instant)>,
    pub acked: HashMap<MessageId, Instant>,
    pub failed: Vec<(MessageId, String)>,
    /// State events the recorder fell behind on (the final check reads the
    /// states again, so a lag cannot hide a loss).
    pub lagged_events: u64,
    pub send_errors: Vec<String>,
    /// `error` frames from the server: (when, the frame), for the report
    /// when a client does not recover.
    pub server_errors: Vec<(Instant, String)>,
}

/// A running chaos client.
#[derive(Debug, Clone)]
pub struct ChaosClient {
    pub name: String,
    pub client: Client,
    record: Arc<Mutex<Record>>,
}

impl ChaosClient {
    /// Connects through `urls` (failing over between them), greets as `name` (keeping the token the
    /// server gives, so re-sent messages are recognised) and joins `room`
    /// as a standing subscription that resumes the room's stream.
    pub async fn start(
        urls: Vec<String>,
        name: String,
        room: &str,
        seed: u64,
    ) -> Result<Self, String> {
        let token: Arc<Mutex<Option<String>>> = Arc::default();
        let greeting_token = token.clone();
        let greeting_name = name.clone();
        let options = ClientOptions {
            config: Config {
                // Probe often: a switch back to WebSocket soon after the
                // proxy allows upgrades again, in the middle of the faults.
                fallback: FallbackConfig {
                    probe: BackoffConfig {
                        cap: 5_000,
                        ..FallbackConfig::default().probe
                    },
                    ..FallbackConfig::default()
                },
                ..Config::default()
            },
            greeting: Some(Box::new(move || {
                let token = lock(&greeting_token).clone();
                let hello = ClientMessage::Hello {
                    name: greeting_name.clone(),
                    token,
                };
                serde_json::to_value(hello).ok()
            })),
            seed: Some(seed),
        };
        let client = Client::spawn(urls, options).map_err(|e| format!("client {name}: {e}"))?;
        let record: Arc<Mutex<Record>> = Arc::default();

        // Keep the identity across reconnects.
        let mut welcomes = client.subscribe("welcome");
        tokio::spawn(async move {
            while let Some(welcome) = welcomes.recv().await {
                if let Some(t) = welcome.value.get("token").and_then(Value::as_str) {
                    *lock(&token) = Some(t.to_owned());
                }
            }
        });

        let mut messages = client.subscribe("chat.message");
        let sink = record.clone();
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                let v = &message.value;
                let delivery = Delivery {
                    epoch: v.get("epoch").and_then(Value::as_u64).unwrap_or(0),
                    seq: v.get("seq").and_then(Value::as_u64).unwrap_or(0),
                    from: str_of(v, "from"),
                    text: str_of(v, "text"),
                };
                lock(&sink).deliveries.push(delivery);
            }
        });

        let mut joined = client.subscribe("joined");
        let sink = record.clone();
        tokio::spawn(async move {
            while joined.recv().await.is_some() {
                lock(&sink).joined.push(Instant::now());
            }
        });

        let mut errors = client.subscribe("error");
        let sink = record.clone();
        tokio::spawn(async move {
            while let Some(error) = errors.recv().await {
                lock(&sink)
                    .server_errors
                    .push((Instant::now(), error.value.to_string()));
            }
        });

        let mut status = client.status();
        let sink = record.clone();
        tokio::spawn(async move {
            let mut was_open = false;
            loop {
                let open = status.borrow_and_update().is_open();
                if open != was_open {
                    lock(&sink).open_edges.push((Instant::now(), open));
                    was_open = open;
                }
                if status.changed().await.is_err() {
                    break;
                }
            }
        });

        let mut events = client.message_events();
        let sink = record.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok((id, DeliveryState::Acked)) => {
                        lock(&sink).acked.entry(id).or_insert_with(Instant::now);
                    }
                    Ok((id, DeliveryState::Failed(why))) => {
                        lock(&sink).failed.push((id, why.to_string()));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => lock(&sink).lagged_events += n,
                    Err(RecvError::Closed) => break,
                }
            }
        });

        let join = serde_json::to_value(ClientMessage::Join {
            room: room.to_owned(),
            since: None,
            epoch: None,
            limit: None,
        })
        .map_err(|e| e.to_string())?;
        client
            .add_standing(format!("room:{room}"), join, Some(room.to_owned()))
            .await
            .map_err(|e| format!("client {name}: join: {e}"))?;
        Ok(ChaosClient {
            name,
            client,
            record,
        })
    }

    pub fn record(&self) -> MutexGuard<'_, Record> {
        lock(&self.record)
    }

    /// Sends `count` messages numbered 0.. into `room`, one every `every`.
    pub async fn send_paced(&self, room: &str, count: usize, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0..count {
            tick.tick().await;
            let frame = json!({
                "socketType": "chat.send",
                "room": room,
                "text": format!("{}#{n}", self.name),
            });
            match self.client.send(frame).await {
                Ok(id) => {
                    lock(&self.record).sent.insert(id, (n, Instant::now()));
                }
                Err(e) => lock(&self.record).send_errors.push(format!("#{n}: {e}")),
            }
        }
    }

    /// True once the client is open, has joined since it opened, and every
    /// message handed to it before `since` is acked.
    pub fn recovered_after(&self, since: Instant) -> Option<Instant> {
        let record = self.record();
        let open_at = record
            .open_edges
            .iter()
            .filter(|(at, open)| *open && *at >= since)
            .map(|(at, _)| *at)
            .next()?;
        let still_open = record.open_edges.last().is_some_and(|(_, open)| *open);
        if !still_open {
            return None;
        }
        let joined_at = record.joined.iter().copied().find(|at| *at >= open_at)?;
        let mut drained_at = joined_at;
        for (id, (_, sent_at)) in &record.sent {
            if *sent_at < since {
                let acked_at = record.acked.get(id)?;
                drained_at = drained_at.max(*acked_at);
            }
        }
        Some(open_at.max(joined_at).max(drained_at))
    }

    /// True once the client is open and every message handed to it before
    /// `since` is acked: recovery for a client whose own link survived the
    /// fault (it was on another server of a cluster).
    pub fn drained_after(&self, since: Instant) -> Option<Instant> {
        let record = self.record();
        if !record.open_edges.last().is_some_and(|(_, open)| *open) {
            return None;
        }
        let mut drained_at = since;
        for (id, (_, sent_at)) in &record.sent {
            if *sent_at < since {
                drained_at = drained_at.max(*record.acked.get(id)?);
            }
        }
        Some(drained_at)
    }

    /// What the client looks like now, for a failure report: the server in
    /// use, its last open/closed edges and joins relative to `since`, and
    /// how many messages sent before `since` are unacked.
    pub fn describe(&self, since: Instant) -> String {
        let endpoint = self.endpoint();
        let record = self.record();
        let rel = |at: &Instant| {
            if *at >= since {
                format!("+{} ms", (*at - since).as_millis())
            } else {
                format!("-{} ms", (since - *at).as_millis())
            }
        };
        let edges: Vec<String> = record
            .open_edges
            .iter()
            .rev()
            .take(4)
            .map(|(at, open)| format!("{} {}", if *open { "open" } else { "lost" }, rel(at)))
            .collect();
        let joins: Vec<String> = record.joined.iter().rev().take(3).map(rel).collect();
        let errors: Vec<String> = record
            .server_errors
            .iter()
            .rev()
            .take(3)
            .map(|(at, frame)| format!("{} {frame}", rel(at)))
            .collect();
        let unacked = record
            .sent
            .iter()
            .filter(|(id, (_, at))| *at < since && !record.acked.contains_key(*id))
            .count();
        format!(
            "{} on {endpoint}: edges (newest first) {edges:?}, joins {joins:?}, server errors {errors:?}, unacked from before: {unacked}",
            self.name
        )
    }

    /// The server URL the client uses now.
    pub fn endpoint(&self) -> String {
        self.client.endpoint().borrow().clone()
    }

    /// When the client first stopped being open at or after `since`.
    pub fn lost_link_after(&self, since: Instant) -> Option<Instant> {
        self.record()
            .open_edges
            .iter()
            .find(|(at, open)| !*open && *at >= since)
            .map(|(at, _)| *at)
    }

    /// Ids handed to the core that are not acked yet, by the core's own
    /// account (not only the recorder's).
    pub async fn unacked(&self) -> Vec<MessageId> {
        let ids: Vec<MessageId> = self.record().sent.keys().cloned().collect();
        let mut unacked = Vec::new();
        for id in ids {
            let acked_seen = self.record().acked.contains_key(&id);
            if !acked_seen
                && !matches!(
                    self.client.message_state(&id).await,
                    Some(DeliveryState::Acked)
                )
            {
                unacked.push(id);
            }
        }
        unacked
    }

    /// The transport of the open link, if it is open.
    pub fn transport(&self) -> Option<Transport> {
        match *self.client.status().borrow() {
            ConnectionStatus::Open { transport, .. } => Some(transport),
            _ => None,
        }
    }

    /// Times the client fell back to long-polling, and moved back.
    pub async fn transport_moves(&self) -> (u64, u64) {
        let stats = self.client.stats().await;
        (stats.fallbacks, stats.upgrades)
    }

    pub async fn reconnects(&self) -> u64 {
        self.client.stats().await.reconnects
    }

    pub fn stop(&self) {
        self.client.stop();
    }
}

fn str_of(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
