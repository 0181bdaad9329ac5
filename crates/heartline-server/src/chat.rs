//! Rooms in memory: who is in each (presence) and fan-out of chat messages,
//! typing and presence to the members' send queues.
//!
//! Each room delivers its chat stream in `seq` order, each message once.
//! With SQLite the store's one thread publishes in `seq` order and runs each
//! join's hand-off between two publishes, so messages arrive in order. With
//! PostgreSQL (several writers, maybe other processes through the bus) they
//! may not: [`Hub::publish`] buffers a message that arrives ahead of a gap
//! and says so ([`Offer::Gap`]) so the caller fills the gap from the
//! database, and it drops one already delivered. A joiner whose history
//! reaches past what the room delivered skips those messages when they come;
//! one whose history stops short of it gets what the room delivered during
//! the read right after its history (see `catch_up`), or, if that does not
//! cover the difference, is told to read again ([`JoinOutcome::Stale`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use axum::extract::ws::Utf8Bytes;
use heartline_protocol::{
    ChatMessage, MAX_PRESENCE_NAMES, Presence, RoomSummary, ServerMessage, Typing,
};

use crate::peer::{ConnId, Outbound, Peer};
use crate::store::{JoinOutcome, UserId};

mod catch_up;
use catch_up::CatchUp;

/// A server process's id in a cluster (see [`crate::bus`]).
pub type NodeId = u64;

/// Where this process's presence changes go (the bus, in a cluster): the
/// room, its local names (tabs per name) and distinct local users.
pub type PresenceSink = Box<dyn Fn(&str, BTreeMap<String, u32>, u32) + Send + Sync>;

/// Most messages a room buffers behind a gap; beyond, the fill from the
/// database brings them (it reads everything after the gap anyway).
pub const MAX_PENDING: usize = 4_096;

/// Presence of a room is broadcast at most once per this window (the
/// shortest; see [`presence_window`]).
pub const PRESENCE_WINDOW: Duration = Duration::from_millis(250);

/// Longest presence window, reached in rooms of 5,000 members.
pub const PRESENCE_WINDOW_MAX: Duration = Duration::from_secs(5);

/// The presence window of a room of `members`: a presence broadcast costs
/// one frame per member, so the window grows with the room (1 ms per
/// member, within [`PRESENCE_WINDOW`]..=[`PRESENCE_WINDOW_MAX`]) and a
/// room's presence traffic stays under about 1,000 frames per second, even
/// in a join storm. A joiner still gets the list at once.
pub fn presence_window(members: usize) -> Duration {
    let per_member = Duration::from_millis(u64::try_from(members).unwrap_or(u64::MAX));
    per_member.clamp(PRESENCE_WINDOW, PRESENCE_WINDOW_MAX)
}

/// The rooms and their members.
pub struct Hub {
    inner: Mutex<BTreeMap<String, Room>>,
    presence: Mutex<HashMap<String, Throttle>>,
    max_rooms: usize,
    /// Told of each change of a room's local presence, once per window.
    presence_sink: std::sync::OnceLock<PresenceSink>,
    /// Signalled on every change the room directory shows (rooms created
    /// or removed, members, `last_seq`). A stored permit means "changed
    /// since you last looked", so no change is missed.
    changed: Arc<Notify>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("rooms", &self.room_count())
            .field("max_rooms", &self.max_rooms)
            .finish_non_exhaustive()
    }
}

/// Per-room presence throttle: leading edge now, trailing edge once.
#[derive(Debug)]
struct Throttle {
    last_sent: Instant,
    pending: bool,
}

#[derive(Debug)]
struct Room {
    members: HashMap<ConnId, Member>,
    /// How many members show each display name: presence, kept as members
    /// come and go so a presence frame costs its names, not the room.
    names: BTreeMap<String, u32>,
    /// How many members (tabs) each user has: the directory's `online`.
    users: HashMap<UserId, u32>,
    /// A configured room: never expires.
    permanent: bool,
    /// Last join, leave or message.
    last_active: Instant,
    /// Stream epoch; 0 until the store reported it (not yet listed).
    epoch: u64,
    /// Highest `seq` known to be stored.
    last_seq: u64,
    /// Highest `seq` fanned out to the members, in order.
    delivered: u64,
    /// Messages that arrived ahead of a gap, by `seq`.
    pending: BTreeMap<u64, ChatMessage>,
    /// A fill of the gap from the database is running.
    filling: bool,
    /// The members other processes have here, by process.
    remote: HashMap<NodeId, RemotePresence>,
    /// Local members came or went since the presence sink was last told.
    local_changed: bool,
    /// Joins whose history is being read, by connection: what the room
    /// delivers meanwhile (see [`Hub::begin_join`]).
    catching_up: HashMap<ConnId, CatchUp>,
}

/// Another process's members of a room, as its last presence said.
#[derive(Debug)]
struct RemotePresence {
    names: BTreeMap<String, u32>,
    users: u32,
    /// When that process was last heard from.
    seen: Instant,
}

impl Room {
    fn new(permanent: bool) -> Self {
        Room {
            members: HashMap::new(),
            names: BTreeMap::new(),
            users: HashMap::new(),
            permanent,
            last_active: Instant::now(),
            epoch: 0,
            last_seq: 0,
            delivered: 0,
            pending: BTreeMap::new(),
            filling: false,
            remote: HashMap::new(),
            local_changed: false,
            catching_up: HashMap::new(),
        }
    }

    /// Adds (or replaces) the member of connection `conn`.
    fn add_member(&mut self, conn: ConnId, member: Member) {
        *self.names.entry(member.name.clone()).or_default() += 1;
        *self.users.entry(member.user).or_default() += 1;
        self.local_changed = true;
        if let Some(old) = self.members.insert(conn, member) {
            self.forget(&old);
        }
    }

