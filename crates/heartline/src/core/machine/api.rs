//! The app-facing methods: sending, cancelling, the outbox export, standing
//! subscriptions and stream positions.

use serde_json::Value;

use super::{
    CancelError, Connection, Phase, RestoreError, SendError, SendOptions, Standing, validate,
};
use crate::core::outbox::{DUMP_VERSION, Dump, Entry};
use crate::core::{DeliveryState, MessageFailure, MessageId, Millis};

impl Connection {
    /// Adds (or replaces, keeping its place) a standing subscription under
    /// `key`: `value` is re-sent on every open, after the greeting and
    /// before the outbox. With `resume_stream`, a `since` field is set to
    /// the last sequence number delivered on that stream, and `epoch` to the
    /// epoch it belongs to when known. Sent at once when
    /// open.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// use serde_json::json;
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.add_standing("room:lobby", json!({"socketType":"join","room":"lobby"}), Some("lobby".into()))
    ///     .unwrap();
    /// assert!(conn.add_standing("bad", json!(3), None).is_err());
    /// ```
    pub fn add_standing(
        &mut self,
        key: impl Into<String>,
        value: Value,
        resume_stream: Option<String>,
    ) -> Result<(), SendError> {
        let object = validate(value)?;
        let len = Value::Object(object.clone()).to_string().len();
        // `since` and `epoch` add at most ~50 bytes; refuse now rather than
        // on every open.
        if len + 50 > self.config.max_frame_bytes {
            return Err(SendError::TooLarge {
                len,
                max: self.config.max_frame_bytes,
            });
        }
        let key = key.into();
        let entry = Standing {
            key: key.clone(),
            value: Value::Object(object),
            resume_stream,
        };
        let index = match self.standing.iter().position(|s| s.key == key) {
            Some(index) => {
                self.standing[index] = entry;
                index
            }
            None => {
                self.standing.push(entry);
                self.standing.len() - 1
            }
        };
        if let Some(socket) = self.open_socket() {
            let text = self.standing_frame(index);
            self.write(socket, text);
        }
        Ok(())
    }

    /// Stops re-sending the standing subscription `key`; returns its value.
    /// (Send the matching `leave`/`unsubscribe` yourself.)
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.add_standing("m", serde_json::json!({"socketType":"metrics.subscribe"}), None).unwrap();
    /// assert!(conn.remove_standing("m").is_some());
    /// assert!(conn.remove_standing("m").is_none());
    /// ```
    pub fn remove_standing(&mut self, key: &str) -> Option<Value> {
        let index = self.standing.iter().position(|s| s.key == key)?;
        Some(self.standing.remove(index).value)
    }

    /// The last sequence number delivered on `stream`.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_last_seq("lobby", Some(41));
    /// assert_eq!(conn.last_seq("lobby"), Some(41));
    /// ```
    pub fn last_seq(&self, stream: &str) -> Option<u64> {
        self.streams.last_seq(stream)
    }

    /// Sets where `stream` resumes (e.g. from history cached across a
    /// reload); `None` accepts whatever comes first.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_last_seq("lobby", None);
    /// assert_eq!(conn.last_seq("lobby"), None);
    /// ```
    pub fn set_last_seq(&mut self, stream: &str, seq: Option<u64>) {
        self.streams.set_last_seq(stream, seq);
    }

    /// The epoch known for `stream` (see the [wire contract](crate::core::contract)).
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// assert_eq!(conn.stream_epoch("lobby"), None);
    /// conn.set_stream_epoch("lobby", Some(9));
    /// assert_eq!(conn.stream_epoch("lobby"), Some(9));
    /// ```
    pub fn stream_epoch(&self, stream: &str) -> Option<u64> {
        self.streams.epoch(stream)
    }

    /// Sets the epoch `stream`'s position belongs to (with
    /// [`set_last_seq`](Self::set_last_seq), e.g. from history cached across
    /// a reload); `None` adopts the first epoch that comes.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_last_seq("lobby", Some(41));
    /// conn.set_stream_epoch("lobby", Some(3));
    /// assert_eq!(conn.stream_epoch("lobby"), Some(3));
    /// ```
    pub fn set_stream_epoch(&mut self, stream: &str, epoch: Option<u64>) {
        self.streams.set_epoch(stream, epoch);
    }

