//! Route handlers, one module per resource.

pub mod app_auth;
pub mod audit_log;
pub mod billing;
pub mod classes;
pub mod events;
pub mod exports;
pub mod health;
pub mod insights;
pub mod members;
pub mod partner_auth;
pub mod products;
pub mod strings;
pub mod team;
pub mod vouchers;