    /// Removes connection `conn`; returns whether it was a member.
    fn remove_member(&mut self, conn: ConnId) -> bool {
        self.catching_up.remove(&conn);
        match self.members.remove(&conn) {
            Some(old) => {
                self.forget(&old);
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, member: &Member) {
        self.local_changed = true;
        if let Some(n) = self.names.get_mut(&member.name) {
            *n -= 1;
            if *n == 0 {
                self.names.remove(&member.name);
            }
        }
        if let Some(n) = self.users.get_mut(&member.user) {
            *n -= 1;
            if *n == 0 {
                self.users.remove(&member.user);
            }
        }
    }

    /// The room's `presence`: the first [`MAX_PRESENCE_NAMES`] names in
    /// order, and how many there are.
    fn presence(&self, room: &str) -> Presence {
        if !self.remote.is_empty() {
            // The union over the processes.
            let mut names: BTreeSet<&str> = self.names.keys().map(String::as_str).collect();
            for r in self.remote.values() {
                names.extend(r.names.keys().map(String::as_str));
            }
            return Presence {
                room: room.to_string(),
                users: names
                    .iter()
                    .take(MAX_PRESENCE_NAMES)
                    .map(|n| n.to_string())
                    .collect(),
                count: u32::try_from(names.len()).unwrap_or(u32::MAX),
            };
        }
        Presence {
            room: room.to_string(),
            users: self
                .names
                .keys()
                .take(MAX_PRESENCE_NAMES)
                .cloned()
                .collect(),
            count: u32::try_from(self.names.len()).unwrap_or(u32::MAX),
        }
    }

    /// Queues `text` for every member except `skip`; returns how many got it.
    fn fan_out(&self, skip: Option<ConnId>, text: &Utf8Bytes) -> usize {
        self.members
            .values()
            .filter(|m| Some(m.peer.id) != skip)
            .filter(|m| m.peer.push(Outbound::Text(text.clone())))
            .count()
    }

    /// The store says the stream is at (`epoch`, `last_seq`). A new epoch
    /// (the room was created again) starts over; an empty room has nobody
    /// to deliver the missed messages to, so it skips ahead.
    fn observe(&mut self, epoch: u64, last_seq: u64) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.last_seq = last_seq;
            self.delivered = if self.members.is_empty() { last_seq } else { 0 };
            self.pending.clear();
            // Their histories were of the old stream.
            for m in self.members.values_mut() {
                m.history_to = 0;
            }
        } else {
            self.last_seq = self.last_seq.max(last_seq);
            if self.members.is_empty() {
                self.delivered = self.delivered.max(last_seq);
            }
        }
        // Skipping ahead may have reached what waits behind the gap.
        self.drain_pending();
    }

    /// Delivers the buffered messages that are next in order, and drops
    /// those delivered already.
    fn drain_pending(&mut self) {
        let delivered = self.delivered;
        self.pending.retain(|seq, _| *seq > delivered);
        while let Some(next) = self.pending.remove(&(self.delivered + 1)) {
            let text = frame(&ServerMessage::ChatMessage(next.clone()));
            self.deliver(&next, &text);
        }
    }

    /// Distinct users here plus those other processes report (a user
    /// with tabs on two processes counts twice).
    fn online(&self) -> u32 {
        let local = u32::try_from(self.users.len()).unwrap_or(u32::MAX);
        self.remote
            .values()
            .fold(local, |n, r| n.saturating_add(r.users))
    }

    /// Nobody is in the room, here or elsewhere.
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.remote.is_empty()
    }

    /// Fans out `msg`, the next in order, to the members whose history does
    /// not have it already.
    fn deliver(&mut self, msg: &ChatMessage, text: &Utf8Bytes) -> usize {
        self.delivered = msg.seq;
        self.last_seq = self.last_seq.max(msg.seq);
        for joiner in self.catching_up.values_mut() {
            joiner.record(msg.epoch, msg.seq, text);
        }
        self.members
            .values()
            .filter(|m| m.history_to < msg.seq)
            .filter(|m| m.peer.push(Outbound::Text(text.clone())))
            .count()
    }

    /// Whether messages known to be stored have not been delivered yet.
    fn lags(&self) -> bool {
        self.delivered < self.last_seq || !self.pending.is_empty()
    }
}

/// What [`Hub::publish`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Fanned out, with any buffered messages it unblocked: how many
    /// queues got the message.
    Delivered(usize),
    /// Delivered before (from the bus and a fill, say): dropped.
    Old,
    /// Buffered behind a gap: fill the room's messages after `after` from
    /// the store and publish them, then call [`Hub::fill_done`].
    Gap {
        /// The last `seq` delivered in order.
        after: u64,
    },
    /// Buffered behind a gap that a running fill will close.
    Buffered,
    /// This process has no such room.
    NoRoom,
}

#[derive(Debug)]
struct Member {
    peer: Peer,
    user: UserId,
    name: String,
    /// The history sent at join reached this `seq`.
    history_to: u64,
}

/// A room could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many rooms (at most {0})")]
pub struct TooManyRooms(pub usize);

