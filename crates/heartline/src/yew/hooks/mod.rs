//! Hooks over the nearest [`SocketProvider`](super::SocketProvider).

mod frame;
mod use_heartbeat;
mod use_latest_message;
mod use_message_fold;
mod use_rtt_history;
mod use_socket;
mod use_socket_handler;
mod use_standing;
mod use_subscription;

pub use use_heartbeat::{HeartbeatInfo, use_heartbeat};
pub use use_latest_message::use_latest_message;
pub use use_message_fold::use_message_fold;
pub use use_rtt_history::use_rtt_history;
pub use use_socket::{SocketHandle, use_socket, use_socket_checked};
pub use use_socket_handler::use_socket_handler;
pub use use_standing::use_standing;
pub use use_subscription::{SocketMessage, use_subscription};
