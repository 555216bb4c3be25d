//! One integration-test binary (faster to link than one per file); modules by area.

mod abuse;
mod api_keys;
mod auth;
mod contract;
mod crash;
mod events;
mod exports;
mod members;
mod migrations;
mod onboarding;
mod operability;
mod products;
mod strings;
mod tenancy;
mod vouchers;
mod worker;
