//! Where the app's socket points.

/// The socket URL the app uses: `?ws=<url>` in the page address wins, then the
/// `HEARTLINE_WS_URL` set at build time, then `/ws` on the page's own host (the
/// demo server serves both, and `trunk serve` proxies `/ws` to it).
///
/// ```no_run
/// let url = heartline_app::config::socket_url();
/// assert!(url.starts_with("ws"));
/// ```
pub fn socket_url() -> String {
    let from_query = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|search| {
            search
                .trim_start_matches('?')
                .split('&')
                .find_map(|pair| pair.strip_prefix("ws=").map(str::to_owned))
        })
        .and_then(|raw| js_sys::decode_uri_component(&raw).ok())
        .map(String::from);
    let chosen = from_query
        .or_else(|| option_env!("HEARTLINE_WS_URL").map(str::to_owned))
        .unwrap_or_else(|| "/ws".to_owned());
    resolve_ws_url(&chosen)
}

/// Resolves a relative socket path (`/ws`) against the page, with `wss:` on an
/// `https:` page and `ws:` otherwise; absolute `ws:`/`wss:` URLs pass through.
pub fn resolve_ws_url(url: &str) -> String {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        return url.to_owned();
    }
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return url.to_owned();
    };
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss:",
        _ => "ws:",
    };
    let host = location.host().unwrap_or_default();
    format!("{scheme}//{host}{url}")
}
