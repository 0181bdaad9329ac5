//! What a joiner must not miss while its history is read.
//!
//! With several writers (PostgreSQL, other processes through the bus) the
//! room keeps delivering while a join reads its history, so the history can
//! stop short of what the room has delivered by the time the joiner becomes
//! a member. Reading again only races the next delivery: under a burst (every
//! client flushing its outbox after an outage) every read came back short.
//! Instead, [`super::Hub::begin_join`] starts a [`CatchUp`] before the read;
//! the room records each message it delivers meanwhile, and the join appends
//! those past the history, so the joiner gets every message once, in order,
//! however busy the room is.

use axum::extract::ws::Utf8Bytes;

use super::MAX_PENDING;

/// The messages a room delivered while one join's history was being read.
#[derive(Debug, Default)]
pub(super) struct CatchUp {
    /// (epoch, seq, frame) in delivery order: `seq` order within an epoch.
    delivered: Vec<(u64, u64, Utf8Bytes)>,
    /// More than [`MAX_PENDING`] came: the join reads its history again.
    overflowed: bool,
}

impl CatchUp {
    /// The room delivered `seq` of `epoch` (as `frame`).
    pub(super) fn record(&mut self, epoch: u64, seq: u64, frame: &Utf8Bytes) {
        if self.overflowed {
            return;
        }
        if self.delivered.len() >= MAX_PENDING {
            self.overflowed = true;
            self.delivered = Vec::new();
            return;
        }
        self.delivered.push((epoch, seq, frame.clone()));
    }

    /// The frames of `epoch` after a history that reached `history_to`, when
    /// they are exactly `history_to + 1 ..= delivered`; `None` if any is
    /// missing (the history must be read again).
    pub(super) fn frames_after(
        self,
        epoch: u64,
        history_to: u64,
        delivered: u64,
    ) -> Option<Vec<Utf8Bytes>> {
        if history_to >= delivered {
            return Some(Vec::new());
        }
        if self.overflowed {
            return None;
        }
        let mut next = history_to + 1;
        let mut frames = Vec::new();
        for (e, seq, frame) in self.delivered {
            if e != epoch || seq < next {
                continue;
            }
            if seq != next {
                return None;
            }
            frames.push(frame);
            next += 1;
        }
        (next == delivered + 1).then_some(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(epoch: u64, seqs: impl IntoIterator<Item = u64>) -> CatchUp {
        let mut c = CatchUp::default();
        for seq in seqs {
            c.record(epoch, seq, &Utf8Bytes::from(format!("m{seq}")));
        }
        c
    }

    fn texts(frames: Option<Vec<Utf8Bytes>>) -> Option<Vec<String>> {
        frames.map(|f| f.iter().map(|t| t.as_str().to_owned()).collect())
    }

    #[test]
    fn the_frames_past_the_history_come_in_order_and_once() {
        let c = recorded(7, 3..=6);
        assert_eq!(
            texts(c.frames_after(7, 4, 6)),
            Some(vec!["m5".to_owned(), "m6".to_owned()])
        );
        // A history that reached what the room delivered needs nothing.
        assert_eq!(
            texts(recorded(7, 3..=6).frames_after(7, 6, 6)),
            Some(vec![])
        );
    }

    #[test]
    fn a_missing_message_or_another_epoch_means_read_again() {
        // 4 was delivered before the catch-up began, and the history
        // stopped at 3.
        assert_eq!(texts(recorded(7, 5..=6).frames_after(7, 3, 6)), None);
        // The recorded messages are of the old stream.
        assert_eq!(texts(recorded(6, 4..=6).frames_after(7, 3, 6)), None);
    }

    #[test]
    fn too_many_while_reading_means_read_again() {
        let many = u64::try_from(MAX_PENDING).unwrap_or(u64::MAX) + 1;
        let c = recorded(7, 1..=many);
        assert_eq!(texts(c.frames_after(7, 0, many)), None);
    }
}
