//! One integration-test binary (faster to link than one per file); modules by area.

mod abuse;
mod api_keys;
mod auth;
mod cluster;
mod contract;
mod crash;
mod db_guards;
mod events;
mod exports;
mod members;
mod migrations;
mod onboarding;
mod operability;
mod portal;
mod products;
mod profiles;
mod read_cache;
mod staff;
mod strings;
mod team;
mod tenancy;
mod vouchers;
mod worker;
