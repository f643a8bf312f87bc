//! Dispatch: the outbox worker that claims due messages with a lease, sends
//! them through the channel's providers, and records every attempt.

pub mod claim;
pub mod outcome;
pub mod provider;
pub mod providers;
pub mod replies;
pub mod routes;
pub mod settings;
pub mod sign;
pub mod worker;

pub use provider::{
    Accepted, FailureClass, Outgoing, Provider, RateWait, Receipt, ReceiptKey, SendError,
    SendResult, SmsReply,
};
