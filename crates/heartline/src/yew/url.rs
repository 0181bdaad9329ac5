//! Socket URLs relative to the page.

/// Resolves a socket URL against a page location: an absolute `ws:`/`wss:`
/// URL is kept, `http(s):` becomes `ws(s):`, and a path (`/ws`) is put on the
/// page's host with `wss:` on an `https:` page and `ws:` otherwise.
///
/// ```
/// use heartline::yew::resolve_socket_url;
/// assert_eq!(resolve_socket_url("/ws", "https:", "example.com"), "wss://example.com/ws");
/// assert_eq!(resolve_socket_url("/ws", "http:", "127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
/// assert_eq!(resolve_socket_url("ws://other:1/ws", "https:", "example.com"), "ws://other:1/ws");
/// assert_eq!(resolve_socket_url("https://api.example.com/ws", "http:", "x"), "wss://api.example.com/ws");
/// ```
pub fn resolve_socket_url(url: &str, page_protocol: &str, page_host: &str) -> String {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        return url.to_owned();
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return format!("wss://{rest}");
    }
    if let Some(rest) = url.strip_prefix("http://") {
        return format!("ws://{rest}");
    }
    let scheme = if page_protocol == "https:" {
        "wss"
    } else {
        "ws"
    };
    let path = if url.starts_with('/') {
        url.to_owned()
    } else {
        format!("/{url}")
    };
    format!("{scheme}://{page_host}{path}")
}

/// [`resolve_socket_url`] against the current page (`window.location`).
/// Outside a browser window the URL is returned as given.
///
/// ```no_run
/// let url = heartline::yew::resolve_against_page("/ws");
/// assert!(url.starts_with("ws"));
/// ```
pub fn resolve_against_page(url: &str) -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return url.to_owned();
    };
    let protocol = location.protocol().unwrap_or_default();
    let host = location.host().unwrap_or_default();
    resolve_socket_url(url, &protocol, &host)
}
