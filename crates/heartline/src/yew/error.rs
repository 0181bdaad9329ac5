//! Errors the Yew bindings report to the app, never as a panic.

use crate::core::{Report, SendError};

/// Something the socket layer could not use: a frame the core rejected (see
/// [`Report`]), or a message a typed subscription could not decode. The
/// provider's `on_error` callback receives each one; nothing is thrown.
///
/// ```
/// use heartline::yew::SocketError;
/// let err = SocketError::Decode {
///     socket_type: "chat.message".into(),
///     message: "missing field `seq`".into(),
/// };
/// assert_eq!(
///     err.to_string(),
///     "could not decode a \"chat.message\" message: missing field `seq`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SocketError {
    /// The core dropped or flagged an inbound frame (malformed JSON, no
    /// `socketType`, unknown type, oversized, duplicate, gap, …).
    #[error("socket layer report: {0:?}")]
    Report(Report),
    /// A standing subscription ([`use_standing`](super::use_standing)) was
    /// refused by the core: its frame is not an object with a
    /// `socketType`, or is too large.
    #[error("standing subscription {key:?} refused: {error}")]
    Standing {
        /// The subscription's key.
        key: String,
        /// Why.
        error: SendError,
    },
    /// A typed subscriber's message did not match its Rust type.
    #[error("could not decode a {socket_type:?} message: {message}")]
    Decode {
        /// The message's `socketType`.
        socket_type: String,
        /// serde's explanation.
        message: String,
    },
}

/// A socket hook was used outside a `<SocketProvider>`.
///
/// ```
/// use heartline::yew::NoProviderError;
/// assert!(NoProviderError.to_string().contains("<SocketProvider>"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "heartline: socket hooks (use_socket, use_subscription, use_socket_handler, use_heartbeat) \
     and <ConnectionBanner/> must be used inside a <SocketProvider>; none was found above this \
     component"
)]
pub struct NoProviderError;
