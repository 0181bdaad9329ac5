//! The BroadcastChannel the tabs of one origin talk over.

use std::rc::Weak;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BroadcastChannel, MessageEvent};

use crate::core::share::TabMessage;
use crate::yew::driver::Driver;

/// One BroadcastChannel and its `message` closure, owned together: dropping
/// it detaches the closure before it is freed and closes the channel.
pub(crate) struct Channel {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Channel {
    /// Opens `name`; `None` where the browser has no BroadcastChannel.
    pub(crate) fn open(name: &str, driver: Weak<Driver>) -> Option<Channel> {
        let channel = BroadcastChannel::new(name).ok()?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            // Another version of the app, or anything else on this channel,
            // is ignored: a tab never trusts what it cannot parse.
            let Some(text) = event.data().as_string() else {
                return;
            };
            let Ok(message) = TabMessage::parse(&text) else {
                return;
            };
            if let Some(driver) = driver.upgrade() {
                driver.share_receive(message);
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(Channel {
            channel,
            _on_message: on_message,
        })
    }

    /// Posts to every other tab on the channel (never to this one).
    pub(crate) fn post(&self, message: &TabMessage) {
        // A closed channel throws; the tab is going away then anyway.
        let _ = self.channel.post_message(&message.to_json().into());
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
