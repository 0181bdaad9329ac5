//! Placeholder; replaced by the sans-IO core.
