use yew::prelude::*;

/// Props of [`TypingIndicator`].
#[derive(Properties, PartialEq, Debug)]
pub struct TypingIndicatorProps {
    /// Who is typing, sorted.
    pub names: Vec<AttrValue>,
}

/// The sentence for who is typing.
///
/// ```
/// use heartline_app::components::typing_indicator::sentence;
/// assert_eq!(sentence(&["ada"]), "ada is typing…");
/// assert_eq!(sentence(&["ada", "bo"]), "ada and bo are typing…");
/// assert_eq!(sentence(&["a", "b", "c", "d"]), "4 people are typing…");
/// assert_eq!(sentence(&[] as &[&str]), "");
/// ```
pub fn sentence<S: AsRef<str>>(names: &[S]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("{} is typing…", one.as_ref()),
        [a, b] => format!("{} and {} are typing…", a.as_ref(), b.as_ref()),
        [a, b, c] => format!(
            "{}, {} and {} are typing…",
            a.as_ref(),
            b.as_ref(),
            c.as_ref()
        ),
        more => format!("{} people are typing…", more.len()),
    }
}

/// "ada is typing…", in a line that is always there, so the page does not
/// jump when it appears.
#[function_component(TypingIndicator)]
pub fn typing_indicator(props: &TypingIndicatorProps) -> Html {
    html! {
        <p class="typing" aria-live="polite">{ sentence(&props.names) }</p>
    }
}
