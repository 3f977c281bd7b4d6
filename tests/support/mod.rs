//! Helpers shared by the integration tests.
// Each test binary uses a different part; the helpers are `pub` for the
// modules of one test crate, not for export.
#![allow(dead_code, unreachable_pub)]

pub mod app;
pub mod redis;
