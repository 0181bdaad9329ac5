//! Benchmark drivers behind `scripts/bench`: local, loopback-only servers
//! that push bounded load, and headless Chromium (through
//! [`heartline_e2e::Browser`]) measured from the page's own performance
//! APIs. Each binary in `src/bin/` serves one section of `scripts/bench` and
//! prints its figures as `key=value` lines for the script to tabulate.
//!
//! Nothing here is timed by a test: the figures are measurements, recorded
//! in `BENCHMARKS.md`, never assertions.

#![warn(missing_docs)]

pub mod app;
pub mod recorder;
pub mod wsclient;
