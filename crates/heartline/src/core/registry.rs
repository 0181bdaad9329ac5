//! Handlers keyed by `socketType`. Separate from the machine: the driver feeds
//! it the machine's `Deliver` actions, components subscribe and unsubscribe.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use super::Inbound;

/// A message handler.
///
/// ```
/// use heartline::core::{Handler, Inbound};
/// let handler: Handler = std::rc::Rc::new(|msg: &Inbound| println!("{}", msg.socket_type));
/// handler(&Inbound::parse(r#"{"socketType":"presence"}"#).unwrap());
/// ```
pub type Handler = Rc<dyn Fn(&Inbound)>;

/// Types whose last message is remembered even without a handler, so a
/// hostile server cannot grow the map without bound.
const MAX_REMEMBERED_TYPES: usize = 256;

#[derive(Default)]
struct Inner {
    handlers: HashMap<Rc<str>, Vec<(u64, Handler)>>,
    last: HashMap<Arc<str>, Inbound>,
    next_id: u64,
}

impl Inner {
    fn is_registered(&self, socket_type: &str, id: u64) -> bool {
        self.handlers
            .get(socket_type)
            .is_some_and(|list| list.iter().any(|(each, _)| *each == id))
    }
}

/// The handler registry: several handlers per `socketType`, each registered
/// by a [`SubscriptionGuard`] that unregisters it when dropped. Cloning gives
/// another handle to the same registry.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use heartline::core::{Inbound, Registry};
///
/// let registry = Registry::new();
/// let seen = Rc::new(Cell::new(0));
/// let counter = seen.clone();
/// let guard = registry.subscribe("presence", Rc::new(move |_msg: &Inbound| counter.set(counter.get() + 1)));
///
/// let msg = Inbound::parse(r#"{"socketType":"presence","users":[]}"#).unwrap();
/// assert_eq!(registry.dispatch(&msg), 1);
/// drop(guard);
/// assert_eq!(registry.dispatch(&msg), 0);
/// assert_eq!(seen.get(), 1);
/// assert!(registry.last("presence").is_some()); // for a late subscriber
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.try_borrow();
        let mut out = f.debug_struct("Registry");
        if let Ok(inner) = inner {
            let counts: HashMap<&str, usize> = inner
                .handlers
                .iter()
                .map(|(kind, list)| (&**kind, list.len()))
                .collect();
            out.field("handlers", &counts);
        }
        out.finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    ///
    /// ```
    /// let registry = heartline::core::Registry::new();
    /// assert!(!registry.has_handlers("ack"));
    /// ```
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `handler` for `socket_type` until the returned guard is
    /// dropped. Safe to call from inside a handler.
    ///
    /// ```
    /// use std::rc::Rc;
    /// let registry = heartline::core::Registry::new();
    /// let guard = registry.subscribe("typing", Rc::new(|_| {}));
    /// assert!(registry.has_handlers("typing"));
    /// drop(guard);
    /// assert!(!registry.has_handlers("typing"));
    /// ```
    #[must_use = "the handler is unregistered when the guard is dropped"]
    pub fn subscribe(&self, socket_type: &str, handler: Handler) -> SubscriptionGuard {
        let mut inner = self.inner.borrow_mut();
        inner.next_id += 1;
        let id = inner.next_id;
        let key: Rc<str> = socket_type.into();
        inner
            .handlers
            .entry(key.clone())
            .or_default()
            .push((id, handler));
        SubscriptionGuard {
            registry: Rc::downgrade(&self.inner),
            socket_type: key,
            id,
        }
    }

    /// Calls every handler of the message's type, in subscription order, and
    /// remembers the message as the type's last. Returns how many handlers
    /// ran. No borrow is held while a handler runs, so handlers may
    /// subscribe, unsubscribe or dispatch; a handler unsubscribed during the
    /// dispatch is not called, one subscribed during it waits for the next.
    ///
    /// ```
    /// use heartline::core::{Inbound, Registry};
    /// let registry = Registry::new();
    /// let msg = Inbound::parse(r#"{"socketType":"metrics.sample"}"#).unwrap();
    /// assert_eq!(registry.dispatch(&msg), 0);
    /// ```
    pub fn dispatch(&self, message: &Inbound) -> usize {
        let snapshot: Vec<(u64, Handler)> = {
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return 0;
            };
            if inner.last.len() < MAX_REMEMBERED_TYPES
                || inner.last.contains_key(&*message.socket_type)
                || inner.handlers.contains_key(&*message.socket_type)
            {
                inner
                    .last
                    .insert(message.socket_type.clone(), message.clone());
            }
            match inner.handlers.get(&*message.socket_type) {
                Some(list) => list.clone(),
                None => return 0,
            }
        };
        let mut called = 0;
        for (id, handler) in snapshot {
            let still_registered = self
                .inner
                .try_borrow()
                .is_ok_and(|inner| inner.is_registered(&message.socket_type, id));
            if still_registered {
                handler(message);
                called += 1;
            }
        }
        called
    }

    /// The last message of `socket_type` dispatched, for a subscriber that
    /// arrives after it.
    ///
    /// ```
    /// use heartline::core::{Inbound, Registry};
    /// let registry = Registry::new();
    /// registry.dispatch(&Inbound::parse(r#"{"socketType":"welcome","name":"ada"}"#).unwrap());
    /// assert_eq!(registry.last("welcome").unwrap().value["name"], "ada");
    /// ```
    pub fn last(&self, socket_type: &str) -> Option<Inbound> {
        self.inner
            .try_borrow()
            .ok()
            .and_then(|inner| inner.last.get(socket_type).cloned())
    }

    /// Forgets every remembered last message (e.g. on logout).
    ///
    /// ```
    /// use heartline::core::{Inbound, Registry};
    /// let registry = Registry::new();
    /// registry.dispatch(&Inbound::parse(r#"{"socketType":"welcome"}"#).unwrap());
    /// registry.clear_last();
    /// assert!(registry.last("welcome").is_none());
    /// ```
    pub fn clear_last(&self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.last.clear();
        }
    }

    /// Whether any handler is registered for `socket_type`. The machine uses
    /// it (see `Connection::set_registry`) to count unknown types.
    ///
    /// ```
    /// use std::rc::Rc;
    /// let registry = heartline::core::Registry::new();
    /// let _guard = registry.subscribe("a", Rc::new(|_| {}));
    /// assert!(registry.has_handlers("a"));
    /// assert!(!registry.has_handlers("b"));
    /// ```
    pub fn has_handlers(&self, socket_type: &str) -> bool {
        self.inner.try_borrow().is_ok_and(|inner| {
            inner
                .handlers
                .get(socket_type)
                .is_some_and(|l| !l.is_empty())
        })
    }

    /// How many handlers are registered for `socket_type`.
    ///
    /// ```
    /// use std::rc::Rc;
    /// let registry = heartline::core::Registry::new();
    /// let _a = registry.subscribe("x", Rc::new(|_| {}));
    /// let _b = registry.subscribe("x", Rc::new(|_| {}));
    /// assert_eq!(registry.handler_count("x"), 2);
    /// ```
    pub fn handler_count(&self, socket_type: &str) -> usize {
        self.inner.try_borrow().map_or(0, |inner| {
            inner.handlers.get(socket_type).map_or(0, Vec::len)
        })
    }
}

