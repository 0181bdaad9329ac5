use heartline_protocol::MAX_TEXT_CHARS;
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use crate::hooks::use_room::RoomHandle;

/// The counter shows from this many characters on.
const COUNT_FROM: usize = MAX_TEXT_CHARS - 200;

/// Props of [`Composer`].
#[derive(Properties, PartialEq, Debug)]
pub struct ComposerProps {
    /// The room messages go to.
    pub room: RoomHandle,
    /// Called on each keystroke (the typing indicator).
    #[prop_or_default]
    pub on_typing: Callback<()>,
}

/// Where a message is written. It keeps working while disconnected: what is
/// sent then waits in the outbox and goes out on reconnect, in order, once.
/// Enter sends; Shift+Enter starts a new line.
#[function_component(Composer)]
pub fn composer(props: &ComposerProps) -> Html {
    let draft = use_state(String::new);
    let error = use_state(|| None::<String>);
    let input = use_node_ref();
    let length = draft.trim().chars().count();
    let too_long = length > MAX_TEXT_CHARS;
    let open = props.room.socket().status().is_open();

    let send = {
        let draft = draft.clone();
        let error = error.clone();
        let room = props.room.clone();
        let input = input.clone();
        Callback::from(move |()| {
            if draft.trim().is_empty() {
                return;
            }
            match room.send(&draft) {
                Ok(_) => {
                    draft.set(String::new());
                    error.set(None);
                    if let Some(el) = input.cast::<HtmlTextAreaElement>() {
                        el.set_value("");
                        let _ = el.focus();
                    }
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        })
    };
    let oninput = {
        let draft = draft.clone();
        let error = error.clone();
        let on_typing = props.on_typing.clone();
        Callback::from(move |e: InputEvent| {
            let el: HtmlTextAreaElement = e.target_unchecked_into();
            draft.set(el.value());
            error.set(None);
            on_typing.emit(());
        })
    };
    let onkeydown = {
        let send = send.clone();
        Callback::from(move |e: KeyboardEvent| {
            // Not while an input method is composing (Enter picks a word).
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                send.emit(());
            }
        })
    };
    let onsubmit = Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        send.emit(());
    });

    let hint = if open {
        None
    } else {
        Some("Offline for now: messages wait and go out when the connection is back.")
    };
    html! {
        <form class="composer" {onsubmit} data-open={open.to_string()}>
            <label for="composer-text" class="visually-hidden">{ format!("Message #{}", props.room.name()) }</label>
            <textarea id="composer-text" ref={input} class="composer__text" rows="2"
                placeholder={format!("Message #{}", props.room.name())}
                value={(*draft).clone()} {oninput} {onkeydown}
                aria-invalid={too_long.then_some("true")}
                aria-describedby="composer-help" />
            <button type="submit" class="composer__send" disabled={too_long || draft.trim().is_empty()}>
                { if open { "Send" } else { "Queue" } }
            </button>
            <p id="composer-help" class="composer__help">
                if let Some(error) = &*error {
                    <span class="field-error" role="alert">{ error }</span>
                } else if too_long {
                    <span class="field-error">{ format!("{} characters over the limit of {MAX_TEXT_CHARS}", length - MAX_TEXT_CHARS) }</span>
                } else if let Some(hint) = hint {
                    <span class="composer__offline">{ hint }</span>
                } else {
                    <span>{ "Enter to send, Shift+Enter for a new line" }</span>
                }
                if length >= COUNT_FROM {
                    <span class={classes!("composer__count", too_long.then_some("composer__count--over"))}>
                        { format!("{length} / {MAX_TEXT_CHARS}") }
                    </span>
                }
            </p>
        </form>
    }
}
