//! Where the app's socket points, settable without rebuilding.

use heartline::core::Endpoints;

/// The name of the `<meta>` tag that sets the socket URL of a deployed app:
/// `<meta name="heartline-ws" content="wss://chat.example.com/ws">` in
/// `index.html` (or in the built `dist/index.html`); several servers of one
/// deployment are separated by commas (see [`socket_urls`]).
pub const SOCKET_URL_META: &str = "heartline-ws";

/// The socket servers the app uses: URLs in failover order, and where they
/// came from.
///
/// ```
/// use heartline_app::config::SocketUrls;
/// let servers = SocketUrls::choose(None, Some("wss://a.example/ws, wss://b.example/ws"), None);
/// assert_eq!(servers.urls, ["wss://a.example/ws", "wss://b.example/ws"]);
/// assert!(!servers.from_link);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketUrls {
    /// The URLs as written (relative ones are resolved by the socket
    /// provider), in failover order; never empty.
    pub urls: Vec<String>,
    /// They came from `?ws=` in the page address, which anyone can put in
    /// a link (see [`StorageKeys`](crate::session::StorageKeys)).
    pub from_link: bool,
}

impl SocketUrls {
    /// The first non-empty comma-separated list of: the `?ws=` parameter,
    /// the `<meta name="heartline-ws">` content, the build-time
    /// `HEARTLINE_WS_URL`; else `/ws`. Entries are trimmed and empty ones
    /// skipped, so `?ws=,` falls through to the next setting.
    ///
    /// ```
    /// use heartline_app::config::SocketUrls;
    /// let link = SocketUrls::choose(Some("ws://127.0.0.1:3001/ws,ws://127.0.0.1:3002/ws"), Some("wss://x/ws"), None);
    /// assert_eq!(link.urls, ["ws://127.0.0.1:3001/ws", "ws://127.0.0.1:3002/ws"]);
    /// assert!(link.from_link);
    /// let built = SocketUrls::choose(Some(" , "), None, Some("wss://one.example/ws"));
    /// assert_eq!((built.urls, built.from_link), (vec!["wss://one.example/ws".to_owned()], false));
    /// assert_eq!(SocketUrls::choose(None, None, None).urls, ["/ws"]);
    /// ```
    pub fn choose(link: Option<&str>, meta: Option<&str>, build: Option<&str>) -> SocketUrls {
        let parse = |list: Option<&str>| {
            list.map(|list| Endpoints::parse(list).urls().to_vec())
                .filter(|urls| !urls.is_empty())
        };
        if let Some(urls) = parse(link) {
            return SocketUrls {
                urls,
                from_link: true,
            };
        }
        SocketUrls {
            urls: parse(meta)
                .or_else(|| parse(build))
                .unwrap_or_else(|| vec!["/ws".to_owned()]),
            from_link: false,
        }
    }
}

/// The socket servers the app uses, in failover order: a comma-separated
/// list, from the first of these that is set:
/// 1. `?ws=<url>[,<url>…]` in the page address (handy for development; the
///    session token and the saved outbox are kept per server origin, so
///    such a link never receives another server's token);
/// 2. the `<meta name="heartline-ws">` tag of the page, set at deploy time
///    (`content="wss://a.example/ws, wss://b.example/ws"`: several servers
///    of one deployment, sharing rooms);
/// 3. `HEARTLINE_WS_URL` at build time;
/// 4. `/ws` on the page's own host (the demo server serves both, and
///    `trunk serve` proxies `/ws` to it).
///
/// The app starts on the first and fails over to the next when a server is
/// gone (see [`heartline::core::Endpoints`]). Relative URLs are resolved by
/// the socket provider.
///
/// ```no_run
/// let servers = heartline_app::config::socket_urls();
/// assert!(!servers.urls.is_empty());
/// ```
pub fn socket_urls() -> SocketUrls {
    SocketUrls::choose(
        query_param("ws").as_deref(),
        meta_content(SOCKET_URL_META).as_deref(),
        option_env!("HEARTLINE_WS_URL"),
    )
}

/// The first of [`socket_urls`]: the server the app starts on.
///
/// ```no_run
/// let url = heartline_app::config::socket_url();
/// assert!(!url.is_empty());
/// ```
pub fn socket_url() -> String {
    socket_urls()
        .urls
        .into_iter()
        .next()
        .unwrap_or_else(|| "/ws".to_owned())
}

/// How the app's tabs share one connection: on by default, one group per
/// list of servers (named like the saved outbox). `?share=off` gives the
/// tab a connection of its own; `?share=broadcast` elects the leader over
/// BroadcastChannel only, as in browsers without Web Locks.
pub fn share_options(scope: &str) -> Option<heartline::yew::ShareOptions> {
    let mut options = heartline::yew::ShareOptions::new(scope.to_owned());
    match query_param("share").as_deref() {
        Some("off") => return None,
        Some("broadcast") => options.election = heartline::yew::Election::BroadcastOnly,
        _ => {}
    }
    Some(options)
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
