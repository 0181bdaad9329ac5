//! Heartline: a resilient WebSocket layer for Yew.
//!
//! - [`core`]: a sans-IO state machine that holds every connection policy
//!   (backoff, heartbeat, outbox, resume). It has no browser, timer or I/O
//!   dependency and is tested natively with a virtual clock.
//! - `yew` (feature `yew`): the browser driver and the hooks components use.
//! - `native` (feature `tokio`): the same core on tokio and tokio-tungstenite,
//!   for bots, command-line clients, services and load generators.

pub mod core;

#[cfg(feature = "yew")]
pub mod yew;

#[cfg(feature = "tokio")]
pub mod native;
