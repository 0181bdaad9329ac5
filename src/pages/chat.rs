use yew::prelude::*;

use crate::components::room_list::RoomList;
use crate::components::room_view::RoomView;
use crate::hooks::use_room_directory::use_room_directory;

/// Props of [`ChatPage`].
#[derive(Properties, PartialEq, Debug)]
pub struct ChatPageProps {
    /// The room in the URL.
    pub room: AttrValue,
    /// Our display name.
    pub me: AttrValue,
}

/// The chat: rooms on the side, the open room beside them.
#[function_component(ChatPage)]
pub fn chat_page(props: &ChatPageProps) -> Html {
    let rooms = use_room_directory();
    html! {
        <div class="chat">
            <RoomList rooms={rooms} current={props.room.clone()} />
            // Keyed: another room is another join, with its own state.
            <RoomView key={props.room.to_string()} room={props.room.clone()} me={props.me.clone()} />
        </div>
    }
}
