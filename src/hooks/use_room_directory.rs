use std::rc::Rc;

use heartline::yew::use_subscription;
use heartline_protocol::RoomSummary;
use yew::prelude::*;

use crate::messages::Rooms;

/// The live room directory the server sends after `welcome` and whenever it
/// changes (created, expired, who is in, the newest `seq`).
#[hook]
pub fn use_room_directory() -> Rc<Vec<RoomSummary>> {
    let rooms = use_state(|| Rc::new(Vec::<RoomSummary>::new()));
    {
        let rooms = rooms.clone();
        use_subscription::<Rooms, _>(move |Rooms(update)| {
            let mut list = update.rooms;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            rooms.set(Rc::new(list));
        });
    }
    (*rooms).clone()
}
