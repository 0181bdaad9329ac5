use std::rc::Rc;

use heartline::core::{MessageId, SendError};
use heartline::yew::{SocketHandle, use_socket, use_standing, use_subscription};
use heartline_protocol::{ChatMessage, ClientMessage, FieldError, validate_text};
use serde_json::Value;
use yew::prelude::*;

use crate::messages::{Chat, HistoryPage, Joined, Presence};

/// Messages of a room shown at first; older ones come a page at a time.
pub const PAGE: u32 = 50;

/// One of our own messages that the room's stream has not shown yet: queued,
/// sent, or failed. Once the server broadcasts it, it is an ordinary
/// [`ChatMessage`] and this entry goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// The socket layer's id for it (also the stored message's `id`).
    pub id: MessageId,
    /// What was typed, trimmed.
    pub text: String,
}

/// What a room view shows. Changed only through [`RoomAction`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoomState {
    /// The room's stream epoch; messages of another epoch start it over.
    pub epoch: Option<u64>,
    /// Stored messages, ascending by `seq`, each once.
    pub messages: Vec<ChatMessage>,
    /// The server has answered the join: the history is in.
    pub live: bool,
    /// There may be messages before the first one shown.
    pub has_older: bool,
    /// A page of older messages was asked for and has not come yet.
    pub loading_older: bool,
    /// Who is in the room, sorted: the first names only in a big room
    /// (see `people`).
    pub users: Vec<String>,
    /// How many people are in the room (at least `users.len()`).
    pub people: usize,
    /// Our own messages not yet in `messages`, in the order typed.
    pub pending: Vec<Pending>,
}

/// Everything that changes a [`RoomState`].
#[derive(Debug)]
pub enum RoomAction {
    /// A message of the stream (live, or history after a join).
    Message(ChatMessage),
    /// The join was answered.
    Joined { last_seq: u64, epoch: u64 },
    /// A page of older messages.
    Older {
        epoch: u64,
        messages: Vec<ChatMessage>,
        has_more: bool,
    },
    /// A page of older messages was requested.
    LoadingOlder,
    /// Who is in the room now: the first names, and how many in all.
    Presence { users: Vec<String>, count: u32 },
    /// We sent (or queued) a message.
    Sent(Pending),
    /// A pending message is gone (cancelled, or re-sent under a new id).
    Forget(MessageId),
}

impl RoomState {
    fn starts_epoch(&mut self, epoch: u64) {
        if self.epoch != Some(epoch) {
            // A history that started over: what we showed belongs to the
            // old one.
            self.epoch = Some(epoch);
            self.messages.clear();
            self.has_older = false;
        }
    }

    /// Inserts in `seq` order; a `seq` already shown is skipped.
    fn insert(&mut self, message: ChatMessage) {
        self.pending.retain(|p| p.id.as_str() != message.id);
        match self.messages.binary_search_by_key(&message.seq, |m| m.seq) {
            Ok(_) => {}
            Err(at) => self.messages.insert(at, message),
        }
    }

    /// The lowest `seq` shown.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.messages.first().map(|m| m.seq)
    }
}

impl Reducible for RoomState {
    type Action = RoomAction;

    fn reduce(self: Rc<Self>, action: RoomAction) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            RoomAction::Message(message) => {
                let first = next.epoch.is_none();
                next.starts_epoch(message.epoch);
                if first {
                    next.has_older = message.seq > 1;
                }
                next.insert(message);
            }
            RoomAction::Joined { last_seq, epoch } => {
                next.starts_epoch(epoch);
                next.live = true;
                next.has_older = next.oldest_seq().map_or(last_seq > 0, |oldest| oldest > 1);
            }
            RoomAction::Older {
                epoch,
                messages,
                has_more,
            } => {
                next.loading_older = false;
                if next.epoch == Some(epoch) {
                    for message in messages {
                        next.insert(message);
                    }
                    next.has_older = has_more && next.oldest_seq().is_some_and(|s| s > 1);
                }
            }
            RoomAction::LoadingOlder => next.loading_older = true,
            RoomAction::Presence { users, count } => {
                next.people = usize::try_from(count)
                    .unwrap_or(usize::MAX)
                    .max(users.len());
                next.users = users;
            }
            RoomAction::Sent(pending) => {
                let shown = next.messages.iter().any(|m| m.id == pending.id.as_str());
                if !shown && !next.pending.iter().any(|p| p.id == pending.id) {
                    next.pending.push(pending);
                }
            }
            RoomAction::Forget(id) => next.pending.retain(|p| p.id != id),
        }
        Rc::new(next)
    }
}

