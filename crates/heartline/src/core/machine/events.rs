//! Inbound frames and timer fires.

use super::*;

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
            self.report(Report::Oversized { len, max });
            return;
        }
        let text = match data {
            FrameData::Text(text) => text,
            FrameData::Binary(len) => {
                self.stats.invalid_frames += 1;
                self.stats.binary_frames += 1;
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
                self.report(Report::Malformed { len, error });
            }
            Err(ParseError::MissingType) => {
                self.stats.invalid_frames += 1;
                self.stats.missing_type += 1;
                self.report(Report::MissingType { len });
            }
        }
    }

    pub(super) fn on_message(&mut self, now: Millis, socket: SocketId, message: Inbound) {
        match &*message.socket_type {
            "pong" => {
                let rtt = json_pong_rtt(&message.value, now, self.heartbeat.ping);
                self.on_pong(rtt);
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
                    self.on_ack(MessageId::from(id));
                }
                return;
            }
            "error" => {
                // A refusal of one of our messages: it must never be retried.
                if let Some(id) = message.str_field("id").map(MessageId::from)
                    && let Some(entry) = self.outbox.remove(&id)
                {
                    let failure = MessageFailure::Refused {
                        code: message.str_field("code").unwrap_or_default().to_owned(),
                        message: message.str_field("message").unwrap_or_default().to_owned(),
                    };
                    self.fail_message(entry.id, failure);
                    self.arm_ttl();
                }
                // Also delivered (to handlers that want it), never "unknown".
            }
            other => {
                let unknown = self
                    .registry
                    .as_ref()
                    .is_some_and(|registry| !registry.has_handlers(other));
                if unknown {
                    self.stats.unknown_types += 1;
                    let socket_type = other.to_owned();
                    self.report(Report::UnknownType { socket_type });
                }
            }
        }
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

    pub(super) fn on_ack(&mut self, id: MessageId) {
        match self.outbox.remove(&id) {
            Some(entry) => {
                self.stats.acked += 1;
                self.message_state(entry.id, DeliveryState::Acked);
                self.arm_ttl();
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
