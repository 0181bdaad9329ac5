//! Pings, pongs, probes and the verdict on a silent link.

use serde_json::Value;

use super::{Connection, LATE_TIMER_SLACK, Loss, TimerKind};
use crate::core::heartbeat::{Ping, ping_frame, pong_matches};
use crate::core::{CLOSE_HEARTBEAT_LOST, HeartbeatStyle, Millis, Report, SocketId, TimelineEvent};

impl Connection {
    /// A JSON pong: the reply to the outstanding ping only when it echoes
    /// that ping's `t`. A stale or unsolicited one proves the link alive
    /// (like any frame) but says nothing about the round-trip time.
    pub(super) fn on_json_pong(&mut self, now: Millis, value: &Value) {
        let ping = self.heartbeat.ping;
        match ping.filter(|_| pong_matches(value, ping)) {
            Some(ping) => self.on_pong(Some(now.saturating_sub(ping.sent_at))),
            None => self.on_pong(None),
        }
    }

    /// `rtt` is the answer to the outstanding ping; `None` is a pong that
    /// answers no ping we are waiting for.
    pub(super) fn on_pong(&mut self, rtt: Option<Millis>) {
        let Some(rtt) = rtt else {
            // Life, but no sample: the outstanding ping keeps waiting.
            self.heartbeat.losses_in_row = 0;
            return;
        };
        self.heartbeat.record_rtt(rtt);
        self.cancel_timer(TimerKind::PongTimeout);
        self.arm_heartbeat();
    }

    pub(super) fn heartbeat_tick(&mut self, now: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        if self.heartbeat.ping.is_some() {
            return; // the pong deadline decides
        }
        // Judge by real silence, not by how often this timer managed to fire.
        let due = self.heartbeat.next_ping_due(self.config.heartbeat.interval);
        if now < due {
            self.set_timer(TimerKind::Heartbeat, due);
        } else {
            self.send_ping(now, socket, self.config.heartbeat.timeout);
        }
    }

    pub(super) fn pong_deadline(&mut self, now: Millis, late_by: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        let Some(ping) = self.heartbeat.ping else {
            self.arm_heartbeat();
            return;
        };
        if self.heartbeat.last_inbound > ping.sent_at {
            // Frames arrived since the ping, so the link lives; the pong is
            // just missing (slow server): a hint of degradation.
            self.heartbeat.ping = None;
            self.heartbeat.missed_in_row += 1;
            self.stats.missed_pongs += 1;
            self.arm_heartbeat();
            return;
        }
        if now < ping.deadline {
            self.set_timer(TimerKind::PongTimeout, ping.deadline);
            return;
        }
        if late_by > LATE_TIMER_SLACK && !ping.extended {
            // A throttled tab woke up: frames may be queued behind this
            // timer. Give the link one short grace instead of a verdict.
            self.report(Report::LateTimer {
                kind: TimerKind::PongTimeout,
                late_by,
            });
            let deadline = now.saturating_add(self.config.heartbeat.probe_timeout);
            self.heartbeat.ping = Some(Ping {
                deadline,
                extended: true,
                ..ping
            });
            self.set_timer(TimerKind::PongTimeout, deadline);
            return;
        }
        self.stats.missed_pongs += 1;
        let silent_for = now.saturating_sub(self.heartbeat.last_inbound);
        self.log(TimelineEvent::HeartbeatLost { silent_for });
        self.close_socket(socket, CLOSE_HEARTBEAT_LOST, "heartbeat lost");
        self.lose_link(now, Loss::HeartbeatLost);
    }

    /// A liveness check with the short probe timeout (on `online`, `offline`
    /// or `visible` while the socket claims to be open).
    pub(super) fn probe(&mut self, now: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        if self.config.heartbeat.style == HeartbeatStyle::Disabled {
            return;
        }
        let deadline = now.saturating_add(self.config.heartbeat.probe_timeout);
        match self.heartbeat.ping {
            Some(mut ping) => {
                // A ping is out already: shorten its wait, or renew one whose
                // deadline passed while its timer was throttled.
                if ping.deadline > deadline || ping.deadline <= now {
                    ping.deadline = deadline;
                }
                ping.extended = true;
                self.heartbeat.ping = Some(ping);
                self.set_timer(TimerKind::PongTimeout, ping.deadline);
            }
            None => {
                self.cancel_timer(TimerKind::Heartbeat);
                self.send_ping(now, socket, self.config.heartbeat.probe_timeout);
                if let Some(ping) = self.heartbeat.ping.as_mut() {
                    ping.extended = true;
                }
            }
        }
    }

    pub(super) fn send_ping(&mut self, now: Millis, socket: SocketId, wait: Millis) {
        let Some(text) = ping_frame(&self.config.heartbeat.style, now) else {
            return;
        };
        self.write(socket, text);
        self.heartbeat.last_ping_at = now;
        let deadline = now.saturating_add(wait);
        self.heartbeat.ping = Some(Ping {
            sent_at: now,
            deadline,
            extended: false,
        });
        self.set_timer(TimerKind::PongTimeout, deadline);
    }

    pub(super) fn arm_heartbeat(&mut self) {
        if self.open_socket().is_none()
            || self.heartbeat.ping.is_some()
            || self.config.heartbeat.style == HeartbeatStyle::Disabled
        {
            return;
        }
        let at = self.heartbeat.next_ping_due(self.config.heartbeat.interval);
        self.set_timer(TimerKind::Heartbeat, at);
    }
}
