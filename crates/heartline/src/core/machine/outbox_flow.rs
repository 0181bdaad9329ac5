//! Writing the outbox: order, the send window, pacing under the server's
//! limits, back-pressure and time-to-live.

use super::{Action, Connection, DEFAULT_RETRY_AFTER, FLUSH_POLL, TimerKind};
use crate::core::{DeliveryState, MessageFailure, MessageId, Millis, Report, SocketId};

impl Connection {
    /// Writes queued messages in order while the window, the pace, the
    /// `rate_limited` pause and the socket's buffer allow; arms the timer
    /// that resumes it otherwise (an ack reopens the window by itself).
    pub(super) fn flush(&mut self, now: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        let window = self.config.send_window.max(1);
        let mut in_flight = self.outbox.counts(Some(socket)).1;
        loop {
            if self.buffered > self.config.high_water_mark {
                self.arm_flush(now);
                break;
            }
            if in_flight >= window || !self.outbox.has_unsent(socket) {
                break;
            }
            if let Some(at) = self.next_write_at(now) {
                self.set_timer(TimerKind::Pace, at);
                break;
            }
            let Some(entry) = self.outbox.next_unsent(socket) else {
                break;
            };
            entry.sent_on = Some(socket);
            let (id, text) = (entry.id.clone(), entry.frame.clone());
            self.write(socket, text);
            in_flight += 1;
            self.message_state(id, DeliveryState::Sent);
        }
        self.arm_ttl();
    }

    /// `None` when a paced frame may be written now, else when it may.
    pub(super) fn next_write_at(&mut self, now: Millis) -> Option<Millis> {
        if let Some(until) = self.drain_paused_until {
            if now < until {
                return Some(until);
            }
            self.drain_paused_until = None;
        }
        let pacer = self.pacer.as_mut()?;
        if pacer.has_token(now) {
            None
        } else {
            Some(pacer.next_token_at(now))
        }
    }

    /// The server refused a frame as `rate_limited`: the named message (if
    /// it is ours) goes back to the queue, and the outbox writes nothing
    /// until the hinted wait is over, then resumes in order.
    pub(super) fn on_rate_limited(
        &mut self,
        now: Millis,
        id: Option<MessageId>,
        retry_after: Option<Millis>,
    ) {
        self.stats.rate_limited += 1;
        let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER).max(1);
        self.timeline.rate_limited(now, wait);
        let until = now.saturating_add(wait);
        self.drain_paused_until = Some(self.drain_paused_until.map_or(until, |u| u.max(until)));
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.empty(now);
        }
        let requeued = id.filter(|id| self.outbox.requeue(id));
        if let Some(id) = &requeued {
            self.message_state(id.clone(), DeliveryState::Queued);
        }
        self.report(Report::RateLimited {
            id: requeued.map(|id| id.as_str().to_owned()),
            retry_after: wait,
        });
        if self.open_socket().is_some() {
            self.set_timer(TimerKind::Pace, until);
        }
    }

    pub(super) fn expire(&mut self, now: Millis) {
        for id in self.outbox.take_expired(now, self.open_socket()) {
            self.fail_message(id, MessageFailure::Expired);
        }
        self.check_drained();
        self.arm_ttl();
    }

    pub(super) fn fail_message(&mut self, id: MessageId, failure: MessageFailure) {
        self.stats.failed += 1;
        self.message_state(id, DeliveryState::Failed(failure));
    }

    pub(super) fn new_message_id(&mut self) -> MessageId {
        loop {
            let id = MessageId::from(format!("{}-{}", self.id_prefix, self.next_message));
            self.next_message += 1;
            if !self.outbox.contains(&id) {
                return id;
            }
        }
    }

    /// Polls the socket's buffer soon, unless a poll is pending already.
    pub(super) fn arm_flush(&mut self, now: Millis) {
        if self.timers[TimerKind::Flush.index()].is_none() {
            self.set_timer(TimerKind::Flush, now.saturating_add(FLUSH_POLL));
        }
    }

    pub(super) fn arm_ttl(&mut self) {
        match self.outbox.next_expiry(self.open_socket()) {
            Some(at) => self.set_timer(TimerKind::Ttl, at),
            None => self.cancel_timer(TimerKind::Ttl),
        }
    }

    /// Every frame goes out here: counted, charged to the pacer (frames that
    /// cannot wait, like pings, may put it in debt) and added to the buffer
    /// estimate, which the Flush poll then corrects until it drains.
    pub(super) fn write(&mut self, socket: SocketId, text: String) {
        let len = text.len() as u64;
        let now = self.now;
        self.stats.frames_out += 1;
        self.stats.bytes_out += len;
        self.link_frames += 1;
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.take(now);
        }
        self.buffered = self.buffered.saturating_add(len);
        self.actions.push(Action::SendFrame { socket, text });
        if self.buffered > 0 {
            self.arm_flush(now);
        }
    }
}
