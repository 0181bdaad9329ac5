//! Where the app's socket points.

/// The socket URL the app uses: `?ws=<url>` in the page address wins, then the
/// `HEARTLINE_WS_URL` set at build time, then `/ws` on the page's own host (the
/// demo server serves both, and `trunk serve` proxies `/ws` to it). Relative
/// URLs are resolved by the socket provider.
///
/// ```no_run
/// let url = heartline_app::config::socket_url();
/// assert!(!url.is_empty());
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
    from_query
        .or_else(|| option_env!("HEARTLINE_WS_URL").map(str::to_owned))
        .unwrap_or_else(|| "/ws".to_owned())
}
