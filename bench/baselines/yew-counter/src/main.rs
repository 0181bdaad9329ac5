//! Bundle-size baseline: the smallest real Yew app, a counter with a button.
//! `scripts/bench bundle` compares the app's release `dist/` against it.

use yew::prelude::*;

#[function_component(Counter)]
fn counter() -> Html {
    let count = use_state(|| 0_u64);
    let increment = {
        let count = count.clone();
        Callback::from(move |_: MouseEvent| count.set(*count + 1))
    };
    html! {
        <main>
            <p>{ "Clicked " }{ *count }{ " times" }</p>
            <button onclick={increment}>{ "+1" }</button>
        </main>
    }
}

fn main() {
    yew::Renderer::<Counter>::new().render();
}
