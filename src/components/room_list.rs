use heartline_protocol::{RoomSummary, validate_room};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::hooks::use_last_read::use_last_read;
use crate::route::Route;

/// Props of [`RoomList`].
#[derive(Properties, PartialEq, Debug)]
pub struct RoomListProps {
    /// The directory, sorted by name.
    pub rooms: std::rc::Rc<Vec<RoomSummary>>,
    /// The room shown now.
    pub current: AttrValue,
}

/// The rooms with who is in them and what is unread, and a form to open a
/// new one by name.
#[function_component(RoomList)]
pub fn room_list(props: &RoomListProps) -> Html {
    let last_read = use_last_read();
    let navigator = use_navigator();
    let draft = use_state(String::new);
    let error = use_state(|| None::<String>);

    let oninput = {
        let draft = draft.clone();
        let error = error.clone();
        Callback::from(move |e: InputEvent| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            draft.set(input.value());
            error.set(None);
        })
    };
    let onsubmit = {
        let draft = draft.clone();
        let error = error.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match validate_room(&draft) {
                Ok(room) => {
                    draft.set(String::new());
                    if let Some(navigator) = &navigator {
                        navigator.push(&Route::Chat { room });
                    }
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        })
    };

    let mut rooms: Vec<RoomSummary> = (*props.rooms).clone();
    // The room being opened shows even before the directory knows it.
    if !rooms.iter().any(|r| r.name == props.current.as_str()) {
        rooms.push(RoomSummary {
            name: props.current.to_string(),
            epoch: 0,
            last_seq: 0,
            online: 0,
        });
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
    }

    html! {
        <nav class="rooms" aria-label="Rooms">
            <h2 class="rooms__title">{ "Rooms" }</h2>
            <ul class="rooms__list">
                { for rooms.iter().map(|room| {
                    let current = room.name == props.current.as_str();
                    let unread = if current {
                        0
                    } else {
                        last_read
                            .get(&room.name)
                            .map_or(0, |mark| mark.unread(room.epoch, room.last_seq))
                    };
                    html! {
                        <li key={room.name.clone()} class={classes!("rooms__item", current.then_some("rooms__item--current"))}
                            data-room={room.name.clone()}>
                            <Link<Route> to={Route::Chat { room: room.name.clone() }} classes="rooms__link">
                                <span class="rooms__name">{ format!("# {}", room.name) }</span>
                                <span class="rooms__meta">
                                    <span class="rooms__online" title="people in the room">
                                        { format!("{} online", room.online) }
                                    </span>
                                    if unread > 0 {
                                        <span class="rooms__unread" aria-label={format!("{unread} unread")}>
                                            { if unread > 99 { "99+".to_owned() } else { unread.to_string() } }
                                        </span>
                                    }
                                </span>
                            </Link<Route>>
                        </li>
                    }
                }) }
            </ul>
            <form class="rooms__new" {onsubmit}>
                <label for="new-room" class="visually-hidden">{ "New room name" }</label>
                <input id="new-room" name="room" placeholder="New room…" value={(*draft).clone()}
                    maxlength="64" autocomplete="off" {oninput}
                    aria-invalid={error.is_some().then_some("true")}
                    aria-describedby="new-room-error" />
                <button type="submit">{ "Open" }</button>
                <p id="new-room-error" class="field-error" role="alert">
                    { (*error).clone().unwrap_or_default() }
                </p>
            </form>
        </nav>
    }
}
