//! `<SocketProvider>`: owns one connection and shares it through a context.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;
use yew::prelude::*;

use crate::core::{Config, ConnectionStatus, DeliveryState, MessageId};

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
///     config: Config { max_retries: None, ..Config::default() },
/// });
/// assert_eq!(props.url, "/ws");
/// ```
#[derive(Properties, PartialEq, Debug)]
pub struct SocketProviderProps {
    /// The socket URL: absolute (`wss://…`) or relative to the page (`/ws`,
    /// which becomes `ws(s)://<page host>/ws`). Changing it starts a new
    /// connection; unsent messages move over to it.
    pub url: AttrValue,
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
    finished: Vec<MessageId>,
    pub(crate) last_error: Option<SocketError>,
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
                    next.finished.push(id.clone());
                    if next.finished.len() > REMEMBERED_MESSAGE_STATES {
                        let forget = next.finished.remove(0);
                        next.messages.remove(&forget);
                    }
                }
                next.messages.insert(id, state);
            }
            Notice::Error(error) => next.last_error = Some(error),
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
        (props.url.clone(), props.config.clone()),
        |(url, config)| Driver::new(resolve_against_page(url), config.clone()),
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
        use_effect_with(Rc::clone(&*driver), move |driver| {
            let notify = Callback::from(move |notice: Notice| {
                if let Notice::Error(error) = &notice {
                    let callback = on_error.borrow().clone();
                    if let Some(callback) = callback {
                        callback.emit(error.clone());
                    }
                }
                dispatcher.dispatch(notice);
            });
            driver.start(notify);
            let carried = carried_outbox.borrow_mut().take();
            if let Some(Err(error)) = carried.map(|json| driver.restore_outbox(&json)) {
                warn(&format!(
                    "heartline: could not carry unsent messages over: {error}"
                ));
            }
            let driver = Rc::clone(driver);
            move || {
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

fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}
