//! One integration-test binary (faster to link than one per file); modules by area.

mod api_keys;
mod auth;
mod migrations;
mod operability;
mod worker;
