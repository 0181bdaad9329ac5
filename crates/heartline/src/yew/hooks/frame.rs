//! At most one re-render per animation frame, however often asked.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_render::{AnimationFrame, request_animation_frame};
use yew::prelude::*;

/// Schedules a re-render of its component on the next animation frame;
/// asking again before that frame is free. Dropping the last clone (on
/// unmount) cancels a pending frame.
#[derive(Clone)]
pub(crate) struct FrameRender {
    inner: Rc<Inner>,
}

struct Inner {
    update: UseForceUpdateHandle,
    /// A frame is requested and has not run yet.
    pending: Rc<Cell<bool>>,
    /// The handle of the last frame requested (kept after it ran, replaced
    /// by the next one; dropping a frame that has not run cancels it).
    frame: RefCell<Option<AnimationFrame>>,
    /// Re-renders it caused, for tests and diagnostics.
    renders: Rc<Cell<u64>>,
}

impl FrameRender {
    /// Asks for a re-render on the next animation frame.
    pub(crate) fn schedule(&self) {
        let inner = &self.inner;
        if inner.pending.replace(true) {
            return;
        }
        let pending = Rc::clone(&inner.pending);
        let renders = Rc::clone(&inner.renders);
        let update = inner.update.clone();
        let frame = request_animation_frame(move |_| {
            pending.set(false);
            renders.set(renders.get() + 1);
            update.force_update();
        });
        // The frame replaced here has run already: dropping it cancels
        // nothing. This runs outside any frame callback.
        *inner.frame.borrow_mut() = Some(frame);
    }

    /// Cancels a pending frame.
    pub(crate) fn cancel(&self) {
        self.inner.frame.borrow_mut().take();
        self.inner.pending.set(false);
    }
}

/// A [`FrameRender`] bound to the calling component; a pending frame is
/// cancelled on unmount.
#[hook]
pub(crate) fn use_frame_render() -> FrameRender {
    let update = use_force_update();
    let render = use_memo((), move |_| FrameRender {
        inner: Rc::new(Inner {
            update,
            pending: Rc::default(),
            frame: RefCell::default(),
            renders: Rc::default(),
        }),
    });
    {
        let render = (*render).clone();
        use_effect_with((), move |_| move || render.cancel());
    }
    (*render).clone()
}
