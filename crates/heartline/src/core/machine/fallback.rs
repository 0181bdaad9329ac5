//! Choosing WebSocket or long-polling for each attempt, and probing the way
//! back to WebSocket while on long-polling (see [`FallbackConfig`]).

use super::{Action, Connection, Phase, TimerKind};
use crate::core::backoff::Backoff;
use crate::core::{CLOSE_NORMAL, FallbackConfig, Millis, SocketId, TimelineEvent, Transport};

/// Long-poll attempts in a row that may fail after a long-poll link was
/// lost before WebSocket is tried again (the server may have come back
/// without the poll endpoints, or with the upgrade working).
const STICKY_POLL_FAILURES: u32 = 3;

/// Where the upgrade probe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// None planned (on WebSocket, or not connected).
    Idle,
    /// The [`TimerKind::Probe`] timer starts the next one.
    Scheduled,
    /// This probe socket is out; the timer is its deadline.
    Running(SocketId),
}

/// The fallback's memory, kept across attempts.
#[derive(Debug)]
pub(super) struct FallbackState {
    /// The transport of the live link, or of the last attempt.
    current: Transport,
    /// WebSocket attempts in a row that failed before opening.
    ws_failures: u32,
    /// Long-poll attempts in a row that failed before opening.
    poll_failures: u32,
    /// The last attempt's transport, and whether it opened.
    last_attempt: Option<(Transport, bool)>,
    /// The transport of the last link that opened.
    last_opened: Option<Transport>,
    /// The browser has no `WebSocket`.
    unsupported: bool,
    probe: Probe,
    /// Probes failed in a row since the link opened.
    probe_failures: u32,
    probe_backoff: Backoff,
}

impl FallbackState {
    pub(super) fn new(config: &FallbackConfig, seed: u64) -> Self {
        FallbackState {
            current: Transport::WebSocket,
            ws_failures: 0,
            poll_failures: 0,
            last_attempt: None,
            last_opened: None,
            unsupported: false,
            probe: Probe::Idle,
            probe_failures: 0,
            probe_backoff: Backoff::new(config.probe.clone(), seed),
        }
    }

    pub(super) fn set_config(&mut self, config: &FallbackConfig, seed: u64) {
        self.probe_backoff = Backoff::new(config.probe.clone(), seed);
    }

    /// The transport of the live link (or of the last attempt).
    pub(super) fn transport(&self) -> Transport {
        self.current
    }
}

impl Connection {
    /// The transport for the attempt about to start: WebSocket, unless it
    /// keeps failing (then every other attempt long-polls, until one works)
    /// or the browser has none.
    pub(super) fn choose_transport(&mut self) -> Transport {
        let config = &self.config.fallback;
        let state = &mut self.fallback;
        state.current = if !config.enabled {
            Transport::WebSocket
        } else if state.unsupported {
            Transport::LongPoll
        } else if state.ws_failures < config.after_failures {
            Transport::WebSocket
        } else if state.last_opened == Some(Transport::LongPoll)
            && state.poll_failures < STICKY_POLL_FAILURES
        {
            // Fallen back and the link dropped (a server restart, a cut):
            // long-polling is what worked, and the probes find the way
            // back to WebSocket once it is up.
            Transport::LongPoll
        } else {
            match state.last_attempt {
                // Long-polling failed too (the server is down, not just the
                // upgrade): alternate, so whichever comes back first wins.
                Some((Transport::LongPoll, false)) => Transport::WebSocket,
                _ => Transport::LongPoll,
            }
        };
        state.current
    }

    /// The attempt of the live socket ended: before opening (`opened`
    /// false), or after a working link was lost.
    pub(super) fn attempt_ended(&mut self, opened: bool) {
        let state = &mut self.fallback;
        if !opened {
            match state.current {
                Transport::WebSocket => state.ws_failures = state.ws_failures.saturating_add(1),
                Transport::LongPoll => {
                    state.poll_failures = state.poll_failures.saturating_add(1);
                }
            }
        }
        state.last_attempt = Some((state.current, opened));
    }

