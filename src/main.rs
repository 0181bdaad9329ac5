//! Entry point built by trunk: mounts the app on `<body>`.

fn main() {
    console_error_panic_hook::set_once();
    yew::Renderer::<heartline_app::app::App>::new().render();
}
