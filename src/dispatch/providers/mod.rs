//! The provider clients, one module each.
pub mod aliyun;
pub mod email_message;
pub mod file;
pub mod http;
pub mod smtp;
pub mod tencent;
pub mod twilio;
pub mod wechat;
pub mod wechat_callback;
