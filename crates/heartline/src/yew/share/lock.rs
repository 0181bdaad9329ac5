//! Leadership through the Web Locks API: the tab holding the lock leads.
//! The browser queues the other tabs' requests and grants the lock to the
//! next one the moment the holder releases it, closes or crashes.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortController;

use crate::yew::driver::Driver;

/// `navigator.locks`, where the browser has it (secure contexts only).
fn lock_manager() -> Option<JsValue> {
    let navigator = web_sys::window()?.navigator();
    let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
    let request = Reflect::get(&locks, &"request".into()).ok()?;
    request.is_function().then_some(locks)
}

/// Whether the Web Locks API is available.
pub(crate) fn supported() -> bool {
    lock_manager().is_some()
}

/// One request for the leader lock, waiting or granted. Dropping it
/// releases a granted lock and withdraws a waiting request, so a tab that
/// unmounts its provider never keeps the others waiting.
pub(crate) struct LeaderLock {
    /// Withdraws a waiting request (not available with `steal`).
    abort: Option<AbortController>,
    /// Resolves the promise the lock is held by: calling it releases.
    release: Rc<RefCell<Option<Function>>>,
    /// Cleared on drop, so a late grant or loss reaches no one.
    alive: Rc<Cell<bool>>,
}

impl LeaderLock {
    /// Asks for the lock `name`. `steal` takes it from its holder at once
    /// (a visible tab taking over from a hidden one); the holder hears
    /// [`Driver::share_lock_lost`]. The driver hears
    /// [`Driver::share_lock_granted`] when it holds the lock.
    pub(crate) fn request(name: &str, steal: bool, driver: Weak<Driver>) -> Option<LeaderLock> {
        let locks = lock_manager()?;
        let request: Function = Reflect::get(&locks, &"request".into())
            .ok()?
            .dyn_into()
            .ok()?;
        let options = Object::new();
        let abort = if steal {
            Reflect::set(&options, &"steal".into(), &JsValue::TRUE).ok()?;
            None
        } else {
            let controller = AbortController::new().ok()?;
            Reflect::set(&options, &"signal".into(), &controller.signal()).ok()?;
            Some(controller)
        };
        let release: Rc<RefCell<Option<Function>>> = Rc::default();
        let alive = Rc::new(Cell::new(true));

        let granted = {
            let release = Rc::clone(&release);
            let alive = Rc::clone(&alive);
            let driver = driver.clone();
            Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |_lock: JsValue| {
                // The lock is held until this promise settles.
                let held = Promise::new(&mut |resolve, _reject| {
                    *release.borrow_mut() = Some(resolve);
                });
                if alive.get() {
                    if let Some(driver) = driver.upgrade() {
                        driver.share_lock_granted();
                    }
                } else if let Some(resolve) = release.borrow_mut().take() {
                    // Granted after the tab let go: give it straight back.
                    let _ = resolve.call0(&JsValue::UNDEFINED);
                }
                held.into()
            })
        };
        let outcome = request.call3(&locks, &name.into(), &options, granted.as_ref());
        let promise: Promise = outcome.ok().and_then(|p| p.dyn_into().ok())?;
        {
            let release = Rc::clone(&release);
            let alive = Rc::clone(&alive);
            wasm_bindgen_futures::spawn_local(async move {
                let settled = JsFuture::from(promise).await;
                // The grant callback is never called after the request
                // settles; it is freed only now.
                drop(granted);
                let was_held = release.borrow_mut().take().is_some();
                // Rejected while held: another tab stole the lock.
                if settled.is_err()
                    && was_held
                    && alive.get()
                    && let Some(driver) = driver.upgrade()
                {
                    driver.share_lock_lost();
                }
            });
        }
        Some(LeaderLock {
            abort,
            release,
            alive,
        })
    }
}

impl Drop for LeaderLock {
    fn drop(&mut self) {
        self.alive.set(false);
        let held = self.release.borrow_mut().take();
        match held {
            Some(resolve) => {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
            None => {
                if let Some(abort) = &self.abort {
                    abort.abort();
                }
            }
        }
    }
}
