//! The Heartline single-page app: a live chat and a live dashboard on the
//! `heartline` socket layer. `main.rs` only mounts [`app::App`]; everything
//! lives here so the component tests in `tests/` can render it.

pub mod app;
pub mod components;
pub mod config;
