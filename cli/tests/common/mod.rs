//! Helpers shared by the CLI's end-to-end tests.
#![allow(dead_code)] // each test binary uses a part of them

pub mod flink;
pub mod webhook;
