//! The provider clients, one module each.
pub mod aliyun;
pub mod http;
pub mod tencent;
pub mod twilio;
