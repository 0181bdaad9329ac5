//! The app's addresses. Real paths, so reload, deep links and back work; the
//! demo server answers every path without a file extension with the app.

use yew_router::prelude::*;

/// The room shown at `/` and `/chat`.
pub const DEFAULT_ROOM: &str = "lobby";

/// A page of the app.
#[derive(Clone, Debug, PartialEq, Routable)]
pub enum Route {
    /// `/`: the chat's default room.
    #[at("/")]
    Home,
    /// `/chat`: the chat's default room.
    #[at("/chat")]
    ChatHome,
    /// `/chat/:room`: one room.
    #[at("/chat/:room")]
    Chat {
        /// Room name, as in the URL.
        room: String,
    },
    /// `/dashboard`: live metrics of the server and its host.
    #[at("/dashboard")]
    Dashboard,
    /// `/connection`: the socket inspector.
    #[at("/connection")]
    Connection,
    /// Anything else.
    #[not_found]
    #[at("/404")]
    NotFound,
}