    /// Forgets a stream entirely (after leaving a room for good).
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_last_seq("lobby", Some(3));
    /// conn.forget_stream("lobby");
    /// assert_eq!(conn.last_seq("lobby"), None);
    /// ```
    pub fn forget_stream(&mut self, stream: &str) {
        self.streams.forget(stream);
    }

    /// Sends a reliable message: the core sets its `id` (overwriting any),
    /// keeps it until the server's `ack`, writes it now when open and
    /// otherwise queues it. Also accepted while idle, reconnecting, offline
    /// or failed; refused after `Stop`.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendError, SendOptions};
    /// use serde_json::json;
    /// let mut conn = Connection::new(Config { outbox_limit: 1, ..Config::default() }, 1);
    /// let id = conn.send(0, json!({"socketType":"chat.send","text":"hi"}), SendOptions::default()).unwrap();
    /// assert!(!id.as_str().is_empty());
    /// let full = conn.send(0, json!({"socketType":"chat.send"}), SendOptions::default());
    /// assert_eq!(full, Err(SendError::QueueFull { limit: 1 }));
    /// ```
    pub fn send(
        &mut self,
        now: Millis,
        value: Value,
        options: SendOptions,
    ) -> Result<MessageId, SendError> {
        self.tick(now);
        if self.phase == Phase::Closed {
            return Err(SendError::Closed);
        }
        let mut object = validate(value)?;
        if self.outbox.len() >= self.config.outbox_limit {
            return Err(SendError::QueueFull {
                limit: self.config.outbox_limit,
            });
        }
        let id = self.new_message_id();
        object.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
        let frame = Value::Object(object).to_string();
        let max = self.max_out_frame();
        if frame.len() > max {
            return Err(SendError::TooLarge {
                len: frame.len(),
                max,
            });
        }
        let ttl = options.ttl.or(self.config.default_ttl);
        self.outbox.push(Entry {
            id: id.clone(),
            frame,
            expires_at: ttl.map(|ttl| now.saturating_add(ttl)),
            sent_on: None,
        });
        self.message_state(id.clone(), DeliveryState::Queued);
        self.flush(now);
        self.arm_ttl();
        Ok(id)
    }

    /// Sends a volatile message (typing, cursor) at the time of the last
    /// event: [`send_volatile_at`](Self::send_volatile_at) with the clock the
    /// core last saw. Prefer `send_volatile_at` when the time is at hand, so
    /// pacing counts the tokens refilled since.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendError};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let typing = serde_json::json!({"socketType":"typing","room":"lobby"});
    /// assert_eq!(conn.send_volatile(typing), Err(SendError::NotOpen));
    /// ```
    pub fn send_volatile(&mut self, value: Value) -> Result<(), SendError> {
        let now = self.now;
        self.send_volatile_at(now, value)
    }

    /// Sends a volatile message (typing, cursor): written only when open,
    /// not congested and under the server's pace, never queued, never
    /// re-sent.
    ///
    /// ```
    /// use heartline::core::{Action, Config, Connection, Event, FrameData, SendError};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let typing = serde_json::json!({"socketType":"typing","room":"lobby"});
    /// assert_eq!(conn.send_volatile_at(0, typing.clone()), Err(SendError::NotOpen));
    ///
    /// let Some(Action::Open { socket, .. }) = conn.handle(0, Event::Start).first().cloned() else { panic!() };
    /// conn.handle(5, Event::Opened { socket });
    /// // The server allows 2 frames/s with a burst of 2: the client keeps to 1 in a burst.
    /// let limits = r#"{"socketType":"limits","rate":2,"burst":2,"max_frame_bytes":65536}"#;
    /// conn.handle(6, Event::Frame { socket, data: FrameData::Text(limits.into()) });
    /// assert_eq!(conn.send_volatile_at(7, typing.clone()), Ok(()));
    /// assert!(matches!(conn.send_volatile_at(8, typing), Err(SendError::RateLimited { .. })));
    /// ```
    pub fn send_volatile_at(&mut self, now: Millis, value: Value) -> Result<(), SendError> {
        self.tick(now);
        let object = validate(value)?;
        let text = Value::Object(object).to_string();
        let max = self.max_out_frame();
        if text.len() > max {
            return Err(SendError::TooLarge {
                len: text.len(),
                max,
            });
        }
        let Some(socket) = self.open_socket() else {
            return Err(SendError::NotOpen);
        };
        if self.buffered > self.config.high_water_mark {
            return Err(SendError::Congested);
        }
        if let Some(at) = self.next_write_at(now) {
            return Err(SendError::RateLimited {
                retry_in: at.saturating_sub(now).max(1),
            });
        }
        self.write(socket, text);
        Ok(())
    }

