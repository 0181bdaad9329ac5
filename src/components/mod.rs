//! The app's components: each renders from props or from one hook.

pub mod app_header;
pub mod chart;
pub mod composer;
pub mod connection_panel;
pub mod message_list;
pub mod name_prompt;
pub mod room_list;
pub mod room_view;
pub mod sparkline;
pub mod timeline;
pub mod typing_indicator;
