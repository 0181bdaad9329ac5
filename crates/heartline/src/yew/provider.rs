//! `<SocketProvider>`: owns one connection and shares it through a context.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use serde_json::Value;
use yew::prelude::*;

use crate::core::{Config, ConnectionStatus, DeliveryState, MessageId};

use super::ShareOptions;
use super::driver::{Driver, Notice};
use super::error::SocketError;
use super::url::resolve_against_page;

/// Most message states remembered for `SocketHandle::message_state`; the
/// oldest finished ones are forgotten first.
const REMEMBERED_MESSAGE_STATES: usize = 1_000;

/// Props of [`SocketProvider`].
///
/// ```
/// use heartline::core::Config;
/// use heartline::yew::SocketProviderProps;
/// use yew::prelude::*;
///
/// let props = yew::props!(SocketProviderProps {
///     url: AttrValue::from("/ws"),
///     config: Config { max_retries: Some(20), ..Config::default() },
/// });
/// assert_eq!(props.url, "/ws");
/// assert!(props.fallback_urls.is_empty());
///
/// // Two servers of one deployment: the second takes over when the first is gone.
/// let props = yew::props!(SocketProviderProps {
///     url: AttrValue::from("wss://a.example/ws"),
///     fallback_urls: vec![AttrValue::from("wss://b.example/ws")],
/// });
/// assert_eq!(props.fallback_urls.len(), 1);
/// ```
#[derive(Properties, PartialEq, Debug)]
pub struct SocketProviderProps {
    /// The socket URL: absolute (`wss://…`) or relative to the page (`/ws`,
    /// which becomes `ws(s)://<page host>/ws`). Changing it starts a new
    /// connection; unsent messages move over to it.
    pub url: AttrValue,
    /// Further servers of the same deployment (sharing rooms and
    /// identities), tried after `url` in this order, resolved the same way.
    /// The connection starts on `url`, stays on a server while it works and,
    /// after a failed attempt or a lost link, moves to the next one (round
    /// robin) with the backoff going on unchanged; rooms resume with `since`
    /// and the outbox is re-sent, as after any reconnect (see
    /// [`Endpoints`](crate::core::Endpoints)). Changing the list starts a new
    /// connection.
    #[prop_or_default]
    pub fallback_urls: Vec<AttrValue>,
    /// The connection policy. Changing it starts a new connection too.
    #[prop_or_default]
    pub config: Config,
    /// Builds the greeting sent first on every (re)connect, called afresh for
    /// each attempt so a renewed token is used. `None` (or returning `None`)
    /// sends no greeting.
    #[prop_or_default]
    pub greeting: Option<Callback<(), Option<Value>>>,
    /// Receives every frame the layer rejected and every decode failure.
    #[prop_or_default]
    pub on_error: Option<Callback<SocketError>>,
    /// A localStorage key under which unsent messages are kept, so a reload
    /// (or a crash) loses nothing typed: they are restored on mount and go out
    /// once, with their original ids. `None` keeps them in memory only. For
    /// the server to recognise a re-sent id after a reload, the greeting
    /// must present the same identity (e.g. a token kept in localStorage).
    #[prop_or_default]
    pub persist_key: Option<AttrValue>,
    /// Shares one connection between the tabs of this origin that use the
    /// same [`ShareOptions::name`]: they elect a leader (Web Locks, or a
    /// BroadcastChannel protocol where locks are missing), only the leader
    /// opens a link, and the others send and receive through it with the
    /// same hooks and message states. Subscriptions are the union over the
    /// tabs; each tab receives the frames of the streams it subscribed to
    /// and every frame of no stream. When the leader closes or crashes,
    /// another tab takes over at once and reconnects. With `persist_key`,
    /// each tab saves its own unsent messages under
    /// `<persist_key>#tab:<id>`, and the leader adopts those of tabs that are
    /// gone: nothing is lost and every message goes out once. `None` (the
    /// default) gives every tab its own connection.
    #[prop_or_default]
    pub share: Option<ShareOptions>,
    /// The components that use the socket.
    #[prop_or_default]
    pub children: Html,
}

/// Renderable state of a provider: changes re-render its consumers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SocketView {
    pub(crate) status: ConnectionStatus,
    pub(crate) messages: HashMap<MessageId, DeliveryState>,
    /// Finished (acked/failed) ids, oldest first, for forgetting.
    finished: VecDeque<MessageId>,
    pub(crate) last_error: Option<SocketError>,
    /// Which tab leads a shared connection.
    pub(crate) share: Option<super::ShareInfo>,
    /// Timeline entries ever logged: a new entry changes the context.
    pub(crate) timeline_version: u64,
    /// Bumped on every change: consumers compare it instead of the maps.
    pub(crate) version: u64,
}

impl Reducible for SocketView {
    type Action = Notice;

    fn reduce(self: Rc<Self>, notice: Notice) -> Rc<Self> {
        let mut next = (*self).clone();
        next.version += 1;
        match notice {
            Notice::Status(status) => next.status = status,
            Notice::Message(id, state) => {
                if state.is_final() {
                    next.finished.push_back(id.clone());
                    if next.finished.len() > REMEMBERED_MESSAGE_STATES
                        && let Some(forget) = next.finished.pop_front()
                    {
                        next.messages.remove(&forget);
                    }
                }
                next.messages.insert(id, state);
            }
            Notice::Error(error) => next.last_error = Some(error),
            Notice::Timeline(version) => next.timeline_version = version,
            Notice::Share(info) => next.share = Some(info),
            Notice::OutboxChanged => {}
        }
        Rc::new(next)
    }
}

