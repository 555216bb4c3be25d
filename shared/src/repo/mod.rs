//! Queries, one module per resource. Tenant-owned lookups take `client_id` first.

pub mod api_keys;
pub mod audit;
pub mod classes;
pub mod clients;
pub mod sessions;
pub mod staff;
pub mod strings;