    /// Cancels a queued reliable message; it fails with
    /// [`MessageFailure::Cancelled`]. One already written on the live socket
    /// cannot be called back.
    ///
    /// ```
    /// use heartline::core::{CancelError, Config, Connection, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let id = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// assert_eq!(conn.cancel(&id), Ok(()));
    /// assert_eq!(conn.cancel(&id), Err(CancelError::NotFound));
    /// ```
    pub fn cancel(&mut self, id: &MessageId) -> Result<(), CancelError> {
        let live = self.open_socket();
        let entry = self.outbox.get(id).ok_or(CancelError::NotFound)?;
        if live.is_some() && entry.sent_on == live {
            return Err(CancelError::InFlight);
        }
        if let Some(entry) = self.outbox.remove(id) {
            self.fail_message(entry.id, MessageFailure::Cancelled);
        }
        self.check_drained();
        self.arm_ttl();
        Ok(())
    }

    /// Where a reliable message is while it is in the outbox (`Queued` or
    /// `Sent`); `None` once it left.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, DeliveryState, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let id = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// assert_eq!(conn.delivery_state(&id), Some(DeliveryState::Queued));
    /// ```
    pub fn delivery_state(&self, id: &MessageId) -> Option<DeliveryState> {
        let entry = self.outbox.get(id)?;
        let live = self.open_socket();
        Some(if live.is_some() && entry.sent_on == live {
            DeliveryState::Sent
        } else {
            DeliveryState::Queued
        })
    }

    /// Ids in the outbox, in send order.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let id = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// assert_eq!(conn.outbox_ids(), vec![id]);
    /// ```
    pub fn outbox_ids(&self) -> Vec<MessageId> {
        self.outbox.iter().map(|e| e.id.clone()).collect()
    }