fn frame(msg: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

impl Hub {
    /// An empty hub allowing `max_rooms` rooms.
    pub fn new(max_rooms: usize) -> Self {
        Hub {
            inner: Mutex::new(BTreeMap::new()),
            presence: Mutex::new(HashMap::new()),
            max_rooms,
            presence_sink: std::sync::OnceLock::new(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Signalled whenever the room directory changed (see
    /// [`Hub::directory`]); a change while nobody waits is remembered.
    pub fn changes(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    fn touch_directory(&self) {
        self.changed.notify_one();
    }

    /// The room directory: every room whose stream is known, sorted by
    /// name, with its position and how many distinct users are joined.
    pub fn directory(&self) -> Vec<RoomSummary> {
        self.rooms()
            .iter()
            .filter(|(_, r)| r.epoch != 0)
            .map(|(name, r)| RoomSummary {
                name: name.clone(),
                epoch: r.epoch,
                last_seq: r.last_seq,
                online: r.online(),
            })
            .collect()
    }

    /// Records where a room's stream is, as the store reports it (at start,
    /// and when re-syncing). Ignored for a room that does not exist.
    /// Returns `Some(after)` when the room's members miss stored messages
    /// after `after`: the caller fills them from the store, as for
    /// [`Offer::Gap`].
    pub fn set_stream(&self, room: &str, epoch: u64, last_seq: u64) -> Option<u64> {
        let lag = self.rooms().get_mut(room).and_then(|r| {
            r.observe(epoch, last_seq);
            Self::start_fill(r)
        });
        self.touch_directory();
        lag
    }

    /// Marks a fill running if `r` lags and none is; returns where it starts.
    fn start_fill(r: &mut Room) -> Option<u64> {
        if r.lags() && !r.filling {
            r.filling = true;
            Some(r.delivered)
        } else {
            None
        }
    }

    /// A fill started by [`Offer::Gap`] (or [`Hub::set_stream`]) published
    /// what the store had. Returns `Some(after)` if the room still lags
    /// (fill again from there), else ends the fill.
    pub fn fill_done(&self, room: &str) -> Option<u64> {
        let mut rooms = self.rooms();
        let r = rooms.get_mut(room)?;
        r.filling = false;
        Self::start_fill(r)
    }

    fn rooms(&self) -> MutexGuard<'_, BTreeMap<String, Room>> {
        // A panic elsewhere must not take every room down with it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Room names, sorted.
    pub fn room_names(&self) -> Vec<String> {
        self.rooms().keys().cloned().collect()
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    /// Whether a room exists.
    pub fn has_room(&self, room: &str) -> bool {
        self.rooms().contains_key(room)
    }

    /// Adds a stored room, ignoring the limit. It expires once empty and
    /// idle (see [`Hub::expire_idle`]).
    pub fn add_existing_room(&self, room: &str) {
        self.rooms()
            .entry(room.to_string())
            .or_insert_with(|| Room::new(false));
    }

    /// Adds a configured room: ignores the limit, never expires.
    pub fn add_permanent_room(&self, room: &str) {
        self.rooms()
            .entry(room.to_string())
            .or_insert_with(|| Room::new(true))
            .permanent = true;
    }

    /// Creates a room unless it exists; refuses past the room limit.
    /// Returns whether it was created. Either way the room counts as
    /// active now.
    pub fn create_room(&self, room: &str) -> Result<bool, TooManyRooms> {
        let mut rooms = self.rooms();
        if let Some(r) = rooms.get_mut(room) {
            r.last_active = Instant::now();
            return Ok(false);
        }
        if rooms.len() >= self.max_rooms {
            return Err(TooManyRooms(self.max_rooms));
        }
        rooms.insert(room.to_string(), Room::new(false));
        drop(rooms);
        self.touch_directory();
        Ok(true)
    }

    /// Removes every room that is not permanent, has no member and saw no
    /// activity for `idle_for`, and calls `expired` with their names while
    /// still holding the rooms' lock: what `expired` queues (the store's
    /// deletion) is ordered before any later creation of the same name.
    /// Returns the names.
    pub fn expire_idle(&self, idle_for: Duration, expired: impl FnOnce(&[String])) -> Vec<String> {
        let now = Instant::now();
        let mut rooms = self.rooms();
        let names: Vec<String> = rooms
            .iter()
            .filter(|(_, r)| {
                !r.permanent && r.is_empty() && now.duration_since(r.last_active) >= idle_for
            })
            .map(|(name, _)| name.clone())
            .collect();
        if names.is_empty() {
            return names;
        }
        for name in &names {
            rooms.remove(name);
        }
        expired(&names);
        drop(rooms);
        let mut throttles = self.presence.lock().unwrap_or_else(PoisonError::into_inner);
        for name in &names {
            throttles.remove(name);
        }
        drop(throttles);
        self.touch_directory();
        names
    }

    /// Removes a room that has no members (undoes a failed creation).
    pub fn remove_empty_room(&self, room: &str) {
        let mut rooms = self.rooms();
        if rooms.get(room).is_some_and(|r| r.members.is_empty()) {
            rooms.remove(room);
            drop(rooms);
            self.touch_directory();
        }
    }

    /// Starts recording what `room` delivers for connection `conn`, whose
    /// join is about to read its history: [`Hub::join`] then appends what
    /// the history missed instead of reading again. Ends with that join,
    /// or when `conn` leaves the room.
    pub fn begin_join(&self, room: &str, conn: ConnId) {
        if let Some(r) = self.rooms().get_mut(room) {
            r.catching_up.insert(conn, CatchUp::default());
        }
    }

    /// Queues `frames` (the history, read at stream position `stream`:
    /// epoch and last `seq`) for `peer`, then makes it (user `user`, shown
    /// as `name`) a member of `room`, in one step, so it gets every later
    /// message once. `None` for `stream` joins without history. Messages
    /// the room delivered after the history's position since
    /// [`Hub::begin_join`] follow `frames`.
    ///
    /// [`JoinOutcome::Stale`] if the history stops short of what the room
    /// has delivered already and the catch-up does not cover the difference
    /// (read it again); [`JoinOutcome::Failed`] if the room does not exist
    /// or the peer's queue is full (the peer is then being closed).
    pub fn join(
        &self,
        room: &str,
        peer: &Peer,
        (user, name): (UserId, &str),
        stream: Option<(u64, u64)>,
        mut frames: Vec<Utf8Bytes>,
    ) -> JoinOutcome {
        let mut rooms = self.rooms();
        let Some(r) = rooms.get_mut(room) else {
            return JoinOutcome::Failed;
        };
        let catch_up = r.catching_up.remove(&peer.id);
        let history_to = match stream {
            // Also in an empty room: what it delivered (to nobody) will not
            // come again, so a history short of it would miss it.
            Some((epoch, last_seq)) if epoch == r.epoch && last_seq < r.delivered => {
                match catch_up.and_then(|c| c.frames_after(epoch, last_seq, r.delivered)) {
                    Some(missed) => {
                        frames.extend(missed);
                        r.delivered
                    }
                    None => return JoinOutcome::Stale,
                }
            }
            Some((epoch, last_seq)) => {
                r.observe(epoch, last_seq);
                last_seq
            }
            None => r.delivered,
        };
        if !peer.push(Outbound::Batch(frames)) {
            return JoinOutcome::Failed;
        }
        r.last_active = Instant::now();
        r.add_member(
            peer.id,
            Member {
                peer: peer.clone(),
                user,
                name: name.to_string(),
                history_to,
            },
        );
        drop(rooms);
        self.touch_directory();
        JoinOutcome::Joined
    }

    /// Gives up on a gap the store cannot fill: delivers what waits behind
    /// it, in order, and moves on to the newest `seq` known.
    pub fn skip_gap(&self, room: &str) {
        let mut rooms = self.rooms();
        let Some(r) = rooms.get_mut(room) else {
            return;
        };
        for (_, msg) in std::mem::take(&mut r.pending) {
            let text = frame(&ServerMessage::ChatMessage(msg.clone()));
            r.deliver(&msg, &text);
        }
        r.delivered = r.delivered.max(r.last_seq);
    }

    /// Whether `room` has stored messages its members have not had yet.
    pub fn lags(&self, room: &str) -> bool {
        self.rooms().get(room).is_some_and(Room::lags)
    }

    /// Whether `room` has stored messages its members have not had yet,
    /// with no fill running: then marks a fill running and returns where
    /// it starts (after a join whose history ran ahead, the messages in
    /// between normally arrive by themselves; this is the check after).
    pub fn lagging(&self, room: &str) -> Option<u64> {
        self.rooms().get_mut(room).and_then(Self::start_fill)
    }

    /// Removes a connection from a room. Returns whether it was a member.
    pub fn leave(&self, room: &str, conn: ConnId) -> bool {
        let left = self.rooms().get_mut(room).is_some_and(|r| {
            r.last_active = Instant::now();
            r.remove_member(conn)
        });
        if left {
            self.touch_directory();
        }
        left
    }

    /// Removes a connection from every room; returns the rooms it was in.
    pub fn leave_all(&self, conn: ConnId) -> Vec<String> {
        let mut left = Vec::new();
        for (name, room) in self.rooms().iter_mut() {
            if room.remove_member(conn) {
                room.last_active = Instant::now();
                left.push(name.clone());
            }
        }
        if !left.is_empty() {
            self.touch_directory();
        }
        left
    }

    /// Whether a connection is a member of a room.
    pub fn is_member(&self, room: &str, conn: ConnId) -> bool {
        self.rooms()
            .get(room)
            .is_some_and(|r| r.members.contains_key(&conn))
    }

    /// A room's `presence` (see [`MAX_PRESENCE_NAMES`]): names sorted and
    /// without repeats (one person may have several tabs open). An unknown
    /// room has nobody.
    pub fn presence(&self, room: &str) -> Presence {
        self.rooms().get(room).map_or_else(
            || Presence {
                room: room.to_string(),
                users: Vec::new(),
                count: 0,
            },
            |r| r.presence(room),
        )
    }

    /// How many connections are members of a room.
    fn member_count(&self, room: &str) -> usize {
        self.rooms().get(room).map_or(0, |r| r.members.len())
    }

    /// Presence of `room` changed: broadcast it now, or, if it was broadcast
    /// less than its [`presence_window`] ago, once at the end of the window
    /// (with the list as it is then). A `joiner` gets it at once either way,
    /// so a `join` is always answered by a `presence`. Needs a Tokio runtime.
    pub fn presence_changed(self: &Arc<Self>, room: &str, joiner: Option<&Peer>) {
        let now = Instant::now();
        let window = presence_window(self.member_count(room));
        let send_now = {
            let mut throttles = self.presence.lock().unwrap_or_else(PoisonError::into_inner);
            match throttles.get_mut(room) {
                None => {
                    throttles.insert(
                        room.to_string(),
                        Throttle {
                            last_sent: now,
                            pending: false,
                        },
                    );
                    true
                }
                Some(t) if t.pending => false,
                Some(t) if now.duration_since(t.last_sent) >= window => {
                    t.last_sent = now;
                    true
                }
                Some(t) => {
                    t.pending = true;
                    let at = t.last_sent + window;
                    let (hub, room) = (self.clone(), room.to_string());
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        if let Some(t) = hub
                            .presence
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_mut(&room)
                        {
                            t.pending = false;
                            t.last_sent = Instant::now();
                        }
                        hub.broadcast_presence(&room);
                    });
                    false
                }
            }
        };
        if send_now {
            self.broadcast_presence(room);
        } else if let Some(joiner) = joiner {
            joiner.push(Outbound::Text(frame(&ServerMessage::Presence(
                self.presence(room),
            ))));
        }
    }

    /// Sends the room's current presence to all its members (serialized
    /// once, under the rooms' lock so it is the list of the members it
    /// goes to).
    ///
    /// If the local members changed since, the presence sink (see
    /// [`Hub::set_presence_sink`]) is told too.
    pub fn broadcast_presence(&self, room: &str) -> usize {
        let mut rooms = self.rooms();
        let Some(r) = rooms.get_mut(room) else {
            return 0;
        };
        let sent = r.fan_out(None, &frame(&ServerMessage::Presence(r.presence(room))));
        let changed = std::mem::take(&mut r.local_changed).then(|| {
            (
                r.names.clone(),
                u32::try_from(r.users.len()).unwrap_or(u32::MAX),
            )
        });
        drop(rooms);
        if let (Some((names, users)), Some(sink)) = (changed, self.presence_sink.get()) {
            sink(room, names, users);
        }
        sent
    }

    /// Where local presence changes go (set once: the cluster's bus).
    pub fn set_presence_sink(&self, sink: PresenceSink) {
        let _ = self.presence_sink.set(sink);
    }

    /// Every room's local presence (names, distinct users), for rooms with
    /// local members or whose members just left: what a cluster heartbeat
    /// re-sends.
    pub fn local_presence(&self) -> Vec<(String, BTreeMap<String, u32>, u32)> {
        self.rooms()
            .iter_mut()
            .filter(|(_, r)| !r.members.is_empty() || r.local_changed)
            .map(|(name, r)| {
                r.local_changed = false;
                let users = u32::try_from(r.users.len()).unwrap_or(u32::MAX);
                (name.clone(), r.names.clone(), users)
            })
            .collect()
    }

    /// Process `node` says who it has in `room` (empty: nobody). Creates
    /// the room here if needed (it was made on that process). Returns
    /// whether the room's presence changed.
    pub fn set_remote_presence(
        &self,
        node: NodeId,
        room: &str,
        names: BTreeMap<String, u32>,
        users: u32,
    ) -> bool {
        let mut rooms = self.rooms();
        let r = rooms
            .entry(room.to_string())
            .or_insert_with(|| Room::new(false));
        r.last_active = Instant::now();
        let changed = if names.is_empty() {
            r.remote.remove(&node).is_some()
        } else {
            let before = r.remote.insert(
                node,
                RemotePresence {
                    names,
                    users,
                    seen: Instant::now(),
                },
            );
            let now = &r.remote[&node];
            before.is_none_or(|b| b.names != now.names || b.users != now.users)
        };
        drop(rooms);
        if changed {
            self.touch_directory();
        }
        changed
    }

    /// Process `node` is alive: its entries are fresh.
    pub fn remote_alive(&self, node: NodeId) {
        let now = Instant::now();
        for r in self.rooms().values_mut() {
            if let Some(p) = r.remote.get_mut(&node) {
                p.seen = now;
            }
        }
    }

    /// Forgets what `node` reported (it said it is gone, or, with `None`,
    /// every process not heard from for `max_age`). Returns the rooms
    /// whose presence changed.
    pub fn forget_remote(&self, node: Option<NodeId>, max_age: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut changed = Vec::new();
        for (name, r) in self.rooms().iter_mut() {
            let before = r.remote.len();
            r.remote.retain(|n, p| match node {
                Some(gone) => *n != gone,
                None => now.duration_since(p.seen) < max_age,
            });
            if r.remote.len() != before {
                r.last_active = now;
                changed.push(name.clone());
            }
        }
        if !changed.is_empty() {
            self.touch_directory();
        }
        changed
    }

    /// Relays "`from` (on another process) is typing" to the members here.
    pub fn typing_elsewhere(&self, room: &str, from: &str) -> usize {
        let text = frame(&ServerMessage::Typing(Typing {
            room: room.to_string(),
            from: from.to_string(),
        }));
        self.fan_out(room, None, &text)
    }

    /// Sends a stored chat message to the members of its room, in `seq`
    /// order: see [`Offer`].
    pub fn publish(&self, msg: &ChatMessage) -> Offer {
        let text = frame(&ServerMessage::ChatMessage(msg.clone()));
        let offer = self.offer(msg, &text);
        if matches!(offer, Offer::Delivered(_)) {
            self.touch_directory();
        }
        offer
    }

    fn offer(&self, msg: &ChatMessage, text: &Utf8Bytes) -> Offer {
        let mut rooms = self.rooms();
        let Some(r) = rooms.get_mut(&msg.stream) else {
            return Offer::NoRoom;
        };
        r.last_active = Instant::now();
        if r.epoch != msg.epoch {
            // The first message this process sees of the room, or the room
            // was created again (a new stream): start from it.
            r.observe(msg.epoch, msg.seq.saturating_sub(1));
        }
        if msg.seq <= r.delivered {
            return Offer::Old;
        }
        if msg.seq > r.delivered + 1 {
            r.last_seq = r.last_seq.max(msg.seq);
            if r.pending.len() < MAX_PENDING {
                r.pending.insert(msg.seq, msg.clone());
            }
            return match Self::start_fill(r) {
                Some(after) => Offer::Gap { after },
                None => Offer::Buffered,
            };
        }
        let delivered = r.deliver(msg, text);
        // Whatever waited behind this one, in order.
        r.drain_pending();
        Offer::Delivered(delivered)
    }

    /// Relays "`from` is typing" to the other members of a room.
    pub fn typing(&self, room: &str, sender: ConnId, from: &str) -> usize {
        let text = frame(&ServerMessage::Typing(Typing {
            room: room.to_string(),
            from: from.to_string(),
        }));
        self.fan_out(room, Some(sender), &text)
    }

    /// Queues `text` for every member except `skip`; returns how many got it.
    fn fan_out(&self, room: &str, skip: Option<ConnId>, text: &Utf8Bytes) -> usize {
        let rooms = self.rooms();
        rooms.get(room).map_or(0, |r| r.fan_out(skip, text))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Arc;
    use tokio::sync::{mpsc, watch};

    fn peer(id: ConnId, queue: usize) -> (Peer, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(queue);
        let (ctl, _) = watch::channel(None);
        (Peer::new(id, tx, Arc::new(ctl)), rx)
    }

    #[test]
    fn room_limit_and_presence() {
        let hub = Hub::new(2);
        hub.add_existing_room("lobby");
        assert_eq!(hub.create_room("a"), Ok(true));
        assert_eq!(hub.create_room("a"), Ok(false));
        assert_eq!(hub.create_room("b"), Err(TooManyRooms(2)));
        let (p1, _r1) = peer(1, 8);
        let (p2, _r2) = peer(2, 8);
        let (p3, _r3) = peer(3, 8);
        assert_eq!(
            hub.join("lobby", &p1, (1, "bo"), None, vec![]),
            JoinOutcome::Joined
        );
        assert_eq!(
            hub.join("lobby", &p2, (2, "al"), None, vec![]),
            JoinOutcome::Joined
        );
        assert_eq!(
            hub.join("lobby", &p3, (2, "al"), None, vec![]),
            JoinOutcome::Joined
        );
        assert_eq!(
            hub.join("nope", &p3, (2, "al"), None, vec![]),
            JoinOutcome::Failed
        );
        assert_eq!(hub.presence("lobby").users, vec!["al", "bo"]);
        assert_eq!(hub.presence("lobby").count, 2);
        assert!(hub.leave("lobby", 1));
        assert!(!hub.leave("lobby", 1));
        assert_eq!(hub.leave_all(2), vec!["lobby".to_string()]);
        assert_eq!(hub.presence("lobby").users, vec!["al"]);
    }

    #[test]
    fn presence_lists_the_first_names_and_counts_them_all() {
        let hub = Hub::new(1);
        hub.add_existing_room("big");
        let n = MAX_PRESENCE_NAMES + 10;
        let mut queues = Vec::new();
        for i in 0..n {
            let (p, rx) = peer(i as ConnId, 8);
            assert_eq!(
                hub.join("big", &p, (i as UserId, &format!("u{i:03}")), None, vec![]),
                JoinOutcome::Joined
            );
            queues.push(rx);
        }
        // A second tab of u000 is not a second name.
        let (tab, _rx) = peer(n as ConnId, 8);
        assert_eq!(
            hub.join("big", &tab, (0, "u000"), None, vec![]),
            JoinOutcome::Joined
        );
        let p = hub.presence("big");
        assert_eq!(p.count as usize, n);
        assert_eq!(p.users.len(), MAX_PRESENCE_NAMES);
        assert_eq!(p.users.first().map(String::as_str), Some("u000"));
        assert!(p.users.windows(2).all(|w| w[0] < w[1]), "sorted");
        // Both tabs must go before the name does.
        assert!(hub.leave("big", 0));
        assert_eq!(hub.presence("big").count as usize, n);
        assert!(hub.leave("big", n as ConnId));
        assert_eq!(hub.presence("big").count as usize, n - 1);
        assert_eq!(hub.broadcast_presence("big"), n - 1);
        assert_eq!(hub.presence("nowhere").count, 0);
    }

    #[test]
    fn the_presence_window_grows_with_the_room_within_bounds() {
        assert_eq!(presence_window(0), PRESENCE_WINDOW);
        assert_eq!(presence_window(100), PRESENCE_WINDOW);
        assert_eq!(presence_window(1_000), Duration::from_secs(1));
        assert_eq!(presence_window(5_000), PRESENCE_WINDOW_MAX);
        assert_eq!(presence_window(usize::MAX), PRESENCE_WINDOW_MAX);
    }

    #[test]
    fn the_directory_counts_distinct_users_and_follows_the_stream() {
        let hub = Hub::new(10);
        hub.add_existing_room("a");
        assert_eq!(hub.create_room("b"), Ok(true));
        // Not listed before the store told the stream's epoch.
        assert!(hub.directory().is_empty());
        hub.set_stream("a", 7, 2);
        hub.set_stream("b", 9, 0);
        let (p1, _r1) = peer(1, 8);
        let (p2, _r2) = peer(2, 8);
        let (p3, _r3) = peer(3, 8);
        assert_eq!(
            hub.join("a", &p1, (10, "ada"), None, vec![]),
            JoinOutcome::Joined
        );
        assert_eq!(
            hub.join("a", &p2, (10, "ada"), None, vec![]),
            JoinOutcome::Joined
        ); // a second tab
        assert_eq!(
            hub.join("a", &p3, (11, "bo"), None, vec![]),
            JoinOutcome::Joined
        );
        hub.publish(&ChatMessage {
            stream: "a".into(),
            epoch: 7,
            seq: 3,
            id: "c".into(),
            from: "ada".into(),
            text: "hi".into(),
            at: 1,
        });
        let summary = |name: &str, epoch, last_seq, online| RoomSummary {
            name: name.into(),
            epoch,
            last_seq,
            online,
        };
        assert_eq!(
            hub.directory(),
            vec![summary("a", 7, 3, 2), summary("b", 9, 0, 0)]
        );
        hub.leave_all(3);
        assert_eq!(hub.directory()[0].online, 1);
        // A new epoch replaces the position.
        hub.set_stream("a", 8, 0);
        assert_eq!(hub.directory()[0], summary("a", 8, 0, 1));
    }

    fn msg(seq: u64) -> ChatMessage {
        ChatMessage {
            stream: "r".into(),
            epoch: 7,
            seq,
            id: format!("c{seq}"),
            from: "ada".into(),
            text: format!("m{seq}"),
            at: 1,
        }
    }

    /// The `seq`s of the chat messages queued for a peer (history included).
    fn seqs_received(rx: &mut mpsc::Receiver<Outbound>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(out) = rx.try_recv() {
            let frames = match out {
                Outbound::Text(t) => vec![t],
                Outbound::Batch(b) => b,
            };
            for f in frames {
                if let Ok(ServerMessage::ChatMessage(m)) = serde_json::from_str(f.as_str()) {
                    seqs.push(m.seq);
                }
            }
        }
        seqs
    }

    #[test]
    fn messages_out_of_order_are_delivered_in_order_once_and_a_gap_is_reported() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        assert_eq!(hub.set_stream("r", 7, 0), None);
        let (p, mut rx) = peer(1, 64);
        assert_eq!(
            hub.join("r", &p, (1, "ada"), Some((7, 0)), vec![]),
            JoinOutcome::Joined
        );
        assert_eq!(hub.publish(&msg(1)), Offer::Delivered(1));
        // 3 before 2: held back, and the first hole asks for a fill.
        assert_eq!(hub.publish(&msg(3)), Offer::Gap { after: 1 });
        assert_eq!(hub.publish(&msg(4)), Offer::Buffered);
        assert_eq!(seqs_received(&mut rx), vec![1]);
        assert_eq!(hub.publish(&msg(2)), Offer::Delivered(1));
        assert_eq!(seqs_received(&mut rx), vec![2, 3, 4]);
        // Again (from the bus and from a fill): dropped.
        assert_eq!(hub.publish(&msg(3)), Offer::Old);
        assert_eq!(hub.fill_done("r"), None, "nothing missing any more");
        assert_eq!(hub.directory()[0].last_seq, 4);
        assert!(seqs_received(&mut rx).is_empty());
    }

    #[test]
    fn a_gap_the_fill_cannot_close_is_skipped_and_a_running_fill_is_not_doubled() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        hub.set_stream("r", 7, 0);
        let (p, mut rx) = peer(1, 64);
        hub.join("r", &p, (1, "ada"), Some((7, 0)), vec![]);
        assert_eq!(hub.publish(&msg(5)), Offer::Gap { after: 0 });
        assert_eq!(hub.lagging("r"), None, "a fill is running");
        assert_eq!(hub.fill_done("r"), Some(0), "still missing 1-4");
        hub.skip_gap("r");
        assert_eq!(seqs_received(&mut rx), vec![5]);
        assert_eq!(hub.fill_done("r"), None);
        assert_eq!(hub.publish(&msg(6)), Offer::Delivered(1));
    }

    #[test]
    fn a_join_reads_again_if_its_history_is_behind_and_skips_what_it_has() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        hub.set_stream("r", 7, 0);
        let (a, mut rx_a) = peer(1, 64);
        hub.join("r", &a, (1, "ada"), Some((7, 0)), vec![]);
        hub.publish(&msg(1));
        hub.publish(&msg(2));
        // History read at seq 1, but the room delivered 2 already.
        let (b, mut rx_b) = peer(2, 64);
        assert_eq!(
            hub.join("r", &b, (2, "bo"), Some((7, 1)), vec![]),
            JoinOutcome::Stale
        );
        // History read at seq 4: 3 and 4 are still on their way here.
        assert_eq!(
            hub.join("r", &b, (2, "bo"), Some((7, 4)), vec![]),
            JoinOutcome::Joined
        );
        assert_eq!(hub.lagging("r"), Some(2));
        hub.fill_done("r");
        for seq in 3..=5 {
            hub.publish(&msg(seq));
        }
        assert_eq!(seqs_received(&mut rx_a), vec![1, 2, 3, 4, 5]);
        assert_eq!(
            seqs_received(&mut rx_b),
            vec![5],
            "3 and 4 came with its history"
        );
        assert_eq!(hub.lagging("r"), None);
        // The same holds in a room nobody is in yet.
        hub.add_existing_room("empty");
        hub.set_stream("empty", 7, 0);
        hub.publish(&ChatMessage {
            stream: "empty".into(),
            ..msg(1)
        });
        hub.publish(&ChatMessage {
            stream: "empty".into(),
            ..msg(2)
        });
        let (c, _rx_c) = peer(3, 64);
        assert_eq!(
            hub.join("empty", &c, (3, "cy"), Some((7, 1)), vec![]),
            JoinOutcome::Stale
        );
        assert_eq!(
            hub.join("empty", &c, (3, "cy"), Some((7, 2)), vec![]),
            JoinOutcome::Joined
        );
    }

    #[test]
    fn a_join_gets_what_the_room_delivered_while_its_history_was_read() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        hub.set_stream("r", 7, 0);
        let (a, mut rx_a) = peer(1, 64);
        hub.join("r", &a, (1, "ada"), Some((7, 0)), vec![]);
        hub.publish(&msg(1));
        let (b, mut rx_b) = peer(2, 64);
        hub.begin_join("r", b.id);
        // Delivered while b's history (read at seq 1) was on its way:
        // without the catch-up, every read during such a burst was stale.
        for seq in 2..=4 {
            hub.publish(&msg(seq));
        }
        let history = vec![frame(&ServerMessage::ChatMessage(msg(1)))];
        assert_eq!(
            hub.join("r", &b, (2, "bo"), Some((7, 1)), history),
            JoinOutcome::Joined
        );
        hub.publish(&msg(5));
        assert_eq!(seqs_received(&mut rx_a), vec![1, 2, 3, 4, 5]);
        assert_eq!(
            seqs_received(&mut rx_b),
            vec![1, 2, 3, 4, 5],
            "each once, in order"
        );
        // The catch-up ended with the join: a later join reads afresh.
        let (c, _rx_c) = peer(3, 64);
        assert_eq!(
            hub.join("r", &c, (3, "cy"), Some((7, 1)), vec![]),
            JoinOutcome::Stale
        );
    }

    #[test]
    fn a_catch_up_ends_when_its_connection_leaves() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        hub.set_stream("r", 7, 0);
        let (b, _rx_b) = peer(2, 64);
        hub.begin_join("r", b.id);
        assert_eq!(
            hub.leave_all(b.id),
            Vec::<String>::new(),
            "not a member yet"
        );
        hub.publish(&msg(1));
        assert_eq!(
            hub.join("r", &b, (2, "bo"), Some((7, 0)), vec![]),
            JoinOutcome::Stale,
            "nothing was recorded after it left"
        );
    }

    #[test]
    fn an_empty_room_skips_ahead_and_a_new_epoch_starts_over() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        hub.set_stream("r", 7, 0);
        // Nobody here to deliver to: no gap to fill.
        assert_eq!(hub.set_stream("r", 7, 9), None);
        assert_eq!(hub.publish(&msg(10)), Offer::Delivered(0));
        let (p, mut rx) = peer(1, 64);
        hub.join("r", &p, (1, "ada"), Some((7, 10)), vec![]);
        // The room was deleted and made again elsewhere: seq 1 is new.
        let fresh = ChatMessage { epoch: 8, ..msg(1) };
        assert_eq!(hub.publish(&fresh), Offer::Delivered(1));
        assert_eq!(seqs_received(&mut rx), vec![1]);
    }

    #[test]
    fn presence_is_the_union_over_processes_and_a_silent_process_expires() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        hub.set_stream("r", 7, 0);
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = told.clone();
        hub.set_presence_sink(Box::new(move |room, names, users| {
            sink.lock()
                .unwrap()
                .push((room.to_string(), names.len(), users));
        }));
        let (p, _rx) = peer(1, 64);
        hub.join("r", &p, (1, "ada"), Some((7, 0)), vec![]);
        let names = |list: &[&str]| list.iter().map(|n| (n.to_string(), 1)).collect();
        assert!(hub.set_remote_presence(42, "r", names(&["bo", "ada"]), 2));
        assert!(
            !hub.set_remote_presence(42, "r", names(&["bo", "ada"]), 2),
            "no change"
        );
        let p = hub.presence("r");
        assert_eq!(
            (p.users, p.count),
            (vec!["ada".to_string(), "bo".to_string()], 2)
        );
        assert_eq!(hub.directory()[0].online, 3, "1 here, 2 there");
        // A room made on the other process shows up here.
        assert!(hub.set_remote_presence(42, "elsewhere", names(&["cy"]), 1));
        assert!(hub.has_room("elsewhere"));
        // Only local changes go to the sink, once per broadcast.
        hub.broadcast_presence("r");
        hub.broadcast_presence("r");
        assert_eq!(*told.lock().unwrap(), vec![("r".to_string(), 1, 1)]);
        // A room with someone elsewhere does not expire here.
        assert!(hub.expire_idle(Duration::ZERO, |_| {}).is_empty());
        hub.remote_alive(42);
        assert!(hub.forget_remote(None, Duration::from_secs(60)).is_empty());
        let mut gone = hub.forget_remote(None, Duration::ZERO);
        gone.sort();
        assert_eq!(gone, vec!["elsewhere", "r"]);
        assert_eq!(hub.presence("r").users, vec!["ada"]);
        assert!(hub.set_remote_presence(43, "r", names(&["dee"]), 1));
        assert_eq!(hub.forget_remote(Some(43), Duration::MAX), vec!["r"]);
        assert_eq!(hub.directory()[0].online, 1);
    }

    #[test]
    fn only_empty_idle_non_permanent_rooms_expire() {
        let hub = Hub::new(10);
        hub.add_permanent_room("lobby");
        hub.add_existing_room("old");
        assert_eq!(hub.create_room("busy"), Ok(true));
        let (p, _rx) = peer(1, 8);
        assert_eq!(
            hub.join("busy", &p, (1, "ada"), None, vec![]),
            JoinOutcome::Joined
        );
        let mut queued = Vec::new();
        let expired = hub.expire_idle(Duration::ZERO, |names| queued = names.to_vec());
        assert_eq!(expired, vec!["old".to_string()]);
        assert_eq!(queued, expired);
        assert_eq!(hub.room_names(), vec!["busy", "lobby"]);
        // Recently active rooms stay.
        hub.leave_all(1);
        assert!(hub.expire_idle(Duration::from_secs(60), |_| {}).is_empty());
        assert_eq!(hub.expire_idle(Duration::ZERO, |_| {}), vec!["busy"]);
        assert_eq!(hub.room_names(), vec!["lobby"]);
    }

    #[test]
    fn a_full_queue_closes_only_the_slow_peer() {
        let hub = Hub::new(10);
        hub.add_existing_room("r");
        let (slow, _slow_rx) = peer(1, 1);
        let (fast, mut fast_rx) = peer(2, 8);
        assert_eq!(
            hub.join("r", &slow, (1, "slow"), None, vec![]),
            JoinOutcome::Joined
        );
        assert_eq!(
            hub.join("r", &fast, (2, "fast"), None, vec![]),
            JoinOutcome::Joined
        );
        while fast_rx.try_recv().is_ok() {}
        assert_eq!(hub.typing("r", 99, "x"), 1); // slow's queue is full now
        assert!(slow.is_closing());
        assert!(!fast.is_closing());
        assert!(fast_rx.try_recv().is_ok());
    }
}
