//! Partner Portal shared library: configuration, errors, domain types, queries (repositories),
//! job payloads and telemetry used by `portal-api`, `portal-worker` and `portal-admin`.
//!
//! Repository functions take the caller's client id first: there is no finder for tenant-owned
//! rows without it.

pub mod analytics;
pub mod auth;
pub mod billing;
pub mod ch;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod exports;
pub mod jobs;
pub mod json;
pub mod pagination;
pub mod repo;
pub mod storage;
pub mod telemetry;
pub mod throttle;

pub use error::{AppError, AppResult};
