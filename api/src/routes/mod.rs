//! Route handlers, one module per resource.

pub mod classes;
pub mod health;
pub mod partner_auth;
pub mod strings;
pub mod vouchers;
