//! Writing the outbox: order, back-pressure, time-to-live.

use super::*;

impl Connection {
    // ---- outbox ----

    pub(super) fn flush(&mut self, now: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        loop {
            if self.buffered > self.config.high_water_mark {
                self.arm_flush(now);
                break;
            }
            let Some(entry) = self.outbox.next_unsent(socket) else {
                break;
            };
            entry.sent_on = Some(socket);
            let (id, text) = (entry.id.clone(), entry.frame.clone());
            self.write(socket, text);
            self.message_state(id, DeliveryState::Sent);
        }
        self.arm_ttl();
    }

    pub(super) fn expire(&mut self, now: Millis) {
        for id in self.outbox.take_expired(now, self.open_socket()) {
            self.fail_message(id, MessageFailure::Expired);
        }
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

    pub(super) fn write(&mut self, socket: SocketId, text: String) {
        let len = text.len() as u64;
        self.stats.frames_out += 1;
        self.stats.bytes_out += len;
        self.buffered = self.buffered.saturating_add(len);
        self.actions.push(Action::SendFrame { socket, text });
    }
}
