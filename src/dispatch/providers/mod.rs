//! The provider clients, one module each.
pub mod email_message;
pub mod file;
pub mod http;
pub mod smtp;
pub mod wechat;
pub mod wechat_callback;
