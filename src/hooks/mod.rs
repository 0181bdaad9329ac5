//! The app's own hooks, one per file, each returning a handle.

pub mod use_display_name;
pub mod use_last_read;
pub mod use_room;
pub mod use_room_directory;
pub mod use_typing;
