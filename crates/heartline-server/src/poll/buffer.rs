//! A poll session's numbered buffer: the frames the client has not
//! acknowledged, bounded in queue slots like a socket's queue.

use std::collections::VecDeque;

use axum::extract::ws::Utf8Bytes;
use heartline::core::poll::PollClose;
use tokio::time::Instant;

use crate::peer::Outbound;

/// Most frames in one `recv` answer; the rest come with the next one.
pub const MAX_RECV_FRAMES: usize = 256;

/// The frames the client has not acknowledged, numbered from 1.
#[derive(Debug)]
pub(super) struct Buffer {
    pub(super) frames: VecDeque<Retained>,
    /// The number of `frames[0]` (of the next frame when empty).
    pub(super) first: u64,
    /// Queue slots the retained frames take.
    pub(super) slots: usize,
    /// Most slots retained before the session is too slow.
    pub(super) capacity: usize,
    /// The highest frame number answered so far (for `frames_out`).
    pub(super) delivered: u64,
    /// Set once the connection ended: the close the last batch carries.
    pub(super) close: Option<PollClose>,
    /// The newest `recv`: an older held one sees it changed and answers.
    pub(super) recv_generation: u64,
    /// `recv`s in progress (a session with one never expires).
    pub(super) receiving: usize,
    /// When the last `recv` ended (or the session opened).
    pub(super) last_recv_end: Instant,
    /// Unlisted: the pump stops.
    pub(super) removed: bool,
}

#[derive(Debug)]
pub(super) struct Retained {
    text: Utf8Bytes,
    /// 1 for the first frame of a queue slot, 0 for the others of a batch.
    slots: usize,
}

/// The `after` of a `recv` names a frame that was never sent.
#[derive(Debug)]
pub(super) struct AfterTooLarge;

impl Buffer {
    pub(super) fn new(capacity: usize) -> Self {
        Buffer {
            frames: VecDeque::new(),
            first: 1,
            slots: 0,
            capacity,
            delivered: 0,
            close: None,
            recv_generation: 0,
            receiving: 0,
            last_recv_end: Instant::now(),
            removed: false,
        }
    }

    /// The number the next frame gets.
    pub(super) fn next(&self) -> u64 {
        self.first + self.frames.len() as u64
    }

    /// Appends a queue slot's frames; `false` (nothing appended) when the
    /// buffer is full and `bounded`.
    pub(super) fn append(&mut self, out: Outbound, bounded: bool) -> bool {
        if bounded && self.slots >= self.capacity {
            return false;
        }
        let texts = match out {
            Outbound::Text(text) => vec![text],
            Outbound::Batch(texts) => texts,
        };
        for (index, text) in texts.into_iter().enumerate() {
            let slots = usize::from(index == 0);
            self.slots += slots;
            self.frames.push_back(Retained { text, slots });
        }
        true
    }

    /// Drops the frames up to `after`.
    pub(super) fn ack(&mut self, after: u64) -> Result<(), AfterTooLarge> {
        if after >= self.next() {
            return Err(AfterTooLarge);
        }
        while self.first <= after {
            let Some(frame) = self.frames.pop_front() else {
                break;
            };
            self.slots = self.slots.saturating_sub(frame.slots);
            self.first += 1;
        }
        Ok(())
    }

    /// Whether a `recv` after `after` has something to answer now.
    pub(super) fn ready(&self, after: u64) -> bool {
        after.saturating_add(1).max(self.first) < self.next() || self.close.is_some()
    }

    /// The frames above `after` (at most [`MAX_RECV_FRAMES`]), and the
    /// close when they are the last ones.
    pub(super) fn answer(&mut self, after: u64) -> (u64, Vec<Utf8Bytes>, Option<PollClose>) {
        let start = after.saturating_add(1).max(self.first);
        let skip = usize::try_from(start - self.first).unwrap_or(usize::MAX);
        let frames: Vec<Utf8Bytes> = self
            .frames
            .iter()
            .skip(skip)
            .take(MAX_RECV_FRAMES)
            .map(|frame| frame.text.clone())
            .collect();
        let end = start + frames.len() as u64;
        let close = if end == self.next() {
            self.close.clone()
        } else {
            None
        };
        (start, frames, close)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn text(s: &'static str) -> Outbound {
        Outbound::Text(Utf8Bytes::from_static(s))
    }

    #[test]
    fn buffer_numbers_acks_and_answers_again() {
        let mut b = Buffer::new(8);
        assert!(b.append(text("a"), true));
        assert!(b.append(
            Outbound::Batch(vec![
                Utf8Bytes::from_static("b"),
                Utf8Bytes::from_static("c")
            ]),
            true
        ));
        assert_eq!(b.slots, 2);
        assert!(b.ready(0));
        let (first, frames, close) = b.answer(0);
        assert_eq!((first, frames.len(), close), (1, 3, None));
        // The same `after` gets the same frames.
        b.ack(0).unwrap();
        assert_eq!(b.answer(0).1.len(), 3);
        b.ack(2).unwrap();
        assert_eq!(b.first, 3);
        assert_eq!(b.slots, 0);
        let (first, frames, _) = b.answer(2);
        assert_eq!((first, frames[0].as_str()), (3, "c"));
        assert!(b.ack(4).is_err());
        b.ack(3).unwrap();
        assert!(!b.ready(3));
        b.close = Some(PollClose {
            code: 4002,
            reason: "rate".into(),
        });
        assert!(b.ready(3));
        assert_eq!(b.answer(3), (4, vec![], b.close.clone()));
    }

    #[test]
    fn buffer_is_bounded_in_slots_and_answers_in_pieces() {
        let mut b = Buffer::new(2);
        assert!(b.append(text("a"), true));
        assert!(b.append(text("b"), true));
        assert!(!b.append(text("c"), true));
        assert!(b.append(text("c"), false));
        let many: Vec<Utf8Bytes> = (0..MAX_RECV_FRAMES + 5)
            .map(|_| Utf8Bytes::from_static("x"))
            .collect();
        b.ack(3).unwrap();
        assert!(b.append(Outbound::Batch(many), true));
        b.close = Some(PollClose {
            code: 1008,
            reason: String::new(),
        });
        let (first, frames, close) = b.answer(3);
        assert_eq!((first, frames.len(), close), (4, MAX_RECV_FRAMES, None));
        let (first, frames, close) = b.answer(3 + MAX_RECV_FRAMES as u64);
        assert_eq!((first, frames.len()), (4 + MAX_RECV_FRAMES as u64, 5));
        assert!(close.is_some());
    }
}
