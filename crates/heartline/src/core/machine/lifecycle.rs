//! Connecting, opening, losing the link and deciding whether to retry.

use super::{Action, Connection, Event, FLUSH_POLL, Loss, Phase, TimerKind};
use crate::core::{
    CLOSE_AUTH_REFUSED, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, DeliveryState, FailureReason, LinkLoss,
    Millis, SocketId, TimelineEvent,
};

impl Connection {
    // ---- event processing ----

    pub(super) fn process(&mut self, now: Millis, event: Event) {
        match event {
            Event::Start => self.start(now),
            Event::Opened { socket } => self.on_opened(now, socket),
            Event::Frame { socket, data } => self.on_frame(now, socket, data),
            Event::Closed {
                socket,
                code,
                reason,
                was_clean: _,
            } => {
                if self.socket() == Some(socket) {
                    self.lose_link(now, Loss::Closed { code, reason });
                }
            }
            Event::Error { socket } => {
                if self.socket() == Some(socket) {
                    // Closing it ourselves makes the socket stale now, so its
                    // coming `close` event cannot schedule a second reconnect.
                    self.close_socket(socket, CLOSE_NORMAL, "socket error");
                    self.lose_link(now, Loss::Error);
                }
            }
            Event::TimerFired(kind) => self.on_timer(now, kind),
            Event::ProbeOpened { probe } => self.on_probe_opened(now, probe),
            Event::ProbeFailed { probe } => self.on_probe_failed(now, probe),
            Event::BufferedAmount { socket, bytes } => {
                if self.open_socket() == Some(socket) {
                    self.buffered = bytes;
                    // Keep polling until the buffer drains, so the estimate
                    // never stays high after the bytes left.
                    // The report may stand in for a Flush fire (the driver
                    // read the buffer instead), so re-arm rather than trust
                    // a pending one.
                    if bytes == 0 {
                        self.cancel_timer(TimerKind::Flush);
                    } else {
                        self.set_timer(TimerKind::Flush, now.saturating_add(FLUSH_POLL));
                    }
                    if bytes <= self.config.high_water_mark {
                        self.flush(now);
                    }
                }
            }
            Event::Online => {
                self.online = true;
                match self.phase {
                    Phase::Offline | Phase::Waiting { .. } => self.begin_attempt(now),
                    Phase::Open { .. } => self.probe(now),
                    _ => {}
                }
            }
            Event::Offline => {
                self.online = false;
                match self.phase {
                    Phase::Waiting { .. } => {
                        self.cancel_timer(TimerKind::Reconnect);
                        self.phase = Phase::Offline;
                    }
                    Phase::Connecting { socket, .. } => {
                        self.close_socket(socket, CLOSE_NORMAL, "offline");
                        self.cancel_timer(TimerKind::ConnectTimeout);
                        self.phase = Phase::Offline;
                    }
                    // The link may survive a short blip: check it instead.
                    Phase::Open { .. } => self.probe(now),
                    _ => {}
                }
            }
            Event::Visible => {
                match self.phase {
                    Phase::Open { .. } => self.probe(now),
                    // The reconnect timer was throttled while hidden.
                    Phase::Waiting { at, .. } if at <= now => self.begin_attempt(now),
                    _ => {}
                }
            }
            // Nothing to do: throttled timers are caught by the late-timer
            // checks, and `Visible` probes the link.
            Event::Hidden => {}
            Event::RetryNow => match self.phase {
                Phase::Waiting { .. } => self.begin_attempt(now),
                Phase::Offline => {
                    // The user overrides the browser's opinion.
                    self.online = true;
                    self.begin_attempt(now);
                }
                Phase::Failed(_) => self.start_afresh(now),
                _ => {}
            },
            Event::Stop => {
                if let Some(socket) = self.socket() {
                    self.close_socket(socket, CLOSE_NORMAL, "closed by the app");
                }
                self.drop_link_state();
                self.cancel_timer(TimerKind::Reconnect);
                self.phase = Phase::Closed;
            }
            Event::Unsupported => {
                if self.websocket_unsupported(now) {
                    return;
                }
                if let Some(socket) = self.socket() {
                    self.close_socket(socket, CLOSE_NORMAL, "unsupported");
                }
                self.drop_link_state();
                self.fail(FailureReason::Unsupported);
            }
        }
    }

    pub(super) fn start(&mut self, now: Millis) {
        if matches!(self.phase, Phase::Idle | Phase::Closed | Phase::Failed(_)) {
            self.start_afresh(now);
        }
    }

    pub(super) fn start_afresh(&mut self, now: Millis) {
        self.failures = 0;
        self.backoff.reset();
        self.heartbeat.losses_in_row = 0;
        self.begin_attempt(now);
    }

    pub(super) fn begin_attempt(&mut self, now: Millis) {
        self.cancel_timer(TimerKind::Reconnect);
        if !self.online {
            self.phase = Phase::Offline;
            return;
        }
        let socket = SocketId(self.next_socket);
        self.next_socket += 1;
        self.stats.connect_attempts += 1;
        self.phase = Phase::Connecting {
            socket,
            attempt: self.failures.saturating_add(1),
            started_at: now,
        };
        let transport = self.choose_transport();
        self.actions.push(Action::Open { socket, transport });
        self.set_timer(
            TimerKind::ConnectTimeout,
            now.saturating_add(self.config.connect_timeout),
        );
    }

