//! The browser half of the socket layer (feature `yew`): a thin driver that
//! feeds the sans-IO [`core`](crate::core) from a real WebSocket (or HTTP
//! long-polling where the upgrade is refused), real timers
//! and the page's `online`/`offline`/`visibilitychange` events, and the Yew
//! API components use:
//!
//! - [`SocketProvider`]: owns one connection, shared through a context;
//! - [`use_socket`]: send (reliable or volatile), follow a message's state,
//!   status, stats, retry, close;
//! - [`use_subscription`] / [`use_socket_handler`]: the callback registry
//!   keyed by `socketType`, registered on mount and removed on unmount;
//! - [`use_standing`]: a standing subscription (room join, metrics
//!   subscription) bound to a component's life, replayed after every
//!   reconnect with `since`/`epoch`, left on unmount;
//! - [`use_latest_message`] / [`use_message_fold`]: coalescing
//!   subscriptions that re-render at most once per animation frame;
//! - [`use_heartbeat`] / [`use_rtt_history`]: round-trip time and liveness;
//! - [`ConnectionBanner`]: the connection's state for people;
//! - [`ShareOptions`]: one connection per browser, not per tab (the tabs
//!   elect a leader that holds the socket; see [`crate::core::share`]).

mod components;
mod driver;
mod error;
mod hooks;
mod poll;
mod probe;
mod provider;
mod share;
mod url;

pub use components::{ConnectionBanner, ConnectionBannerProps};
pub use driver::SocketCounts;
pub use error::{NoProviderError, SocketError};
pub use hooks::{
    HeartbeatInfo, SocketHandle, SocketMessage, use_heartbeat, use_latest_message,
    use_message_fold, use_rtt_history, use_socket, use_socket_checked, use_socket_handler,
    use_standing, use_subscription,
};
pub use provider::{SocketProvider, SocketProviderProps};
pub use share::{Election, ShareInfo, ShareOptions};
pub use url::{resolve_against_page, resolve_socket_url};
