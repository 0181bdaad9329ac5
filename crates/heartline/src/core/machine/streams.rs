//! Standing subscriptions and the resume of streams.

use serde_json::Value;

use super::{Action, Connection, TimerKind};
use crate::core::streams::Accepted;
use crate::core::{Inbound, Millis, Report, SocketId};

impl Connection {
    /// Asks again for a stream from its last delivered message, by
    /// re-sending the standing subscription that resumes it.
    pub(super) fn request_resume(&mut self, socket: SocketId, stream: &str) {
        let indexes: Vec<usize> = (0..self.standing.len())
            .filter(|&i| self.standing[i].resume_stream.as_deref() == Some(stream))
            .collect();
        for index in indexes {
            let text = self.standing_frame(index);
            self.write(socket, text);
        }
    }

    pub(super) fn standing_frame(&self, index: usize) -> String {
        let Some(standing) = self.standing.get(index) else {
            return String::new();
        };
        let mut value = standing.value.clone();
        if let (Some(stream), Value::Object(object)) = (&standing.resume_stream, &mut value)
            && let Some(last) = self.streams.last_seq(stream)
        {
            object.insert("since".to_owned(), Value::from(last));
            // `since` counts within an epoch: name it, so a server whose
            // stream started over sends it from the start instead.
            if let Some(epoch) = self.streams.epoch(stream) {
                object.insert("epoch".to_owned(), Value::from(epoch));
            }
        }
        value.to_string()
    }

    pub(super) fn arm_gap(&mut self) {
        match self
            .streams
            .next_gap_deadline(self.config.stream_gap_timeout)
        {
            Some(at) => self.set_timer(TimerKind::StreamGap, at),
            None => self.cancel_timer(TimerKind::StreamGap),
        }
    }

    /// Delivers a message of a resumable stream once, in order; others as
    /// they come.
    pub(super) fn on_stream_message(&mut self, now: Millis, socket: SocketId, message: Inbound) {
        self.check_epoch(&message);
        let Some(position) = message.stream.clone() else {
            self.actions.push(Action::Deliver(message));
            return;
        };
        let limit = self.config.stream_buffer_limit;
        let stream = &*position.stream;
        match self
            .streams
            .accept(stream, position.seq, message, now, limit)
        {
            Accepted::Deliver(messages) => {
                self.actions
                    .extend(messages.into_iter().map(Action::Deliver));
            }
            Accepted::Duplicate => {
                self.stats.duplicates += 1;
                self.report(Report::Duplicate {
                    stream: stream.to_owned(),
                    seq: position.seq,
                });
            }
            Accepted::Held { expected, new_gap } => {
                self.report(Report::Gap {
                    stream: stream.to_owned(),
                    expected,
                    got: position.seq,
                });
                if new_gap {
                    self.request_resume(socket, stream);
                }
                self.arm_gap();
            }
            Accepted::Skipped { from, to, deliver } => {
                self.stats.gaps_skipped += 1;
                self.report(Report::GapSkipped {
                    stream: stream.to_owned(),
                    from,
                    to,
                });
                self.actions
                    .extend(deliver.into_iter().map(Action::Deliver));
                self.arm_gap();
            }
        }
    }

    /// Any inbound with `stream` and `epoch` (a message, or a `joined`
    /// without `seq`) may announce that the stream started over.
    fn check_epoch(&mut self, message: &Inbound) {
        let (stream, epoch): (&str, Option<u64>) = match &message.stream {
            Some(position) => (&position.stream, position.epoch),
            None => match message.str_field("stream") {
                Some(stream) => (stream, message.value.get("epoch").and_then(Value::as_u64)),
                None => return,
            },
        };
        let Some(epoch) = epoch else {
            return;
        };
        if let Some((from, dropped)) = self.streams.observe_epoch(stream, epoch) {
            let stream = stream.to_owned();
            self.report(Report::EpochChanged {
                stream,
                from,
                to: epoch,
                dropped,
            });
            self.arm_gap();
        }
    }
}