    /// The outbox as JSON (every unacked message, in order), for
    /// localStorage.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendOptions};
    /// let mut a = Connection::new(Config::default(), 1);
    /// let id = a.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// let saved = a.export_outbox();
    ///
    /// let mut b = Connection::new(Config::default(), 2); // after a reload
    /// assert_eq!(b.restore_outbox(10, &saved), Ok(vec![id.clone()]));
    /// assert_eq!(b.outbox_ids(), vec![id]);
    /// ```
    pub fn export_outbox(&self) -> String {
        // A dump of strings and integers always serializes.
        serde_json::to_string(&self.outbox.export())
            .unwrap_or_else(|_| format!(r#"{{"version":{DUMP_VERSION},"messages":[]}}"#))
    }

    /// [`export_outbox`](Self::export_outbox) limited to the messages whose
    /// id `keep` accepts: a tab leading a shared connection saves only the
    /// messages it answers for, the other tabs save their own.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let mine = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// let other = conn.send(0, serde_json::json!({"socketType":"y"}), SendOptions::default()).unwrap();
    /// let saved = conn.export_outbox_where(|id| *id == mine);
    /// assert!(saved.contains(mine.as_str()) && !saved.contains(other.as_str()));
    /// ```
    pub fn export_outbox_where(&self, keep: impl Fn(&MessageId) -> bool) -> String {
        serde_json::to_string(&self.outbox.export_where(keep))
            .unwrap_or_else(|_| format!(r#"{{"version":{DUMP_VERSION},"messages":[]}}"#))
    }

    /// Takes a message out of the outbox because it ended elsewhere (a tab
    /// that shares its connection forwarded it to the leading tab, whose
    /// connection reported `state`), without writing anything: it reports
    /// `state` as this connection's own would. `false` when it is not here.
    ///
    /// ```
    /// use heartline::core::{Action, Config, Connection, DeliveryState, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let id = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// assert!(conn.settle_elsewhere(&id, DeliveryState::Acked));
    /// assert!(conn.outbox_ids().is_empty());
    /// assert!(conn.drain_actions().contains(&Action::MessageState { id: id.clone(), state: DeliveryState::Acked }));
    /// assert!(!conn.settle_elsewhere(&id, DeliveryState::Acked));
    /// ```
    pub fn settle_elsewhere(&mut self, id: &MessageId, state: DeliveryState) -> bool {
        if !state.is_final() {
            return false;
        }
        if self.outbox.remove(id).is_none() {
            return false;
        }
        match &state {
            DeliveryState::Acked => self.stats.acked += 1,
            DeliveryState::Failed(_) => self.stats.failed += 1,
            DeliveryState::Queued | DeliveryState::Sent => {}
        }
        self.message_state(id.clone(), state);
        self.check_drained();
        self.arm_ttl();
        true
    }

    /// The largest frame this connection writes: the configured limit, or
    /// the server's announced one when smaller.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let conn = Connection::new(Config { max_frame_bytes: 1_000, ..Config::default() }, 1);
    /// assert_eq!(conn.max_frame_bytes(), 1_000);
    /// ```
    pub fn max_frame_bytes(&self) -> usize {
        self.max_out_frame()
    }

    /// Restores an exported outbox, appending the messages not already in
    /// it (same id = same message), keeping their ids so the server's
    /// de-duplication makes them count once. Expired ones fail at once. All
    /// or nothing: on error nothing is restored.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let dump = r#"{"version":1,"messages":[{"id":"a-1","frame":"{\"socketType\":\"x\",\"id\":\"a-1\"}"}]}"#;
    /// assert_eq!(conn.restore_outbox(0, dump).unwrap().len(), 1);
    /// assert_eq!(conn.restore_outbox(0, dump).unwrap().len(), 0); // already there
    /// ```
    pub fn restore_outbox(
        &mut self,
        now: Millis,
        json: &str,
    ) -> Result<Vec<MessageId>, RestoreError> {
        self.tick(now);
        let dump: Dump =
            serde_json::from_str(json).map_err(|e| RestoreError::Json(e.to_string()))?;
        if dump.version != DUMP_VERSION {
            return Err(RestoreError::Version(dump.version));
        }
        let mut fresh: Vec<Entry> = Vec::new();
        for message in dump.messages {
            if self.outbox.contains(&message.id) || fresh.iter().any(|e| e.id == message.id) {
                continue;
            }
            let valid = serde_json::from_str::<Value>(&message.frame)
                .ok()
                .is_some_and(|v| validate(v).is_ok());
            if !valid || message.frame.len() > self.config.max_frame_bytes {
                return Err(RestoreError::InvalidMessage(message.id));
            }
            fresh.push(Entry {
                id: message.id,
                frame: message.frame,
                expires_at: message.expires_at,
                sent_on: None,
            });
        }
        if self.outbox.len() + fresh.len() > self.config.outbox_limit {
            return Err(RestoreError::QueueFull {
                needed: fresh.len(),
                limit: self.config.outbox_limit,
            });
        }
        let ids: Vec<MessageId> = fresh.iter().map(|e| e.id.clone()).collect();
        for entry in fresh {
            self.message_state(entry.id.clone(), DeliveryState::Queued);
            self.outbox.push(entry);
        }
        self.expire(now);
        self.note_backlog();
        self.flush(now);
        Ok(ids)
    }
}
