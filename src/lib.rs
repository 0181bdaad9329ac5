//! The Heartline single-page app: a live chat and a live dashboard on the
//! `heartline` socket layer. `main.rs` only mounts [`app::App`]; everything
//! lives here so the component tests in `tests/` can render it.
//!
//! Layout, as in Yew's own examples: `pages/` (one per route), `components/`
//! (render from props or one hook), `hooks/` (one per file, returning a
//! handle), and the app's view of the wire protocol in [`messages`].

pub mod app;
pub mod components;
pub mod config;
pub mod format;
pub mod hooks;
pub mod messages;
pub mod pages;
pub mod route;
pub mod session;
pub mod storage;
pub mod time;
