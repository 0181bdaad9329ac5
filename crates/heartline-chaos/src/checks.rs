//! The end-of-run checks: what the database holds (read by a fresh client),
//! what each client received, and what each client had acked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use heartline::core::Config;
use heartline::native::{Client, ClientOptions};
use heartline_protocol::ClientMessage;
use serde_json::Value;

use crate::client::ChaosClient;

/// A message of the room as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub epoch: u64,
    pub seq: u64,
    pub from: String,
    pub text: String,
}

/// Joins `room` from `since` 0 with a fresh identity and reads the whole
/// history: every message the database holds for the room, in `seq` order.
pub async fn read_history(
    url: &str,
    room: &str,
    deadline: Duration,
) -> Result<Vec<Stored>, String> {
    let options = ClientOptions {
        config: Config::default(),
        greeting: Some(Box::new(|| {
            serde_json::to_value(ClientMessage::Hello {
                name: "chaos-checker".into(),
                token: None,
            })
            .ok()
        })),
        seed: Some(0xc4ec),
    };
    let client = Client::spawn(url, options).map_err(|e| format!("checker: {e}"))?;
    let mut messages = client.subscribe("chat.message");
    let mut joined = client.subscribe("joined");
    let join = serde_json::to_value(ClientMessage::Join {
        room: room.to_owned(),
        since: Some(0),
        epoch: None,
        limit: None,
    })
    .map_err(|e| e.to_string())?;
    client
        .add_standing("history", join, None)
        .await
        .map_err(|e| format!("checker join: {e}"))?;

    let collect = async {
        let joined = joined.recv().await.ok_or("checker: no joined")?;
        let last_seq = joined
            .value
            .get("last_seq")
            .and_then(Value::as_u64)
            .ok_or("checker: joined without last_seq")?;
        let mut stored = Vec::new();
        let mut seen = BTreeSet::new();
        while (seen.len() as u64) < last_seq {
            let Some(m) = messages.recv().await else {
                break;
            };
            let v = &m.value;
            let message = Stored {
                epoch: v.get("epoch").and_then(Value::as_u64).unwrap_or(0),
                seq: v.get("seq").and_then(Value::as_u64).unwrap_or(0),
                from: text_of(v, "from"),
                text: text_of(v, "text"),
            };
            seen.insert(message.seq);
            stored.push(message);
        }
        Ok::<_, String>(stored)
    };
    let result = tokio::time::timeout(deadline, collect)
        .await
        .map_err(|_| format!("checker: history not read within {deadline:?}"))?;
    client.stop();
    result
}

fn text_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The figures of the summary line and the problems behind any non-zero one.
#[derive(Debug, Default)]
pub struct Verdict {
    pub sent: usize,
    pub acked: usize,
    pub stored: usize,
    pub delivered: usize,
    pub delivered_expected: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub reordered: usize,
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
            && self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.acked == self.sent
            && self.delivered == self.delivered_expected
    }
}

/// `chaos-1#17` → ("chaos-1", 17).
fn parse_text(text: &str) -> Option<(&str, usize)> {
    let (name, n) = text.rsplit_once('#')?;
    Some((name, n.parse().ok()?))
}

pub fn verdict(
    clients: &[ChaosClient],
    stored: &[Stored],
    per_client: usize,
    unacked: usize,
) -> Verdict {
    let mut v = Verdict {
        stored: stored.len(),
        ..Verdict::default()
    };

    // The database: each sent message once, each sender's order kept.
    let mut by_key: HashMap<(String, usize), u64> = HashMap::new();
    let mut seqs = BTreeSet::new();
    let mut epochs = BTreeSet::new();
    let mut last_n: BTreeMap<String, usize> = BTreeMap::new();
    let mut ordered = stored.to_vec();
    ordered.sort_by_key(|m| m.seq);
    for m in &ordered {
        epochs.insert(m.epoch);
        if !seqs.insert(m.seq) {
            v.duplicated += 1;
            v.problems.push(format!("seq {} stored twice", m.seq));
        }
        let Some((name, n)) = parse_text(&m.text) else {
            v.problems.push(format!("unexpected message {:?}", m.text));
            continue;
        };
        if by_key.insert((name.to_owned(), n), m.seq).is_some() {
            v.duplicated += 1;
            v.problems.push(format!("{} stored twice", m.text));
        }
        if let Some(prev) = last_n.insert(name.to_owned(), n)
            && prev > n
        {
            v.reordered += 1;
            v.problems
                .push(format!("{name}: #{n} stored after #{prev}"));
        }
    }
    if epochs.len() > 1 {
        v.problems.push(format!("history spans epochs {epochs:?}"));
    }
    let expected_seqs: Vec<u64> = (1..=stored.len() as u64).collect();
    if seqs.iter().copied().collect::<Vec<_>>() != expected_seqs {
        v.problems
            .push("stored seq numbers are not 1..=N without gaps".to_owned());
    }

    for c in clients {
        let record = c.record();
        v.sent += record.sent.len();
        if record.sent.len() != per_client {
            v.problems.push(format!(
                "{}: handed {} of {per_client} messages to the core ({} refused: {:?})",
                c.name,
                record.sent.len(),
                record.send_errors.len(),
                record.send_errors.first()
            ));
        }
        for (id, why) in &record.failed {
            v.problems
                .push(format!("{}: message {id} failed: {why}", c.name));
        }
        // Sent but not in the database.
        for (n, _) in record.sent.values() {
            if !by_key.contains_key(&(c.name.clone(), *n)) {
                v.lost += 1;
                if v.lost <= 10 {
                    v.problems
                        .push(format!("{}#{n} is not in the database", c.name));
                }
            }
        }

        // Received: every stored message exactly once, in seq order.
        let mut got = BTreeSet::new();
        let mut previous = 0;
        for d in &record.deliveries {
            if !got.insert((d.epoch, d.seq)) {
                v.duplicated += 1;
                v.problems
                    .push(format!("{} received seq {} twice", c.name, d.seq));
            }
            if d.seq <= previous {
                v.reordered += 1;
                v.problems.push(format!(
                    "{} received seq {} after seq {previous}",
                    c.name, d.seq
                ));
            } else if d.seq != previous + 1 {
                v.problems.push(format!(
                    "{} received seq {} right after seq {previous} (a gap)",
                    c.name, d.seq
                ));
            }
            previous = previous.max(d.seq);
            let matches_store = ordered
                .get((d.seq as usize).wrapping_sub(1))
                .is_some_and(|m| m.seq == d.seq && m.text == d.text && m.from == d.from);
            if !matches_store {
                v.problems.push(format!(
                    "{} received seq {} as {:?}, unlike the database",
                    c.name, d.seq, d.text
                ));
            }
        }
        for m in &ordered {
            if got.contains(&(m.epoch, m.seq)) {
                v.delivered += 1;
            } else {
                v.lost += 1;
                if v.lost <= 10 {
                    v.problems
                        .push(format!("{} never received seq {}", c.name, m.seq));
                }
            }
        }
        if record.lagged_events > 0 {
            eprintln!(
                "chaos: {} recorder lagged by {} state events (states re-read from the core)",
                c.name, record.lagged_events
            );
        }
    }
    v.delivered_expected = clients.len() * stored.len();
    v.acked = v.sent.saturating_sub(unacked);
    if unacked > 0 {
        v.problems.push(format!("{unacked} messages never acked"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_parse_back_to_sender_and_number() {
        assert_eq!(parse_text("chaos-2#17"), Some(("chaos-2", 17)));
        assert_eq!(parse_text("a#b#3"), Some(("a#b", 3)));
        assert_eq!(parse_text("nope"), None);
    }
}
