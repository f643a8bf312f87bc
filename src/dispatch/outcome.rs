//! From a provider's answer to the message's next state: sent, failed (with
//! the provider's code), retried later with backoff, waiting out a rate
//! limit, handed to the next provider, reconciled after an unknown outcome,
//! or dead once its attempts are used up. Pure, so every rule is a unit test.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::campaigns::SendWindow;
use crate::campaigns::outbox::MessageStatus;
use crate::dispatch::claim::{AttemptRow, ClaimedMessage, Settlement, Suppression};
use crate::dispatch::provider::{FailureClass, RateWait, SendError, SendResult};

/// Reasons a claimed message waits again (the send log's `reason`).
pub mod reason {
    pub const RETRY: &str = "retry";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";
    pub const FAILOVER: &str = "failover";
    pub const SEND_WINDOW: &str = "send_window";
    pub const BAD_PAYLOAD: &str = "bad_payload";
    pub const NO_PROVIDER: &str = "no_provider";
}

/// The rules a settlement follows.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Pause after a rate limit that named no wait.
    pub rate_pause: Duration,
    /// How long to wait for a receipt after a send whose outcome is unknown.
    pub reconcile_wait: Duration,
}

/// Where the message stands in its channel's provider chain.
#[derive(Debug, Clone)]
pub struct ChainPosition<'a> {
    /// The provider that was called.
    pub current: &'a str,
    /// The one after it, if any.
    pub next: Option<&'a str>,
    /// The first of the chain (where a retry starts over).
    pub first: &'a str,
}

impl<'a> ChainPosition<'a> {
    /// Position `index` in the chain of provider `names` (`none` when empty).
    pub fn at(names: &[&'a str], index: usize) -> ChainPosition<'a> {
        ChainPosition {
            current: names.get(index).copied().unwrap_or("none"),
            next: names.get(index + 1).copied(),
            first: names.first().copied().unwrap_or("none"),
        }
    }
}

/// Everything a settlement needs besides the provider's answer.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub message: &'a ClaimedMessage,
    pub token: &'a str,
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub window: SendWindow,
    pub policy: &'a Policy,
    pub chain: ChainPosition<'a>,
    /// A random share in [0, 1) for the backoff's jitter.
    pub jitter: f64,
}

impl Context<'_> {
    fn base(&self, status: MessageStatus) -> Settlement {
        Settlement {
            message_id: self.message.id,
            token: self.token.to_owned(),
            at: self.now,
            status,
            reason: None,
            detail: None,
            provider: None,
            provider_message_id: None,
            next_attempt_at: None,
            attempts: self.message.attempts,
            attempt: None,
            suppress: None,
        }
    }

    /// Not sent now, through no fault of a provider: waits until `at`.
    pub fn wait(&self, reason: &str, at: DateTime<Utc>, detail: String) -> Settlement {
        Settlement {
            reason: Some(reason.to_owned()),
            detail: Some(detail),
            next_attempt_at: Some(at),
            ..self.base(MessageStatus::Deferred)
        }
    }

    /// Back to the queue untouched (shutdown before the send).
    pub fn release(&self) -> Settlement {
        Settlement {
            reason: self.message.reason.clone(),
            next_attempt_at: Some(self.now),
            ..self.base(MessageStatus::Queued)
        }
    }

    /// Can never be sent as it is, before any provider call.
    pub fn fail(&self, reason: &str, detail: String) -> Settlement {
        Settlement {
            reason: Some(reason.to_owned()),
            detail: Some(detail),
            ..self.base(MessageStatus::Failed)
        }
    }

