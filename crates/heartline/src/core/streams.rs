//! In-order, once-only delivery of stream messages (`stream` + `seq`).

use std::collections::{BTreeMap, HashMap};

use super::{Inbound, Millis};

#[derive(Debug, Default)]
struct StreamState {
    /// Highest sequence number delivered.
    last: Option<u64>,
    /// Messages that arrived ahead of a gap, by sequence number.
    held: BTreeMap<u64, Inbound>,
    /// When the current gap was first seen.
    gap_since: Option<Millis>,
    /// The epoch `last` belongs to, once the server named one.
    epoch: Option<u64>,
}

/// What to do with an arriving stream message.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// Deliver these, in order (the message, then any held ones it unblocked).
    Deliver(Vec<Inbound>),
    /// Already delivered (or already held): drop.
    Duplicate,
    /// Held behind a gap. `new_gap` is true when this opened the gap.
    Held { expected: u64, new_gap: bool },
    /// Held, but the buffer overflowed: the gap `from..=to` is skipped and
    /// these are delivered.
    Skipped {
        from: u64,
        to: u64,
        deliver: Vec<Inbound>,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Streams {
    streams: HashMap<String, StreamState>,
}

impl Streams {
    pub(crate) fn last_seq(&self, stream: &str) -> Option<u64> {
        self.streams.get(stream).and_then(|s| s.last)
    }

    pub(crate) fn set_last_seq(&mut self, stream: &str, seq: Option<u64>) {
        let state = self.streams.entry(stream.to_owned()).or_default();
        state.last = seq;
        // Held messages at or below the new mark are duplicates now.
        if let Some(seq) = seq {
            state.held = state.held.split_off(&(seq.saturating_add(1)));
        }
    }

    pub(crate) fn epoch(&self, stream: &str) -> Option<u64> {
        self.streams.get(stream).and_then(|s| s.epoch)
    }

    pub(crate) fn set_epoch(&mut self, stream: &str, epoch: Option<u64>) {
        self.streams.entry(stream.to_owned()).or_default().epoch = epoch;
    }

    /// Notes the epoch a message of `stream` carries. A first one is
    /// adopted; a different one means the stream started over: its position
    /// resets to "before seq 1" (so every message of the new epoch is kept,
    /// and a first one past 1 opens a gap that a resume fills) and held
    /// messages of the old epoch are dropped. Returns the old epoch and how
    /// many were dropped on a change.
    pub(crate) fn observe_epoch(&mut self, stream: &str, epoch: u64) -> Option<(u64, usize)> {
        let state = match self.streams.get_mut(stream) {
            Some(state) => state,
            None => self.streams.entry(stream.to_owned()).or_default(),
        };
        match state.epoch {
            Some(known) if known != epoch => {
                let dropped = state.held.len();
                state.held.clear();
                state.gap_since = None;
                state.last = Some(0);
                state.epoch = Some(epoch);
                Some((known, dropped))
            }
            Some(_) => None,
            None => {
                state.epoch = Some(epoch);
                None
            }
        }
    }

    pub(crate) fn forget(&mut self, stream: &str) {
        self.streams.remove(stream);
    }

    pub(crate) fn accept(
        &mut self,
        stream: &str,
        seq: u64,
        message: Inbound,
        now: Millis,
        buffer_limit: usize,
    ) -> Accepted {
        let state = match self.streams.get_mut(stream) {
            Some(state) => state,
            None => self.streams.entry(stream.to_owned()).or_default(),
        };
        let expected = match state.last {
            // First message seen: a fresh subscription starts wherever the
            // server's recent history starts.
            None => seq,
            Some(last) if seq <= last => return Accepted::Duplicate,
            Some(last) => last.saturating_add(1),
        };
        if seq == expected {
            state.last = Some(seq);
            let mut deliver = vec![message];
            deliver.extend(release_in_order(state));
            if state.held.is_empty() {
                state.gap_since = None;
            }
            return Accepted::Deliver(deliver);
        }
        if state.held.contains_key(&seq) {
            return Accepted::Duplicate;
        }
        state.held.insert(seq, message);
        let new_gap = state.gap_since.is_none();
        if new_gap {
            state.gap_since = Some(now);
        }
        if state.held.len() > buffer_limit {
            let (from, to, deliver) = skip_gap(state, expected, now);
            return Accepted::Skipped { from, to, deliver };
        }
        Accepted::Held { expected, new_gap }
    }

    /// Gives up on gaps older than `timeout`: returns, per stream, the skipped
    /// range and the messages now deliverable.
    pub(crate) fn skip_stale_gaps(
        &mut self,
        now: Millis,
        timeout: Millis,
    ) -> Vec<(String, u64, u64, Vec<Inbound>)> {
        let mut out = Vec::new();
        for (name, state) in &mut self.streams {
            let stale = state
                .gap_since
                .is_some_and(|since| now.saturating_sub(since) >= timeout);
            if stale && !state.held.is_empty() {
                let expected = state.last.map_or(0, |l| l.saturating_add(1));
                let (from, to, deliver) = skip_gap(state, expected, now);
                out.push((name.clone(), from, to, deliver));
            }
        }
        // HashMap order is random; keep the output deterministic.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Restarts every open gap's wait (a resume was just requested).
    pub(crate) fn restart_gap_clocks(&mut self, now: Millis) {
        for state in self.streams.values_mut() {
            if state.gap_since.is_some() {
                state.gap_since = Some(now);
            }
        }
    }

    /// When the oldest open gap times out.
    pub(crate) fn next_gap_deadline(&self, timeout: Millis) -> Option<Millis> {
        self.streams
            .values()
            .filter_map(|s| s.gap_since)
            .min()
            .map(|since| since.saturating_add(timeout))
    }
}

/// Moves held messages that now follow `last` without a gap.
fn release_in_order(state: &mut StreamState) -> Vec<Inbound> {
    let mut out = Vec::new();
    while let Some(last) = state.last {
        let Some(message) = state.held.remove(&last.saturating_add(1)) else {
            break;
        };
        state.last = Some(last.saturating_add(1));
        out.push(message);
    }
    out
}

/// Skips to the lowest held message and releases what follows it.
fn skip_gap(state: &mut StreamState, expected: u64, now: Millis) -> (u64, u64, Vec<Inbound>) {
    let Some((&first, _)) = state.held.iter().next() else {
        return (expected, expected, Vec::new());
    };
    let mut deliver = Vec::new();
    if let Some(message) = state.held.remove(&first) {
        deliver.push(message);
    }
    state.last = Some(first);
    deliver.extend(release_in_order(state));
    // Another gap may follow; its wait starts now.
    state.gap_since = (!state.held.is_empty()).then_some(now);
    (expected, first.saturating_sub(1), deliver)
}