/// Keeps one handler registered; dropping it unregisters the handler. Holds
/// only a weak reference, so it may outlive the registry, and its `Drop`
/// never panics.
///
/// ```
/// use std::rc::Rc;
/// let registry = heartline::core::Registry::new();
/// let guard = registry.subscribe("x", Rc::new(|_| {}));
/// drop(registry);
/// drop(guard); // the registry is gone: nothing to do, no panic
/// ```
pub struct SubscriptionGuard {
    registry: Weak<RefCell<Inner>>,
    socket_type: Rc<str>,
    id: u64,
}

impl fmt::Debug for SubscriptionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionGuard")
            .field("socket_type", &self.socket_type)
            .field("id", &self.id)
            .finish()
    }
}

impl SubscriptionGuard {
    /// The type this guard's handler listens to.
    ///
    /// ```
    /// use std::rc::Rc;
    /// let registry = heartline::core::Registry::new();
    /// let guard = registry.subscribe("presence", Rc::new(|_| {}));
    /// assert_eq!(guard.socket_type(), "presence");
    /// ```
    pub fn socket_type(&self) -> &str {
        &self.socket_type
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        let Some(inner) = self.registry.upgrade() else {
            return;
        };
        // The removed handler is dropped after the borrow ends: its closure may
        // own other guards whose Drop borrows the registry again.
        let removed = match inner.try_borrow_mut() {
            Ok(mut inner) => {
                let mut removed = None;
                if let Some(list) = inner.handlers.get_mut(&*self.socket_type) {
                    if let Some(pos) = list.iter().position(|(id, _)| *id == self.id) {
                        removed = Some(list.remove(pos));
                    }
                    if list.is_empty() {
                        inner.handlers.remove(&*self.socket_type);
                    }
                }
                removed
            }
            // Only reachable if a guard is dropped while the registry itself
            // holds a borrow, which it never does around user code.
            Err(_) => None,
        };
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::{Cell, RefCell};

    fn msg(kind: &str) -> Inbound {
        Inbound::parse(&format!(r#"{{"socketType":"{kind}"}}"#)).unwrap()
    }

    #[test]
    fn several_handlers_per_type_run_in_order() {
        let registry = Registry::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        let _g1 = registry.subscribe("t", Rc::new(move |_| a.borrow_mut().push(1)));
        let _g2 = registry.subscribe("t", Rc::new(move |_| b.borrow_mut().push(2)));
        assert_eq!(registry.dispatch(&msg("t")), 2);
        assert_eq!(*log.borrow(), vec![1, 2]);
    }

    #[test]
    fn handler_may_unsubscribe_another_during_dispatch() {
        let registry = Registry::new();
        let second_calls = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<SubscriptionGuard>>> = Rc::new(RefCell::new(None));
        let slot_in_first = slot.clone();
        let _first = registry.subscribe(
            "t",
            Rc::new(move |_| {
                slot_in_first.borrow_mut().take();
            }),
        );
        let counter = second_calls.clone();
        *slot.borrow_mut() =
            Some(registry.subscribe("t", Rc::new(move |_| counter.set(counter.get() + 1))));
        assert_eq!(registry.dispatch(&msg("t")), 1);
        assert_eq!(second_calls.get(), 0);
        assert_eq!(registry.handler_count("t"), 1);
    }

    #[test]
    fn handler_may_subscribe_during_dispatch() {
        let registry = Registry::new();
        let keep: Rc<RefCell<Vec<SubscriptionGuard>>> = Rc::default();
        let (reg, keep_in) = (registry.clone(), keep.clone());
        let _g = registry.subscribe(
            "t",
            Rc::new(move |_| {
                keep_in
                    .borrow_mut()
                    .push(reg.subscribe("t", Rc::new(|_| {})))
            }),
        );
        assert_eq!(registry.dispatch(&msg("t")), 1);
        assert_eq!(registry.handler_count("t"), 2);
        assert_eq!(registry.dispatch(&msg("t")), 2);
    }

    #[test]
    fn guard_owned_by_a_removed_handler_drops_cleanly() {
        let registry = Registry::new();
        let inner_guard = registry.subscribe("inner", Rc::new(|_| {}));
        let holder = RefCell::new(Some(inner_guard));
        let outer = registry.subscribe(
            "outer",
            Rc::new(move |_| {
                let _ = holder.borrow();
            }),
        );
        drop(outer);
        assert!(!registry.has_handlers("outer"));
        assert!(!registry.has_handlers("inner"));
    }

    #[test]
    fn remembered_types_are_bounded() {
        let registry = Registry::new();
        for i in 0..1_000 {
            registry.dispatch(&msg(&format!("junk{i}")));
        }
        assert!(registry.last("junk999").is_none());
        let _g = registry.subscribe("wanted", Rc::new(|_| {}));
        registry.dispatch(&msg("wanted"));
        assert!(registry.last("wanted").is_some());
    }
}
