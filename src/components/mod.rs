//! Components of the app.

pub mod connection_panel;
