//! Native driver tests (placeholder).