    /// The settlement after the provider answered `result`.
    pub fn settle(&self, result: &SendResult) -> Settlement {
        let number = self.message.attempts + 1;
        // Calls counted against max_attempts: those since the last retry by hand.
        let used = number.saturating_sub(self.message.attempts_before_retry);
        let provider = self.chain.current.to_owned();
        let row = |outcome: &'static str, e: Option<&SendError>| AttemptRow {
            number,
            provider: provider.clone(),
            outcome,
            provider_code: e.map(|e| e.code.clone()),
            detail: e.map(|e| e.message.clone()),
        };
        let mut s = self.base(MessageStatus::Sent);
        s.attempts = number;
        s.provider = Some(provider.clone());
        let e = match result {
            Ok(accepted) => {
                s.provider_message_id = accepted.provider_message_id.clone();
                s.attempt = Some(AttemptRow {
                    provider_code: accepted.provider_message_id.clone(),
                    ..row("sent", None)
                });
                return s;
            }
            Err(e) => e,
        };
        let said = format!("{provider} {}: {}", e.code, e.message);
        match e.class {
            FailureClass::Permanent { suppress_address } => {
                s.status = MessageStatus::Failed;
                s.reason = Some(e.code.clone());
                s.detail = Some(said);
                s.attempt = Some(row("failed", Some(e)));
                if suppress_address {
                    s.suppress = Some(Suppression {
                        channel: self.message.channel,
                        address: self.message.address.clone(),
                        source: format!("provider:{provider}:{}", e.code),
                    });
                }
            }
            FailureClass::Transient { outcome_unknown } => {
                if used >= self.policy.max_attempts {
                    s.status = MessageStatus::Dead;
                    s.reason = Some(e.code.clone());
                    s.detail = Some(format!("gave up after {number} attempts; the last: {said}"));
                    s.attempt = Some(row("dead", Some(e)));
                } else if outcome_unknown {
                    let at = self.now + self.policy.reconcile_wait;
                    s.status = MessageStatus::Deferred;
                    s.reason = Some(reason::OUTCOME_UNKNOWN.into());
                    s.next_attempt_at = Some(at);
                    s.detail = Some(format!(
                        "{said}; waiting until {} for a delivery receipt before sending again",
                        self.local(at)
                    ));
                    s.attempt = Some(row("unknown", Some(e)));
                } else {
                    let at = self.now + self.backoff(used);
                    s.status = MessageStatus::Deferred;
                    s.reason = Some(reason::RETRY.into());
                    s.next_attempt_at = Some(at);
                    s.detail = Some(format!(
                        "{said}; attempt {used} of {}, next at {}",
                        self.policy.max_attempts,
                        self.local(at)
                    ));
                    s.attempt = Some(row("retry", Some(e)));
                }
            }
            FailureClass::RateLimited(wait) => {
                let at = match wait {
                    RateWait::For(d) => self.now + d.max(Duration::from_secs(1)),
                    RateWait::Unspecified => self.now + self.policy.rate_pause,
                    RateWait::NextDay => self.next_day(),
                };
                s.status = MessageStatus::Deferred;
                s.reason = Some(reason::RATE_LIMITED.into());
                s.next_attempt_at = Some(at);
                s.detail = Some(format!("{said}; waiting until {}", self.local(at)));
                s.attempt = Some(row("rate_limited", Some(e)));
            }
            FailureClass::ProviderDown => match self.chain.next {
                Some(next) => {
                    s.status = MessageStatus::Deferred;
                    s.reason = Some(reason::FAILOVER.into());
                    s.provider = Some(next.to_owned());
                    s.next_attempt_at = Some(self.now);
                    s.detail = Some(format!("{said}; handed to {next}"));
                    s.attempt = Some(row("provider_down", Some(e)));
                }
                None if used >= self.policy.max_attempts => {
                    s.status = MessageStatus::Dead;
                    s.reason = Some(e.code.clone());
                    s.detail = Some(format!(
                        "gave up after {number} attempts; no provider of the channel could take it; the last: {said}"
                    ));
                    s.attempt = Some(row("dead", Some(e)));
                }
                None => {
                    let at = self.now + self.backoff(used);
                    s.status = MessageStatus::Deferred;
                    s.reason = Some(reason::RETRY.into());
                    s.provider = Some(self.chain.first.to_owned());
                    s.next_attempt_at = Some(at);
                    s.detail = Some(format!(
                        "{said}; no other provider for {}; starting over with {} at {}",
                        self.message.channel,
                        self.chain.first,
                        self.local(at)
                    ));
                    s.attempt = Some(row("provider_down", Some(e)));
                }
            },
        }
        s
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let full = self
            .policy
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.policy.backoff_max);
        full.div_f64(2.0) + full.div_f64(2.0).mul_f64(self.jitter.clamp(0.0, 1.0))
    }

    /// The next local day's opening of the send window.
    fn next_day(&self) -> DateTime<Utc> {
        let local = self.now.with_timezone(&self.tz);
        let tomorrow = local.date_naive() + chrono::Duration::days(1);
        let midnight = tomorrow
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(self.tz).earliest())
            .map_or(self.now + chrono::Duration::days(1), |t| {
                t.with_timezone(&Utc)
            });
        self.window.next_open(self.tz, midnight).unwrap_or(midnight)
    }

    fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }
}

#[cfg(test)]
mod tests;
