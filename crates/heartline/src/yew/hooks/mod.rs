//! Hooks over the nearest [`SocketProvider`](super::SocketProvider).

mod use_heartbeat;
mod use_socket;
mod use_socket_handler;
mod use_subscription;

pub use use_heartbeat::{HeartbeatInfo, use_heartbeat};
pub use use_socket::{SocketHandle, use_socket, use_socket_checked};
pub use use_socket_handler::use_socket_handler;
pub use use_subscription::{SocketMessage, use_subscription};
