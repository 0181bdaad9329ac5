//! Inbound frames and timer fires.

use serde_json::Value;

use super::{Action, Connection, FrameData, Loss, Phase, RATE_LIMITED, TimerKind};
use crate::core::pacer::Pacer;
use crate::core::{
    CLOSE_NORMAL, DeliveryState, HeartbeatStyle, Inbound, MessageFailure, MessageId, Millis,
    ParseError, RefusedKind, Report, SocketId, TimelineEvent,
};

impl Connection {
    pub(super) fn on_frame(&mut self, now: Millis, socket: SocketId, data: FrameData) {
        if self.open_socket() != Some(socket) {
            return;
        }
        let len = data.len();
        self.stats.frames_in += 1;
        self.stats.bytes_in += len as u64;
        self.heartbeat.last_inbound = now;
        let max = self.config.max_frame_bytes;
        if len > max {
            self.stats.invalid_frames += 1;
            self.stats.oversized += 1;
            self.timeline.refused(now, RefusedKind::Oversized);
            self.report(Report::Oversized { len, max });
            return;
        }
        let text = match data {
            FrameData::Text(text) => text,
            FrameData::Binary(len) => {
                self.stats.invalid_frames += 1;
                self.stats.binary_frames += 1;
                self.timeline.refused(now, RefusedKind::Binary);
                self.report(Report::Binary { len });
                return;
            }
        };
        if let HeartbeatStyle::Text { ping, pong } = &self.config.heartbeat.style {
            if text == *pong {
                let rtt = self.heartbeat.ping.map(|p| now.saturating_sub(p.sent_at));
                self.on_pong(rtt);
                return;
            }
            if text == *ping {
                let reply = pong.clone();
                self.write(socket, reply);
                return;
            }
        }
        match Inbound::parse(&text) {
            Ok(message) => self.on_message(now, socket, message),
            Err(ParseError::Malformed(error)) => {
                self.stats.invalid_frames += 1;
                self.stats.malformed += 1;
                self.timeline.refused(now, RefusedKind::Malformed);
                self.report(Report::Malformed { len, error });
            }
            Err(ParseError::MissingType) => {
                self.stats.invalid_frames += 1;
                self.stats.missing_type += 1;
                self.timeline.refused(now, RefusedKind::MissingType);
                self.report(Report::MissingType { len });
            }
        }
    }

    pub(super) fn on_message(&mut self, now: Millis, socket: SocketId, message: Inbound) {
        match &*message.socket_type {
            "pong" => {
                self.on_json_pong(now, &message.value);
                return;
            }
            "ping" => {
                let t = message.value.get("t").cloned().unwrap_or(Value::Null);
                let reply = serde_json::json!({"socketType": "pong", "t": t});
                self.write(socket, reply.to_string());
                return;
            }
            "ack" => {
                if let Some(id) = message.str_field("id") {
                    self.on_ack(now, MessageId::from(id));
                }
                return;
            }
            "limits" => {
                // Handled (pacing) and also delivered, never "unknown".
                self.on_limits(now, &message.value);
            }
            "error" => {
                self.on_error(now, &message);
                // Also delivered (to handlers that want it), never "unknown".
            }
            other => {
                let unknown = self
                    .registry
                    .as_ref()
                    .is_some_and(|registry| !registry.has_handlers(other));
                if unknown {
                    self.stats.unknown_types += 1;
                    self.timeline.refused(now, RefusedKind::UnknownType);
                    let socket_type = other.to_owned();
                    self.report(Report::UnknownType { socket_type });
                }
            }
        }
        self.on_stream_message(now, socket, message);
    }