/// Why a message could not be handed to the socket layer.
#[derive(Debug, Clone, PartialEq)]
pub enum ComposeError {
    /// Empty, too long or with control characters (the server's own rules).
    Invalid(FieldError),
    /// The outbox is full or the connection was closed for good.
    Socket(String),
}

impl std::fmt::Display for ComposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComposeError::Invalid(error) => write!(f, "{error}"),
            ComposeError::Socket(error) => write!(f, "{error}"),
        }
    }
}

/// A chat room, for as long as the component that holds it is mounted.
/// Equal while nothing it shows changed, so it can be passed as a prop.
#[derive(Clone, PartialEq, Debug)]
pub struct RoomHandle {
    room: AttrValue,
    state: UseReducerHandle<RoomState>,
    socket: SocketHandle,
}

impl RoomHandle {
    /// The room's name.
    pub fn name(&self) -> &AttrValue {
        &self.room
    }

    /// What to show.
    pub fn state(&self) -> &RoomState {
        &self.state
    }

    /// The socket the room lives on (message states, status).
    pub fn socket(&self) -> &SocketHandle {
        &self.socket
    }

    /// Sends `text` reliably: shown at once as queued or sent, delivered
    /// once, in order, whenever the link allows.
    pub fn send(&self, text: &str) -> Result<MessageId, ComposeError> {
        let text = validate_text(text).map_err(ComposeError::Invalid)?;
        let message = ClientMessage::ChatSend {
            // The socket layer gives every reliable message its own id.
            id: String::new(),
            room: self.room.to_string(),
            text: text.clone(),
        };
        let id = self
            .socket
            .send_message(&message)
            .map_err(|e: SendError| ComposeError::Socket(e.to_string()))?;
        self.state.dispatch(RoomAction::Sent(Pending {
            id: id.clone(),
            text,
        }));
        Ok(id)
    }

    /// Sends a failed message again, as a new message.
    pub fn retry(&self, id: &MessageId) -> Result<MessageId, ComposeError> {
        let text = self
            .state
            .pending
            .iter()
            .find(|p| &p.id == id)
            .map(|p| p.text.clone())
            .ok_or_else(|| ComposeError::Socket("that message is no longer pending".into()))?;
        let new_id = self.send(&text)?;
        self.state.dispatch(RoomAction::Forget(id.clone()));
        Ok(new_id)
    }

    /// Withdraws a message still waiting in the outbox.
    pub fn cancel(&self, id: &MessageId) -> Result<(), String> {
        self.socket.cancel(id).map_err(|e| e.to_string())?;
        self.state.dispatch(RoomAction::Forget(id.clone()));
        Ok(())
    }

    /// Removes a failed message from view.
    pub fn dismiss(&self, id: &MessageId) {
        self.state.dispatch(RoomAction::Forget(id.clone()));
    }

    /// Asks for the page of messages before the oldest one shown.
    pub fn load_older(&self) {
        let state = &*self.state;
        let Some(before) = state.oldest_seq() else {
            return;
        };
        if state.loading_older || !state.has_older || before <= 1 {
            return;
        }
        let request = ClientMessage::History {
            id: String::new(),
            room: self.room.to_string(),
            before,
            limit: PAGE,
        };
        if self.socket.send_message(&request).is_ok() {
            self.state.dispatch(RoomAction::LoadingOlder);
        }
    }
}

/// The `chat.send` frames of `room` waiting in an exported outbox: what was
/// typed here before a reload and has not gone out yet.
pub fn queued_in_outbox(outbox_json: &str, room: &str) -> Vec<Pending> {
    let Ok(dump) = serde_json::from_str::<Value>(outbox_json) else {
        return Vec::new();
    };
    let Some(messages) = dump.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    messages
        .iter()
        .filter_map(|entry| {
            let frame: Value = serde_json::from_str(entry.get("frame")?.as_str()?).ok()?;
            let field = |name: &str| frame.get(name).and_then(Value::as_str);
            if field("socketType")? != "chat.send" || field("room")? != room {
                return None;
            }
            Some(Pending {
                id: MessageId::from(field("id")?),
                text: field("text")?.to_owned(),
            })
        })
        .collect()
}

