//! Domain types and rules with no I/O: credentials and roles, list parameters, JSON input rules.

pub mod auth;
pub mod json;
pub mod pagination;
