//! The provider clients, one module each.
pub mod http;
