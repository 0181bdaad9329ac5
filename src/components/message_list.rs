use heartline::core::DeliveryState;
use heartline_protocol::ChatMessage;
use web_sys::HtmlElement;
use yew::prelude::*;

use crate::hooks::use_room::{Pending, RoomHandle};
use crate::time;

/// Messages of one author less than this far apart share a header.
const GROUP_GAP_MS: i64 = 5 * 60 * 1_000;
/// Scrolled this close to the top, the next older page is asked for.
const LOAD_OLDER_WITHIN_PX: i32 = 80;
/// Scrolled this close to the bottom, new messages keep it at the bottom.
const STICK_WITHIN_PX: i32 = 120;

/// Props of [`MessageList`].
#[derive(Properties, PartialEq, Debug)]
pub struct MessageListProps {
    /// The room.
    pub room: RoomHandle,
    /// Our display name: our messages show their delivery state.
    pub me: AttrValue,
}

/// Runs of consecutive messages by one author, for grouping.
pub fn groups(messages: &[ChatMessage]) -> Vec<&[ChatMessage]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=messages.len() {
        let split = i == messages.len()
            || messages[i].from != messages[i - 1].from
            || messages[i].at - messages[i - 1].at > GROUP_GAP_MS;
        if split {
            out.push(&messages[start..i]);
            start = i;
        }
    }
    out
}

fn state_label(state: Option<&DeliveryState>) -> (&'static str, String) {
    match state {
        Some(DeliveryState::Queued) | None => ("queued", "waiting for the connection".into()),
        Some(DeliveryState::Sent) => ("sent", "sent".into()),
        Some(DeliveryState::Acked) => ("acked", "delivered".into()),
        Some(DeliveryState::Failed(reason)) => ("failed", format!("not sent: {reason}")),
    }
}

/// The messages of a room, grouped by author with times, then our own
/// messages on their way with their state and actions. Scrolling to the
/// top loads older messages.
#[function_component(MessageList)]
pub fn message_list(props: &MessageListProps) -> Html {
    let room = &props.room;
    let state = room.state();
    let scroller = use_node_ref();
    // (scrollHeight, scrollTop) before a render that prepends, and whether
    // the reader was at the bottom.
    let before = use_mut_ref(|| (0, 0, true));

    let onscroll = {
        let room = room.clone();
        let scroller = scroller.clone();
        let before = before.clone();
        Callback::from(move |_: Event| {
            let Some(el) = scroller.cast::<HtmlElement>() else {
                return;
            };
            let at_bottom =
                el.scroll_height() - el.scroll_top() - el.client_height() < STICK_WITHIN_PX;
            *before.borrow_mut() = (el.scroll_height(), el.scroll_top(), at_bottom);
            if el.scroll_top() < LOAD_OLDER_WITHIN_PX {
                room.load_older();
            }
        })
    };

    // Keep the view still when older messages arrive above, and follow new
    // ones when the reader is at the bottom.
    {
        let scroller = scroller.clone();
        let before = before.clone();
        let oldest = state.oldest_seq();
        let count = state.messages.len() + state.pending.len();
        use_effect_with((oldest, count), move |_| {
            if let Some(el) = scroller.cast::<HtmlElement>() {
                let (height, top, at_bottom) = *before.borrow();
                if at_bottom {
                    el.set_scroll_top(el.scroll_height());
                } else if el.scroll_height() > height {
                    el.set_scroll_top(top + el.scroll_height() - height);
                }
                let at_bottom =
                    el.scroll_height() - el.scroll_top() - el.client_height() < STICK_WITHIN_PX;
                *before.borrow_mut() = (el.scroll_height(), el.scroll_top(), at_bottom);
            }
        });
    }

    let me = props.me.as_str();
    html! {
        <div class="messages" ref={scroller} {onscroll} role="log" aria-label={format!("Messages in {}", room.name())}
            aria-live="polite" tabindex="0">
            if state.loading_older {
                <p class="messages__note">{ "Loading older messages…" }</p>
            } else if state.has_older {
                <button class="messages__older link-button" onclick={ let room = room.clone(); move |_| room.load_older() }>
                    { "Load older messages" }
                </button>
            } else if state.live && !state.messages.is_empty() {
                <p class="messages__note">{ format!("This is the start of #{}.", room.name()) }</p>
            }
            if !state.live && state.messages.is_empty() {
                <p class="messages__note">{ "Loading history…" }</p>
            } else if state.live && state.messages.is_empty() && state.pending.is_empty() {
                <p class="messages__note">{ "No messages yet. Say hello!" }</p>
            }
            { for groups(&state.messages).into_iter().map(|group| {
                let first = &group[0];
                let mine = first.from == me;
                html! {
                    <section key={first.seq} class={classes!("group", mine.then_some("group--mine"))}>
                        <header class="group__header">
                            <span class="group__author">{ &first.from }</span>
                            <time class="group__time" title={time::full(first.at)}>{ time::clock(first.at) }</time>
                        </header>
                        { for group.iter().map(|m| html! {
                            // In the room's stream means the server stored
                            // it: our own ones are delivered, whatever the
                            // link does now (and after a reload).
                            <p key={m.seq} class="message" data-seq={m.seq.to_string()}
                                data-state={mine.then_some("acked")} title={time::full(m.at)}>
                                <span class="message__text">{ &m.text }</span>
                                if mine {
                                    <span class="message__state" aria-label="delivered">{ "✓" }</span>
                                }
                            </p>
                        }) }
                    </section>
                }
            }) }
            if !state.pending.is_empty() {
                <section class="group group--mine group--pending" aria-label="Your messages on their way">
                    <header class="group__header">
                        <span class="group__author">{ me }</span>
                    </header>
                    { for state.pending.iter().map(|pending| pending_message(room, pending)) }
                </section>
            }
        </div>
    }
}