    /// The server's per-connection token bucket: pace every write under it.
    fn on_limits(&mut self, now: Millis, value: &Value) {
        let rate = value.get("rate").and_then(Value::as_f64).unwrap_or(0.0);
        let burst = value.get("burst").and_then(Value::as_u64).unwrap_or(0);
        self.pacer = Pacer::from_limits(rate, burst, now, self.link_frames);
        self.server_max_frame = value
            .get("max_frame_bytes")
            .and_then(Value::as_u64)
            .and_then(|max| usize::try_from(max).ok())
            .filter(|max| *max > 0);
    }

    /// A refusal: `rate_limited` re-queues the message it names and pauses
    /// the outbox; any other refusal of one of our messages is final.
    fn on_error(&mut self, now: Millis, message: &Inbound) {
        let id = message.str_field("id").map(MessageId::from);
        let code = message.str_field("code").unwrap_or_default();
        if code == RATE_LIMITED {
            let retry_after = message.value.get("retry_after_ms").and_then(Value::as_u64);
            self.on_rate_limited(now, id, retry_after);
            return;
        }
        if let Some(id) = id
            && let Some(entry) = self.outbox.remove(&id)
        {
            let failure = MessageFailure::Refused {
                code: code.to_owned(),
                message: message.str_field("message").unwrap_or_default().to_owned(),
            };
            self.log(TimelineEvent::MessageRefused {
                id: entry.id.clone(),
                code: code.to_owned(),
            });
            self.fail_message(entry.id, failure);
            self.check_drained();
            self.arm_ttl();
            // Its place in the window is free.
            self.flush(now);
        }
    }

    pub(super) fn on_ack(&mut self, now: Millis, id: MessageId) {
        match self.outbox.remove(&id) {
            Some(entry) => {
                self.stats.acked += 1;
                self.message_state(entry.id, DeliveryState::Acked);
                if let Some(acked) = self.backlog_acked.as_mut() {
                    *acked += 1;
                }
                self.check_drained();
                self.arm_ttl();
                // The window has room again.
                self.flush(now);
            }
            None => self.report(Report::UnknownAck {
                id: id.as_str().to_owned(),
            }),
        }
    }

    pub(super) fn on_timer(&mut self, now: Millis, kind: TimerKind) {
        // A fire of a timer not pending (cancelled, replaced) is stale.
        let Some(at) = self.timers[kind.index()].take() else {
            return;
        };
        let late_by = now.saturating_sub(at);
        match kind {
            TimerKind::Reconnect => {
                if matches!(self.phase, Phase::Waiting { .. }) {
                    self.begin_attempt(now);
                }
            }
            TimerKind::ConnectTimeout => {
                if let Phase::Connecting {
                    socket, started_at, ..
                } = self.phase
                {
                    let deadline = started_at.saturating_add(self.config.connect_timeout);
                    if now < deadline {
                        self.set_timer(TimerKind::ConnectTimeout, deadline);
                    } else {
                        self.close_socket(socket, CLOSE_NORMAL, "connect timeout");
                        self.lose_link(now, Loss::ConnectTimeout);
                    }
                }
            }
            TimerKind::Heartbeat => self.heartbeat_tick(now),
            TimerKind::PongTimeout => self.pong_deadline(now, late_by),
            TimerKind::Flush => {
                // No fresher report came: assume the buffer drained.
                self.buffered = 0;
                self.flush(now);
            }
            TimerKind::Pace => self.flush(now),
            TimerKind::Probe => self.upgrade_probe_timer(now),
            TimerKind::Ttl => {
                self.expire(now);
                self.arm_ttl();
            }
            TimerKind::StreamGap => {
                // Only give up on a gap while a resume could still fill it.
                if self.open_socket().is_some() {
                    let timeout = self.config.stream_gap_timeout;
                    for (stream, from, to, deliver) in self.streams.skip_stale_gaps(now, timeout) {
                        self.stats.gaps_skipped += 1;
                        self.report(Report::GapSkipped { stream, from, to });
                        self.actions
                            .extend(deliver.into_iter().map(Action::Deliver));
                    }
                    self.arm_gap();
                }
            }
        }
    }
}
