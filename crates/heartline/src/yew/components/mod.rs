//! Components of the socket layer.

mod connection_banner;

pub use connection_banner::{ConnectionBanner, ConnectionBannerProps};
