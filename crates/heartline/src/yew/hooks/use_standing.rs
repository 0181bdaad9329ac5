use serde::Serialize;
use yew::prelude::*;

use crate::core::SendError;
use crate::yew::error::SocketError;
use crate::yew::hooks::use_socket;

/// A standing subscription bound to the component's life: on mount,
/// `subscribe` becomes a standing message of the nearest provider under
/// `key` (sent at once if the link is open, and again after every
/// reconnect; with `stream`, the core fills in `since`, and `epoch` when
/// known, from the last message delivered on that stream, so the server
/// sends only what was missed). On unmount, or when `key`, `subscribe`,
/// `leave` or `stream` change, it is removed and `leave` (if any) is sent
/// as a volatile message, only while the link is open: a closed link means
/// the server already forgot the membership. The stream's position is
/// forgotten too, so a component mounted later starts from what the server
/// sends first (its recent history) instead of skipping it as seen.
///
/// A `subscribe` frame the core refuses (not an object with a
/// `socketType`, too large) is reported to the provider's `on_error` as
/// [`SocketError::Standing`].
///
/// ```no_run
/// use heartline::yew::use_standing;
/// use yew::prelude::*;
///
/// #[derive(serde::Serialize, Clone, PartialEq)]
/// #[serde(tag = "socketType")]
/// enum Client {
///     #[serde(rename = "join")]
///     Join { room: String, since: Option<u64>, epoch: Option<u64> },
///     #[serde(rename = "leave")]
///     Leave { room: String },
/// }
///
/// #[derive(Properties, PartialEq)]
/// struct RoomProps { room: String }
///
/// #[function_component(Room)]
/// fn room(props: &RoomProps) -> Html {
///     let room = props.room.clone();
///     use_standing(
///         &format!("room:{room}"),
///         Client::Join { room: room.clone(), since: None, epoch: None },
///         Some(Client::Leave { room: room.clone() }),
///         Some(&room),
///     );
///     html! { <h2>{ room }</h2> }
/// }
/// ```
#[hook]
pub fn use_standing<T, U>(key: &str, subscribe: T, leave: Option<U>, stream: Option<&str>)
where
    T: Serialize + PartialEq + Clone + 'static,
    U: Serialize + PartialEq + Clone + 'static,
{
    let socket = use_socket();
    let driver = socket.driver_ptr() as usize;
    let deps = (
        driver,
        key.to_owned(),
        subscribe,
        leave,
        stream.map(str::to_owned),
    );
    use_effect_with(deps, move |(_, key, subscribe, leave, stream)| {
        let added = serde_json::to_value(subscribe)
            .map_err(|_| SendError::NotAnObject)
            .and_then(|frame| {
                let leave = leave
                    .as_ref()
                    .and_then(|leave| serde_json::to_value(leave).ok());
                socket.add_standing_with_leave(key.clone(), frame, stream.clone(), leave)
            });
        if let Err(error) = &added {
            socket.report(SocketError::Standing {
                key: key.clone(),
                error: error.clone(),
            });
        }
        let leave = leave
            .as_ref()
            .and_then(|leave| serde_json::to_value(leave).ok());
        let key = key.clone();
        let stream = stream.clone();
        move || {
            if added.is_err() {
                return;
            }
            // The component that followed the stream is gone; a later one
            // starts from the server's recent history, not from here. The
            // leave is volatile: it must not wait for (or replay on) a later
            // link, where the server no longer has the membership; lost
            // when refused (congested, over the rate), and the next join
            // starts afresh.
            socket.leave_standing(&key, stream, leave);
        }
    });
}
