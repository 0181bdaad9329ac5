//! Where the app's socket points, settable without rebuilding.

/// The name of the `<meta>` tag that sets the socket URL of a deployed app:
/// `<meta name="heartline-ws" content="wss://chat.example.com/ws">` in
/// `index.html` (or in the built `dist/index.html`).
pub const SOCKET_URL_META: &str = "heartline-ws";

/// The socket URL the app uses, first found of:
/// 1. `?ws=<url>` in the page address (handy for development; the session
///    token and the saved outbox are kept per server origin, so such a link
///    never receives another server's token);
/// 2. the `<meta name="heartline-ws">` tag of the page, set at deploy time;
/// 3. `HEARTLINE_WS_URL` at build time;
/// 4. `/ws` on the page's own host (the demo server serves both, and
///    `trunk serve` proxies `/ws` to it).
///
/// Relative URLs are resolved by the socket provider.
///
/// ```no_run
/// let url = heartline_app::config::socket_url();
/// assert!(!url.is_empty());
/// ```
pub fn socket_url() -> String {
    query_param("ws")
        .or_else(|| meta_content(SOCKET_URL_META))
        .or_else(|| option_env!("HEARTLINE_WS_URL").map(str::to_owned))
        .unwrap_or_else(|| "/ws".to_owned())
}

fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let raw = search.trim_start_matches('?').split('&').find_map(|pair| {
        pair.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_owned)
    })?;
    js_sys::decode_uri_component(&raw).ok().map(String::from)
}

/// The trimmed, non-empty `content` of `<meta name="{name}">`.
pub fn meta_content(name: &str) -> Option<String> {
    let document = web_sys::window()?.document()?;
    let meta = document
        .query_selector(&format!("meta[name=\"{name}\"]"))
        .ok()??;
    let content = meta.get_attribute("content")?;
    let content = content.trim();
    (!content.is_empty()).then(|| content.to_owned())
}
