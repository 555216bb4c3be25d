//! Partner Portal shared library, used by `portal-api`, `portal-worker` and `portal-admin`.
//!
//! Its folders are the layers, each depending only on those listed before it:
//! - [`domain`]: types and rules with no I/O (credentials and roles, list parameters, JSON input
//!   rules);
//! - [`pg`]: Postgres, every SQL statement against it, one module per resource;
//! - [`ch`]: ClickHouse, the analytics store: its migrations and every read of it;
//! - [`pipeline`]: the watch-event path, from a validated batch to events counted exactly once;
//! - [`jobs`]: the queues, their jobs, and the export job's CSV writer.
//!
//! Beside them, the cross-cutting pieces: [`config`], [`error`], [`telemetry`], [`storage`]
//! (export files), [`throttle`] (rate limits in Redis) and [`announce`] (which clients' answers
//! changed, told to every API instance over Redis).

pub mod announce;
pub mod ch;
pub mod config;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod pg;
pub mod pipeline;
pub mod seen;
pub mod storage;
pub mod telemetry;
pub mod throttle;

pub use error::{AppError, AppResult};

/// Every binary of the workspace (the API, the worker, the CLI, the tests and benches) allocates
/// with mimalloc: the request and ingest paths build many short-lived JSON values and rows, and
/// glibc's allocator spent a sixth of the accept path's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