    /// The live socket opened: note the transport, and while long-polling
    /// plan the first probe back to WebSocket.
    pub(super) fn transport_opened(&mut self, now: Millis) {
        let transport = self.fallback.current;
        self.fallback.last_attempt = Some((transport, true));
        let previous = self.fallback.last_opened.replace(transport);
        if previous != Some(transport) {
            match transport {
                Transport::LongPoll => self.stats.fallbacks += 1,
                Transport::WebSocket if previous.is_some() => self.stats.upgrades += 1,
                Transport::WebSocket => {}
            }
            if previous.is_some() || transport != Transport::WebSocket {
                self.log(TimelineEvent::Transport { transport });
            }
        }
        match transport {
            Transport::WebSocket => self.fallback.ws_failures = 0,
            Transport::LongPoll => self.fallback.poll_failures = 0,
        }
        match transport {
            Transport::WebSocket => {}
            Transport::LongPoll if !self.fallback.unsupported => {
                self.fallback.probe_failures = 0;
                self.fallback.probe_backoff.reset();
                self.schedule_upgrade_probe(now);
            }
            Transport::LongPoll => {}
        }
    }

    /// No WebSocket in this browser: long-poll from now on, if allowed.
    /// Returns false when the fallback is off (the caller fails).
    pub(super) fn websocket_unsupported(&mut self, now: Millis) -> bool {
        if !self.config.fallback.enabled {
            return false;
        }
        self.fallback.unsupported = true;
        if let Some(socket) = self.socket() {
            self.close_socket(socket, CLOSE_NORMAL, "unsupported");
        }
        self.drop_link_state();
        self.begin_attempt(now);
        true
    }

    fn schedule_upgrade_probe(&mut self, now: Millis) {
        let retry = self.fallback.probe_failures.saturating_add(1);
        let delay = self.fallback.probe_backoff.next_delay(retry);
        self.fallback.probe = Probe::Scheduled;
        self.set_timer(TimerKind::Probe, now.saturating_add(delay));
    }

    /// Forgets any probe (the link it would replace is gone).
    pub(super) fn stop_upgrade_probe(&mut self) {
        if let Probe::Running(probe) = self.fallback.probe {
            self.actions.push(Action::EndProbe { probe });
        }
        self.fallback.probe = Probe::Idle;
        self.cancel_timer(TimerKind::Probe);
    }

    /// The probe timer: start the planned probe, or give up on the running
    /// one and plan the next.
    pub(super) fn upgrade_probe_timer(&mut self, now: Millis) {
        if !matches!(self.phase, Phase::Open { .. }) || self.fallback.current != Transport::LongPoll
        {
            self.fallback.probe = Probe::Idle;
            return;
        }
        match self.fallback.probe {
            Probe::Idle => {}
            Probe::Scheduled => {
                let probe = SocketId(self.next_socket);
                self.next_socket += 1;
                self.fallback.probe = Probe::Running(probe);
                self.actions.push(Action::Probe { probe });
                self.set_timer(
                    TimerKind::Probe,
                    now.saturating_add(self.config.fallback.probe_timeout),
                );
            }
            Probe::Running(probe) => {
                self.actions.push(Action::EndProbe { probe });
                self.upgrade_probe_failed(now);
            }
        }
    }

    pub(super) fn on_probe_failed(&mut self, now: Millis, probe: SocketId) {
        if self.fallback.probe == Probe::Running(probe) {
            self.cancel_timer(TimerKind::Probe);
            self.upgrade_probe_failed(now);
        }
    }

    fn upgrade_probe_failed(&mut self, now: Millis) {
        self.fallback.probe_failures = self.fallback.probe_failures.saturating_add(1);
        self.schedule_upgrade_probe(now);
    }

    /// WebSocket works again: end the poll session and open a WebSocket at
    /// once. The outbox goes back to queued and is re-sent on the new link,
    /// and every stream resumes with `since`, as after any reconnect; the
    /// server's de-duplication and the streams' `seq` keep each message
    /// once.
    pub(super) fn on_probe_opened(&mut self, now: Millis, probe: SocketId) {
        if self.fallback.probe != Probe::Running(probe) {
            return;
        }
        self.fallback.probe = Probe::Idle;
        self.cancel_timer(TimerKind::Probe);
        let Phase::Open { socket, .. } = self.phase else {
            return;
        };
        self.log(TimelineEvent::Upgrading);
        self.close_socket(socket, CLOSE_NORMAL, "upgrading to WebSocket");
        self.drop_link_state();
        self.fallback.ws_failures = 0;
        self.fallback.last_attempt = None;
        self.begin_attempt(now);
    }
}