/// What [`SocketProvider`] puts in the Yew context. Use the hooks
/// ([`use_socket`](super::use_socket) and friends) rather than this type.
#[derive(Clone, Debug)]
pub(crate) struct SocketContext {
    pub(crate) driver: Rc<Driver>,
    pub(crate) view: UseReducerHandle<SocketView>,
    /// The view's version when this context was made: a reducer handle
    /// always reads the newest state, so old and new contexts can only be
    /// told apart by a copy taken at render time.
    version: u64,
}

impl PartialEq for SocketContext {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.driver, &other.driver) && self.version == other.version
    }
}

/// Owns one WebSocket connection (through the sans-IO core) and shares it
/// with every component below it. Several providers with different URLs can
/// live in one app; each hook talks to its nearest provider.
///
/// ```no_run
/// use heartline::yew::{ConnectionBanner, SocketProvider};
/// use yew::prelude::*;
///
/// #[function_component(App)]
/// fn app() -> Html {
///     html! {
///         <SocketProvider url="/ws">
///             <ConnectionBanner />
///             // chat, dashboard, … use `use_socket()` and `use_subscription()`
///         </SocketProvider>
///     }
/// }
/// ```
#[function_component(SocketProvider)]
pub fn socket_provider(props: &SocketProviderProps) -> Html {
    let view = use_reducer(SocketView::default);
    let driver = use_memo(
        (
            props.url.clone(),
            props.fallback_urls.clone(),
            props.config.clone(),
        ),
        |(url, fallback_urls, config)| {
            let urls = std::iter::once(url)
                .chain(fallback_urls)
                .map(|url| resolve_against_page(url))
                .collect();
            Driver::new(urls, config.clone())
        },
    );
    // Unsent messages of a replaced connection (new url or config) move over.
    let carried_outbox = use_mut_ref(|| None::<String>);

    // Latest greeting and error callbacks, read when needed: a new closure
    // on every render must not restart anything.
    driver.set_greeting(props.greeting.clone());
    let on_error = use_mut_ref(|| None::<Callback<SocketError>>);
    *on_error.borrow_mut() = props.on_error.clone();

    {
        let dispatcher = view.dispatcher();
        let carried_outbox = carried_outbox.clone();
        let on_error = on_error.clone();
        let deps = (
            Rc::clone(&*driver),
            props.persist_key.clone(),
            props.share.clone(),
        );
        use_effect_with(deps, move |(driver, persist_key, share)| {
            *driver.persist_key.borrow_mut() = persist_key.as_deref().map(str::to_owned);
            let weak = Rc::downgrade(driver);
            let save_to = persist_key.clone();
            let notify = Callback::from(move |notice: Notice| {
                match &notice {
                    Notice::Error(error) => {
                        let callback = on_error.borrow().clone();
                        if let Some(callback) = callback {
                            callback.emit(error.clone());
                        }
                    }
                    // Every change of the outbox is saved at once: a reload
                    // may come at any moment.
                    Notice::Message(..) | Notice::OutboxChanged => {
                        if let (Some(key), Some(driver)) = (&save_to, weak.upgrade()) {
                            save_outbox(key, &driver);
                        }
                    }
                    Notice::Status(_) | Notice::Timeline(_) | Notice::Share(_) => {}
                }
                dispatcher.dispatch(notice);
            });
            driver.start(notify, share.as_ref());
            // Unsent messages of the connection this one replaces, else those
            // saved by an earlier page (with a shared connection, the leader
            // adopts those: this tab's key is new).
            let carried = carried_outbox.borrow_mut().take();
            let saved = carried.or_else(|| {
                if share.is_some() {
                    return None;
                }
                persist_key.as_deref().and_then(load_outbox)
            });
            if let Some(Err(error)) = saved.map(|json| driver.restore_outbox(&json)) {
                warn(&format!(
                    "heartline: could not restore unsent messages: {error}"
                ));
            }
            let driver = Rc::clone(driver);
            let persist_key = persist_key.clone();
            move || {
                if let Some(key) = &persist_key {
                    save_outbox(key, &driver);
                }
                *carried_outbox.borrow_mut() = Some(driver.export_outbox());
                driver.shutdown();
            }
        });
    }

    let context = SocketContext {
        driver: Rc::clone(&*driver),
        version: view.version,
        view,
    };
    html! {
        <ContextProvider<SocketContext> context={context}>
            { props.children.clone() }
        </ContextProvider<SocketContext>>
    }
}

/// The page's localStorage, where the browser allows it.
pub(crate) fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

fn load_outbox(key: &str) -> Option<String> {
    local_storage().and_then(|storage| storage.get_item(key).ok().flatten())
}

/// Writes the unsent messages under `key`, or removes the key when there are
/// none. Storage may be full or disabled (private mode): the messages then
/// live in memory only, which is said once per failure in the console.
fn save_outbox(key: &str, driver: &Driver) {
    let Some(storage) = local_storage() else {
        return;
    };
    // A tab sharing its connection saves only its own messages, under its
    // own key.
    let own_key = driver.own_storage_key(key);
    let key = own_key.as_deref().unwrap_or(key);
    let result = if driver.outbox_is_empty() {
        storage.remove_item(key)
    } else {
        storage.set_item(key, &driver.export_outbox())
    };
    if result.is_err() {
        warn("heartline: could not save unsent messages to localStorage");
    }
}

fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}
