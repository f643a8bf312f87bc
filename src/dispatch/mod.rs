//! Dispatch: the outbox worker that claims due messages with a lease, sends
//! them through the channel's providers, and records every attempt.

pub mod provider;
pub mod providers;
pub mod settings;
pub mod sign;

pub use provider::{
    Accepted, FailureClass, Outgoing, Provider, RateWait, Receipt, ReceiptKey, SendError,
    SendResult, SmsReply,
};