fn pending_message(room: &RoomHandle, pending: &Pending) -> Html {
    let delivery = room.socket().message_state(&pending.id);
    let (state, label) = state_label(delivery.as_ref());
    let id = pending.id.clone();
    let actions = match state {
        "queued" => {
            let room = room.clone();
            let id = id.clone();
            html! {
                <button class="link-button" onclick={move |_| { let _ = room.cancel(&id); }}>{ "Cancel" }</button>
            }
        }
        "failed" => {
            let retry = {
                let room = room.clone();
                let id = id.clone();
                move |_| {
                    let _ = room.retry(&id);
                }
            };
            let dismiss = {
                let room = room.clone();
                let id = id.clone();
                move |_| room.dismiss(&id)
            };
            html! {
                <>
                    <button class="link-button" onclick={retry}>{ "Retry" }</button>
                    <button class="link-button" onclick={dismiss}>{ "Dismiss" }</button>
                </>
            }
        }
        _ => html! {},
    };
    html! {
        <p key={id.as_str().to_owned()} class={classes!("message", "message--pending", format!("message--{state}"))}
            data-id={id.as_str().to_owned()} data-state={state}>
            <span class="message__text">{ &pending.text }</span>
            <span class="message__state">{ label }</span>
            { actions }
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(seq: u64, from: &str, at: i64) -> ChatMessage {
        ChatMessage {
            stream: "r".into(),
            epoch: 1,
            seq,
            id: seq.to_string(),
            from: from.into(),
            text: String::new(),
            at,
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn messages_group_by_author_and_by_time() {
        let list = [
            m(1, "ada", 0),
            m(2, "ada", 1_000),
            m(3, "bo", 2_000),
            m(4, "bo", 2_000 + GROUP_GAP_MS + 1),
        ];
        let sizes: Vec<usize> = groups(&list).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![2, 1, 1]);
        assert!(groups(&[]).is_empty());
    }
}
