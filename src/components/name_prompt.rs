use heartline_protocol::{MAX_NAME_CHARS, validate_name};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props of [`NamePrompt`].
#[derive(Properties, PartialEq, Debug)]
pub struct NamePromptProps {
    /// Called with the valid, trimmed name.
    pub on_done: Callback<String>,
    /// The name to start from (when changing it).
    #[prop_or_default]
    pub initial: Option<AttrValue>,
    /// Shown as a Cancel button when set (changing, not choosing).
    #[prop_or_default]
    pub on_cancel: Option<Callback<()>>,
}

/// Asks for a display name, checked by the same rules the server applies
/// (from `heartline-protocol`), as it is typed and on submit.
#[function_component(NamePrompt)]
pub fn name_prompt(props: &NamePromptProps) -> Html {
    let draft = use_state(|| {
        props
            .initial
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default()
    });
    let touched = use_state(|| false);
    let result = validate_name(&draft);
    let error = (*touched).then(|| result.clone().err()).flatten();

    let oninput = {
        let draft = draft.clone();
        let touched = touched.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            draft.set(input.value());
            touched.set(true);
        })
    };
    let onsubmit = {
        let on_done = props.on_done.clone();
        let touched = touched.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            touched.set(true);
            if let Ok(name) = &result {
                on_done.emit(name.clone());
            }
        })
    };
    html! {
        <form class="name-prompt" {onsubmit} aria-labelledby="name-prompt-title">
            <h2 id="name-prompt-title">{ "What should people call you?" }</h2>
            <p class="name-prompt__help">
                { format!("Your name in the chat: 1 to {MAX_NAME_CHARS} characters. It is kept in this browser.") }
            </p>
            <label for="display-name">{ "Display name" }</label>
            <input id="display-name" name="name" value={(*draft).clone()} {oninput}
                autocomplete="nickname" autofocus=true
                aria-invalid={error.is_some().then_some("true")}
                aria-describedby="display-name-error" />
            <p id="display-name-error" class="field-error" role="alert">
                { error.map(|e| e.to_string()).unwrap_or_default() }
            </p>
            <div class="name-prompt__actions">
                if let Some(on_cancel) = props.on_cancel.clone() {
                    <button type="button" class="secondary" onclick={move |_| on_cancel.emit(())}>{ "Cancel" }</button>
                }
                <button type="submit">{ "Continue" }</button>
            </div>
        </form>
    }
}
