//! One component per route.

pub mod chat;
pub mod connection;
pub mod dashboard;
