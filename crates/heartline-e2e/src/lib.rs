//! Whole-app test infrastructure for Heartline: the real release server and
//! the fault proxy as child processes ([`Stack`]), and headless Chromium
//! driven over WebDriver ([`Browser`]).
//!
//! ```no_run
//! # async fn run() -> heartline_e2e::Result<()> {
//! use std::time::Duration;
//! use heartline_e2e::{Browser, ProxyMode, Stack, StackOptions};
//!
//! let stack = Stack::start(StackOptions::new("dist")).await?;
//! let browser = Browser::start().await?;
//! browser.goto(&stack.app_url("/")).await?;
//! browser.wait_for(".hl-banner", Duration::from_secs(10)).await?;
//! stack.set_mode(ProxyMode::Cut).await?;
//! browser
//!     .wait_for(r#".hl-banner[data-status="reconnecting"]"#, Duration::from_secs(10))
//!     .await?;
//! browser.screenshot("reconnecting.png").await?;
//! browser.quit().await?;
//! # Ok(()) }
//! ```
//!
//! Every wait polls against a deadline; nothing sleeps a fixed time to wait
//! for a condition. Everything started here is loopback-only and is killed
//! when its owner is dropped.

#![warn(missing_docs)]

mod browser;
mod error;
mod http;
mod stack;

pub use browser::THROTTLING_SWITCHES;
pub use browser::{Browser, BrowserOptions, CHROMIUM_ARGS, ColorScheme};
pub use error::{Error, Result};
pub use http::{HttpResponse, http_request};
pub use stack::{Db, ProxyMode, Stack, StackOptions};
/// A window of a [`Browser`] session (chromedriver uses the page's DevTools
/// target id).
pub use thirtyfour::WindowHandle;

/// How often conditions are polled.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A free loopback port, found by binding port 0 and letting it go. Another
/// process may take it before it is used; callers retry on a failed bind.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::io("binding a free loopback port", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading a bound port", e))?;
    Ok(addr.port())
}