    pub(super) fn on_opened(&mut self, now: Millis, socket: SocketId) {
        let Phase::Connecting {
            socket: current, ..
        } = self.phase
        else {
            return;
        };
        if current != socket {
            return;
        }
        self.cancel_timer(TimerKind::ConnectTimeout);
        if self.ever_opened {
            self.stats.reconnects += 1;
        }
        self.ever_opened = true;
        self.phase = Phase::Open {
            socket,
            opened_at: now,
        };
        self.heartbeat.on_open(now);
        self.transport_opened(now);
        self.buffered = 0;
        // A new link: the server's bucket starts full and any pause it asked
        // for on the old link is over.
        self.link_frames = 0;
        self.drain_paused_until = None;
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.refill_fully(now);
        }
        // Messages waited for this link: say when they are all through.
        self.note_backlog();
        // Session replay: greeting, standing subscriptions, then the outbox.
        let greeting = self.greeting.as_mut().and_then(|provider| provider());
        if let Some(greeting) = greeting {
            self.write(socket, greeting.to_string());
        }
        for index in 0..self.standing.len() {
            let text = self.standing_frame(index);
            self.write(socket, text);
        }
        // Gaps get a fresh wait: the resume just asked for what is missing.
        self.streams.restart_gap_clocks(now);
        self.arm_gap();
        self.expire(now);
        self.flush(now);
        self.arm_heartbeat();
    }

    /// The live socket went away (closed, errored, abandoned or declared
    /// dead): decide between giving up and one reconnect.
    pub(super) fn lose_link(&mut self, now: Millis, loss: Loss) {
        let uptime = match self.phase {
            Phase::Open { opened_at, .. } => Some(now.saturating_sub(opened_at)),
            Phase::Connecting { .. } => None,
            _ => return,
        };
        self.attempt_ended(uptime.is_some());
        let cause = match &loss {
            Loss::Closed { code, reason } => Some(LinkLoss::Closed {
                code: *code,
                reason: reason.clone(),
            }),
            Loss::Error => Some(LinkLoss::Error),
            Loss::ConnectTimeout => Some(LinkLoss::ConnectTimeout),
            // Logged with its silence where the verdict was reached.
            Loss::HeartbeatLost => None,
        };
        if let Some(cause) = cause {
            self.log(TimelineEvent::Lost { cause });
        }
        self.drop_link_state();
        // In-flight messages whose time-to-live passed must not go out stale.
        self.expire(now);
        if let Loss::Closed { code, reason } = &loss
            && self.config.final_close_codes.contains(code)
        {
            let reason = match *code {
                CLOSE_AUTH_REFUSED => FailureReason::AuthRefused {
                    reason: reason.clone(),
                },
                CLOSE_PROTOCOL_ERROR => FailureReason::ProtocolError {
                    reason: reason.clone(),
                },
                code => FailureReason::ClosedByServer {
                    code,
                    reason: reason.clone(),
                },
            };
            self.fail(reason);
            return;
        }
        if uptime.is_some_and(|uptime| uptime >= self.config.min_uptime) {
            self.failures = 0;
            self.backoff.reset();
        }
        if matches!(loss, Loss::HeartbeatLost) {
            self.stats.heartbeat_losses += 1;
            self.heartbeat.losses_in_row = self.heartbeat.losses_in_row.saturating_add(1);
            let times = self.heartbeat.losses_in_row;
            if self
                .config
                .heartbeat
                .max_losses
                .is_some_and(|max| times >= max)
            {
                self.fail(FailureReason::HeartbeatLost { times });
                return;
            }
        }
        // A reconnect follows: it goes to the next server. The backoff goes
        // on from where it was (switching is no reason to hurry).
        self.rotate_endpoint();
        self.failures = self.failures.saturating_add(1);
        self.schedule_retry(now);
    }

    /// Moves to the next server URL, round robin, and says so.
    fn rotate_endpoint(&mut self) {
        if !self.endpoints.advance() {
            return;
        }
        self.stats.failovers += 1;
        if let Some(url) = self.endpoints.current() {
            let event = TimelineEvent::Failover {
                url: url.to_owned(),
                index: self.endpoints.index(),
                of: self.endpoints.len(),
            };
            self.log(event);
        }
    }

    pub(super) fn schedule_retry(&mut self, now: Millis) {
        if !self.online {
            self.phase = Phase::Offline;
            return;
        }
        if self
            .config
            .max_retries
            .is_some_and(|max| self.failures > max)
        {
            self.fail(FailureReason::ConnectFailed {
                attempts: self.failures,
            });
            return;
        }
        let delay = self.backoff.next_delay(self.failures);
        let at = now.saturating_add(delay);
        self.phase = Phase::Waiting {
            attempt: self.failures.saturating_add(1),
            at,
        };
        self.set_timer(TimerKind::Reconnect, at);
    }

    pub(super) fn fail(&mut self, reason: FailureReason) {
        self.cancel_timer(TimerKind::Reconnect);
        self.phase = Phase::Failed(reason);
    }

    /// Forgets everything tied to the live socket; the outbox re-sends all
    /// on the next open.
    pub(super) fn drop_link_state(&mut self) {
        for kind in [
            TimerKind::ConnectTimeout,
            TimerKind::Heartbeat,
            TimerKind::PongTimeout,
            TimerKind::Flush,
            TimerKind::Pace,
        ] {
            self.cancel_timer(kind);
        }
        self.stop_upgrade_probe();
        self.heartbeat.ping = None;
        self.buffered = 0;
        self.drain_paused_until = None;
        for id in self.outbox.requeue_all() {
            self.message_state(id, DeliveryState::Queued);
        }
        // Phase changes right after; until then no socket is live.
        self.phase = Phase::Idle;
        self.arm_ttl();
    }
}