/// Joins `room` for the life of the calling component: its recent history,
/// live messages, presence, older pages on request, and our own messages
/// with their delivery state.
#[hook]
pub fn use_room(room: AttrValue) -> RoomHandle {
    let socket = use_socket();
    let state = use_reducer(RoomState::default);

    use_standing(
        &format!("room:{room}"),
        ClientMessage::Join {
            room: room.to_string(),
            since: None,
            epoch: None,
            limit: Some(PAGE),
        },
        Some(ClientMessage::Leave {
            room: room.to_string(),
        }),
        Some(room.as_str()),
    );

    // Messages typed before a reload that are still in the outbox. The
    // provider restores the outbox in its own effect, which runs after this
    // one (children first): look again once the outbox holds something.
    {
        let state = state.clone();
        let socket = socket.clone();
        let stats = socket.stats();
        let waiting = stats.queued + stats.in_flight > 0;
        use_effect_with((room.clone(), waiting), move |(room, _)| {
            for pending in queued_in_outbox(&socket.export_outbox(), room) {
                state.dispatch(RoomAction::Sent(pending));
            }
        });
    }

    {
        let state = state.clone();
        let room = room.clone();
        use_subscription::<Chat, _>(move |Chat(message)| {
            if message.stream == room.as_str() {
                state.dispatch(RoomAction::Message(message));
            }
        });
    }
    {
        let state = state.clone();
        let room = room.clone();
        use_subscription::<Joined, _>(move |joined| {
            if joined.stream == room.as_str() {
                state.dispatch(RoomAction::Joined {
                    last_seq: joined.last_seq,
                    epoch: joined.epoch,
                });
            }
        });
    }
    {
        let state = state.clone();
        let room = room.clone();
        use_subscription::<HistoryPage, _>(move |HistoryPage(page)| {
            if page.room == room.as_str() {
                state.dispatch(RoomAction::Older {
                    epoch: page.epoch,
                    messages: page.messages,
                    has_more: page.has_more,
                });
            }
        });
    }
    {
        let state = state.clone();
        let room = room.clone();
        use_subscription::<Presence, _>(move |Presence(presence)| {
            if presence.room == room.as_str() {
                state.dispatch(RoomAction::Presence {
                    users: presence.users,
                    count: presence.count,
                });
            }
        });
    }

    RoomHandle {
        room,
        state,
        socket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, epoch: u64) -> ChatMessage {
        ChatMessage {
            stream: "lobby".into(),
            epoch,
            seq,
            id: format!("c-{seq}"),
            from: "ada".into(),
            text: format!("#{seq}"),
            at: 0,
        }
    }

    fn reduce(state: Rc<RoomState>, action: RoomAction) -> Rc<RoomState> {
        state.reduce(action)
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn messages_are_kept_in_seq_order_once_and_a_new_epoch_starts_over() {
        let mut state = Rc::new(RoomState::default());
        for seq in [3, 1, 2, 2] {
            state = reduce(state, RoomAction::Message(message(seq, 7)));
        }
        let seqs: Vec<u64> = state.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        state = reduce(state, RoomAction::Message(message(1, 8)));
        assert_eq!(state.messages.len(), 1);
        assert_eq!(state.epoch, Some(8));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn a_pending_message_goes_when_the_stream_shows_it() {
        let mut state = Rc::new(RoomState::default());
        state = reduce(
            state,
            RoomAction::Sent(Pending {
                id: MessageId::from("c-5"),
                text: "hi".into(),
            }),
        );
        assert_eq!(state.pending.len(), 1);
        state = reduce(state, RoomAction::Message(message(5, 1)));
        assert!(state.pending.is_empty());
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn older_pages_prepend_and_end_at_the_first_message() {
        let mut state = Rc::new(RoomState::default());
        state = reduce(state, RoomAction::Message(message(51, 1)));
        state = reduce(
            state,
            RoomAction::Joined {
                last_seq: 51,
                epoch: 1,
            },
        );
        assert!(state.has_older);
        state = reduce(state, RoomAction::LoadingOlder);
        state = reduce(
            state,
            RoomAction::Older {
                epoch: 1,
                messages: (1..=50).map(|s| message(s, 1)).collect(),
                has_more: false,
            },
        );
        assert_eq!(state.messages.len(), 51);
        assert!(!state.has_older && !state.loading_older);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn the_outbox_dump_gives_back_this_rooms_queued_messages() {
        let dump = r#"{"version":1,"messages":[
            {"id":"c-1","frame":"{\"socketType\":\"chat.send\",\"id\":\"c-1\",\"room\":\"lobby\",\"text\":\"one\"}"},
            {"id":"c-2","frame":"{\"socketType\":\"chat.send\",\"id\":\"c-2\",\"room\":\"help\",\"text\":\"two\"}"},
            {"id":"c-3","frame":"{\"socketType\":\"join\",\"id\":\"c-3\",\"room\":\"lobby\"}"}
        ]}"#;
        let queued = queued_in_outbox(dump, "lobby");
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].text, "one");
        assert!(queued_in_outbox("not json", "lobby").is_empty());
    }
}
