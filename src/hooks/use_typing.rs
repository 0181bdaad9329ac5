use std::cell::Cell;
use std::rc::Rc;

use heartline::yew::{use_socket, use_subscription};
use heartline_protocol::ClientMessage;
use yew::prelude::*;
use yew_hooks::use_interval;

use crate::messages::Typing;

/// How long "x is typing" shows after their last typing frame.
const SHOWN_FOR_MS: f64 = 3_000.0;
/// We tell the room at most this often while typing.
const SEND_EVERY_MS: f64 = 2_000.0;

/// Who is typing in a room, each until a moment after their last keystroke.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Typists {
    /// (name, shown until, ms since the Unix epoch), sorted by name.
    entries: Vec<(String, f64)>,
}

/// Everything that changes [`Typists`].
#[derive(Debug)]
pub enum TypingAction {
    /// `name` typed at `now`.
    Typed { name: String, now: f64 },
    /// Time passed: forget those shown long enough.
    Expire { now: f64 },
}

impl Typists {
    /// The names shown now.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(name, _)| name.as_str()).collect()
    }
}

impl Reducible for Typists {
    type Action = TypingAction;

    fn reduce(self: Rc<Self>, action: TypingAction) -> Rc<Self> {
        match action {
            TypingAction::Typed { name, now } => {
                let mut next = (*self).clone();
                let until = now + SHOWN_FOR_MS;
                match next
                    .entries
                    .binary_search_by(|(n, _)| n.as_str().cmp(&name))
                {
                    Ok(at) => next.entries[at].1 = until,
                    Err(at) => next.entries.insert(at, (name, until)),
                }
                Rc::new(next)
            }
            TypingAction::Expire { now } => {
                if self.entries.iter().all(|(_, until)| *until > now) {
                    return self;
                }
                let mut next = (*self).clone();
                next.entries.retain(|(_, until)| *until > now);
                Rc::new(next)
            }
        }
    }
}

/// The typing indicator of one room.
#[derive(Clone, Debug)]
pub struct TypingHandle {
    typists: UseReducerHandle<Typists>,
    notify: Callback<()>,
}

impl TypingHandle {
    /// Who else is typing.
    pub fn typists(&self) -> &Typists {
        &self.typists
    }

    /// Call on every keystroke: tells the room, at most every 2 s, with a
    /// volatile frame (never queued: a stale "typing" is worse than none).
    pub fn notify(&self) {
        self.notify.emit(());
    }
}

/// Who is typing in `room` (other than `me`), and a way to say we are.
#[hook]
pub fn use_typing(room: AttrValue, me: AttrValue) -> TypingHandle {
    let socket = use_socket();
    let typists = use_reducer(Typists::default);
    let last_sent = use_mut_ref(|| Cell::new(f64::NEG_INFINITY));
    {
        let typists = typists.clone();
        let room = room.clone();
        use_subscription::<Typing, _>(move |Typing(typing)| {
            if typing.room == room.as_str() && typing.from != me.as_str() {
                typists.dispatch(TypingAction::Typed {
                    name: typing.from,
                    now: js_sys::Date::now(),
                });
            }
        });
    }
    {
        let typists = typists.clone();
        use_interval(
            move || {
                typists.dispatch(TypingAction::Expire {
                    now: js_sys::Date::now(),
                })
            },
            500,
        );
    }
    let notify = Callback::from(move |()| {
        let now = js_sys::Date::now();
        let last = last_sent.borrow();
        if now - last.get() < SEND_EVERY_MS {
            return;
        }
        let typing = ClientMessage::Typing {
            room: room.to_string(),
        };
        // Not open, congested or over the pace: skip this one.
        if socket.send_volatile_message(&typing).is_ok() {
            last.set(now);
        }
    });
    TypingHandle { typists, notify }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn typists_show_for_a_moment_after_their_last_keystroke() {
        let mut t = Rc::new(Typists::default());
        t = t.reduce(TypingAction::Typed {
            name: "bo".into(),
            now: 0.0,
        });
        t = t.reduce(TypingAction::Typed {
            name: "ada".into(),
            now: 1_000.0,
        });
        assert_eq!(t.names(), vec!["ada", "bo"]);
        t = t.reduce(TypingAction::Expire { now: 3_500.0 });
        assert_eq!(t.names(), vec!["ada"]);
        t = t.reduce(TypingAction::Expire { now: 4_500.0 });
        assert!(t.names().is_empty());
    }
}
