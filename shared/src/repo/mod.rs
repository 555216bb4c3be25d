//! Queries, one module per resource. Tenant-owned lookups take `client_id` first.

pub mod api_keys;
pub mod audit;
pub mod classes;
pub mod clients;
pub mod idempotency;
pub mod members;
pub mod products;
pub mod sessions;
pub mod staff;
pub mod strings;
pub mod vouchers;
