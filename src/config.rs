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

/// The name of the `<meta>` tag that tunes the socket layer without
/// rebuilding: `key=value` pairs separated by commas or spaces, e.g.
/// `<meta name="heartline-config" content="heartbeat_ms=2000 timeout_ms=1000 max_retries=3">`.
pub const SOCKET_CONFIG_META: &str = "heartline-config";

/// The socket layer's configuration: its defaults, with the settings of the
/// `<meta name="heartline-config">` tag applied (see [`apply_settings`]).
pub fn socket_config() -> heartline::core::Config {
    let mut config = heartline::core::Config::default();
    if let Some(settings) = meta_content(SOCKET_CONFIG_META) {
        apply_settings(&mut config, &settings);
    }
    config
}

/// Applies `key=value` settings to `config`; unknown keys and bad values
/// are skipped (a typo must not break the app):
///
/// | key | sets |
/// |---|---|
/// | `heartbeat_ms` | ping after this long without a frame |
/// | `timeout_ms` | declare the link dead this long after the ping |
/// | `max_retries` | give up after this many failed attempts (`none`: never) |
/// | `backoff_base_ms`, `backoff_cap_ms` | first retry delay and its cap |
/// | `connect_timeout_ms` | give up on one attempt after this long |
///
/// ```
/// use heartline_app::config::apply_settings;
/// let mut config = heartline::core::Config::default();
/// apply_settings(&mut config, "heartbeat_ms=2000, timeout_ms=1000 max_retries=3 bogus=1 backoff_cap_ms=x");
/// assert_eq!(config.heartbeat.interval, 2000);
/// assert_eq!(config.heartbeat.timeout, 1000);
/// assert_eq!(config.max_retries, Some(3));
/// assert_eq!(config.backoff.cap, heartline::core::Config::default().backoff.cap);
/// ```
pub fn apply_settings(config: &mut heartline::core::Config, settings: &str) {
    for pair in settings.split([',', ' ', '\n']).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let number = value.trim().parse::<u64>().ok();
        match (key.trim(), number) {
            ("heartbeat_ms", Some(ms)) => config.heartbeat.interval = ms,
            ("timeout_ms", Some(ms)) => config.heartbeat.timeout = ms,
            ("max_retries", Some(n)) => config.max_retries = u32::try_from(n).ok(),
            ("max_retries", None) if value.trim() == "none" => config.max_retries = None,
            ("backoff_base_ms", Some(ms)) => config.backoff.base = ms,
            ("backoff_cap_ms", Some(ms)) => config.backoff.cap = ms,
            ("connect_timeout_ms", Some(ms)) => config.connect_timeout = ms,
            _ => {}
        }
    }
}
