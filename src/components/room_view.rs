use heartline::yew::use_subscription;
use heartline_protocol::error_code;
use yew::prelude::*;

use crate::components::composer::Composer;
use crate::components::message_list::MessageList;
use crate::components::typing_indicator::TypingIndicator;
use crate::hooks::use_last_read::use_last_read;
use crate::hooks::use_room::use_room;
use crate::hooks::use_typing::use_typing;
use crate::messages::ServerError;

/// Props of [`RoomView`].
#[derive(Properties, PartialEq, Debug)]
pub struct RoomViewProps {
    /// The room to show (joined while this is mounted).
    pub room: AttrValue,
    /// Our display name.
    pub me: AttrValue,
}

/// One room: who is here, its messages, who is typing, and the composer.
/// Mount it with `key={room}` so another room is a fresh join.
#[function_component(RoomView)]
pub fn room_view(props: &RoomViewProps) -> Html {
    let room = use_room(props.room.clone());
    let typing = use_typing(props.room.clone(), props.me.clone());
    let last_read = use_last_read();
    let refused = use_state(|| None::<String>);
    {
        // A join is refused without an id; a room not yet live is ours.
        let refused = refused.clone();
        let live = room.state().live;
        use_subscription::<ServerError, _>(move |ServerError(error)| {
            if !live
                && (error.code == error_code::LIMIT_REACHED
                    || error.id.is_none() && error.code == error_code::RATE_LIMITED)
            {
                refused.set(Some(error.message));
            }
        });
    }
    // What is shown is read.
    {
        let state = room.state();
        let mark = state.epoch.zip(state.messages.last().map(|m| m.seq));
        let name = props.room.clone();
        use_effect_with(mark, move |mark| {
            if let Some((epoch, seq)) = *mark {
                last_read.mark(&name, epoch, seq);
            }
        });
    }
    let state = room.state();
    let typists: Vec<AttrValue> = typing
        .typists()
        .names()
        .into_iter()
        .map(|n| AttrValue::from(n.to_owned()))
        .collect();
    let on_typing = {
        let typing = typing.clone();
        Callback::from(move |()| typing.notify())
    };
    html! {
        <section class="room" aria-labelledby="room-title" data-room={props.room.clone()}>
            <header class="room__header">
                <h2 id="room-title" class="room__title">{ format!("# {}", props.room) }</h2>
                <p class="room__people" title={state.users.join(", ")}>
                    { people_line(state.people, &state.users) }
                </p>
            </header>
            if let Some(reason) = &*refused {
                <p class="room__refused" role="alert">
                    { format!("This room can't be opened: {reason}") }
                </p>
            }
            <MessageList room={room.clone()} me={props.me.clone()} />
            <TypingIndicator names={typists} />
            <Composer room={room} {on_typing} />
        </section>
    }
}

/// The header's "who is here" line: every name in a small room, a count and
/// the first names in a big one (`users` may hold only the first names).
fn people_line(people: usize, users: &[String]) -> String {
    match people {
        0 => String::new(),
        1..=5 if users.len() == people => format!("Here: {}", users.join(", ")),
        n => {
            let first: Vec<&str> = users.iter().take(4).map(String::as_str).collect();
            format!("{} people here: {}, …", grouped(n), first.join(", "))
        }
    }
}

/// `n` with a comma between each group of three digits: 5,000.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{grouped, people_line};

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}")).collect()
    }

    #[test]
    fn counts_group_their_digits_by_three() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(100), "100");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(10_000), "10,000");
        assert_eq!(grouped(100_000), "100,000");
    }

    #[test]
    fn small_rooms_list_everyone_big_rooms_count() {
        assert_eq!(people_line(0, &[]), "");
        assert_eq!(people_line(2, &names(2)), "Here: u0, u1");
        assert_eq!(
            people_line(6, &names(6)),
            "6 people here: u0, u1, u2, u3, …"
        );
        // A presence list cut at 50 names still shows the room's size.
        assert_eq!(
            people_line(5_000, &names(50)),
            "5,000 people here: u0, u1, u2, u3, …"
        );
        assert_eq!(
            people_line(1_234_567, &names(50)),
            "1,234,567 people here: u0, u1, u2, u3, …"
        );
        assert_eq!(
            people_line(999, &names(50)),
            "999 people here: u0, u1, u2, u3, …"
        );
    }
}
