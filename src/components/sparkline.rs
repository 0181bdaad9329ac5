use yew::prelude::*;

use crate::components::chart::{line_path, nice_ceiling};

/// Props of [`Sparkline`].
#[derive(Properties, PartialEq, Debug)]
pub struct SparklineProps {
    /// Oldest first.
    pub values: Vec<f64>,
    /// Samples across the width.
    pub capacity: usize,
    /// What it shows, for screen readers.
    pub label: AttrValue,
}

/// A small line with no axes, for a trend beside a number.
#[function_component(Sparkline)]
pub fn sparkline(props: &SparklineProps) -> Html {
    let max = nice_ceiling(props.values.iter().copied().fold(0.0, f64::max));
    html! {
        <svg class="sparkline" viewBox="0 0 120 24" preserveAspectRatio="none" role="img" aria-label={props.label.clone()}>
            <path class="sparkline__line" d={line_path(&props.values, props.capacity, 120.0, 22.0, max)}
                transform="translate(0 1)" vector-effect="non-scaling-stroke" />
        </svg>
    }
}
