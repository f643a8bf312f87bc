//! E-mail over SMTP with lettre: one pooled transport per configured account.
//!
//! Failures are classified from lettre's error kinds and the SMTP reply code
//! (`status()`), refined by the RFC 3463 enhanced status code at the start of
//! the reply where one is given (a structured code, not the server's wording):
//!
//! | reply / failure | class |
//! |---|---|
//! | 550, 551, 553 (mailbox unavailable / not local / name not allowed) | `Permanent { suppress_address: true }`, except enhanced `5.7.x` (policy, e.g. "relaying denied", spam) → `Permanent { false }` and `5.1.7`/`5.1.8` (our sender refused) → `ProviderDown` |
//! | 530, 534, 535, 538 (authentication) | `ProviderDown` |
//! | other 5xx (552 size, 554 transaction failed, 5.5.x syntax) | `Permanent { suppress_address: false }` |
//! | 421 (service not available / too many connections) | `RateLimited(Unspecified)`: large receivers (Gmail, Outlook, QQ) answer 421 to throttle; wait and come back to the same server |
//! | 450, 451, 452 and other 4xx (greylisting, mailbox busy or over quota, insufficient storage) | `Transient { outcome_unknown: false }`: 452 is also "mailbox over quota" per recipient, so it is not treated as throttling |
//! | connection refused / unreachable / connect timeout, DNS failure, TLS failure, missing server capability (STARTTLS, AUTH mechanism, 8BITMIME) | `ProviderDown`: the server cannot be used, the next provider of the channel takes over |
//! | no complete answer within the timeout, connection dropped or unreadable reply mid-conversation | `Transient { outcome_unknown: true }`: the DATA may have been accepted |
//!
//! The phase of a rejection (MAIL, RCPT or DATA) is not visible through
//! lettre's error; with one recipient per message, 550/551/553 are almost
//! always the recipient's mailbox.
//!
//! `provider_message_id` is our own `Message-ID` (without angle brackets): the
//! queue id in the final 250 reply has no standard format, while bounces and
//! feedback reports quote the `Message-ID`.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use super::email_message::{self, EmailMessageError};
use crate::clock::SharedClock;
use crate::dispatch::provider::{
    Accepted, FailureClass, Outgoing, Provider, RateWait, SendError, SendResult,
};
use crate::dispatch::settings::{SmtpSettings, SmtpTls};
use crate::domain::Email;
use crate::store::Channel;

type Transport = AsyncSmtpTransport<Tokio1Executor>;
type SmtpFailure = lettre::transport::smtp::Error;

/// Why the SMTP client could not be set up from `[providers.smtp]`.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// `from` or `reply_to` is not a mailbox.
    #[error(transparent)]
    Sender(#[from] EmailMessageError),
    /// `username` without `password`, or the reverse.
    #[error("[providers.smtp] needs both username and password, or neither")]
    IncompleteCredentials,
    /// The TLS parameters for `host` could not be built.
    #[error("TLS setup for SMTP host {host} failed: {source}")]
    Tls {
        host: String,
        #[source]
        source: SmtpFailure,
    },
}

/// The SMTP provider (`smtp`, channel e-mail).
///
/// Sends go through lettre's connection pool. The pool's `max_size` only caps
/// *idle* connections, so the client also holds at most `pool_size` SMTP
/// conversations open at once (default: the provider's concurrency).
/// lettre's async transport only times out the TCP connect, so every send is
/// bounded by `limits.timeout` here; after such a timeout the pool is replaced,
/// because the abandoned connection would otherwise be parked and reused out
/// of step with the server. Must be created inside a Tokio runtime (the pool
/// spawns its cleanup task).
pub struct SmtpEmail {
    host: String,
    port: u16,
    tls: SmtpTls,
    builder: AsyncSmtpTransportBuilder,
    transport: RwLock<Transport>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    timeout: Duration,
    conversations: Arc<Semaphore>,
    clock: SharedClock,
}

impl fmt::Debug for SmtpEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpEmail")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.email.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpEmail {
    /// Builds the client and its (empty) connection pool. No connection is
    /// made until the first send.
    pub fn new(settings: &SmtpSettings, clock: SharedClock) -> Result<Self, SmtpError> {
        let limits = settings.limits();
        let from = email_message::parse_mailbox(&settings.from)?;
        let reply_to = settings
            .reply_to
            .as_deref()
            .map(email_message::parse_mailbox)
            .transpose()?;
        let host = settings.host.trim().to_owned();
        let tls_error = |source| SmtpError::Tls {
            host: host.clone(),
            source,
        };
        let (builder, default_port) = match settings.tls {
            SmtpTls::Starttls => (Transport::starttls_relay(&host).map_err(tls_error)?, 587),
            SmtpTls::Implicit => (Transport::relay(&host).map_err(tls_error)?, 465),
            SmtpTls::None => (Transport::builder_dangerous(host.clone()), 25),
        };
        let port = settings.port.unwrap_or(default_port);
        let pool_size = settings
            .pool_size
            .unwrap_or(u32::try_from(limits.concurrency).unwrap_or(u32::MAX))
            .max(1);
        // lettre applies its timeout to the TCP connect only; keep it shorter
        // than the whole send so a connect timeout is seen as such.
        let connect_timeout = (limits.timeout / 2).min(Duration::from_secs(10));
        let mut builder = builder
            .port(port)
            .timeout(Some(connect_timeout))
            .pool_config(
                PoolConfig::new()
                    .min_idle(0)
                    .max_size(pool_size)
                    .idle_timeout(Duration::from_secs(60)),
            );
        match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ));
            }
            (None, None) => {}
            _ => return Err(SmtpError::IncompleteCredentials),
        }
        let transport = builder.clone().build();
        Ok(SmtpEmail {
            host,
            port,
            tls: settings.tls,
            builder,
            transport: RwLock::new(transport),
            from,
            reply_to,
            timeout: limits.timeout,
            conversations: Arc::new(Semaphore::new(pool_size as usize)),
            clock,
        })
    }

    fn current_transport(&self) -> Transport {
        match self.transport.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Drops every pooled connection: a fresh pool takes over, the old one is
    /// shut down once its connections come back.
    fn renew_transport(&self) {
        let fresh = self.builder.clone().build();
        let old = match self.transport.write() {
            Ok(mut t) => std::mem::replace(&mut *t, fresh),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), fresh),
        };
        // Shutting down sends QUIT on every parked connection, and lettre
        // waits for the answer without a timeout: bound it, dropping what is
        // left closes the sockets.
        let grace = self.timeout;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(grace, old.shutdown()).await;
        });
    }

    async fn send_message(&self, message: &lettre::Message) -> Result<(), SendError> {
        // Waiting for a free conversation does not count against the timeout.
        let _permit = self.conversations.acquire().await.map_err(|_| {
            SendError::new(
                FailureClass::Transient {
                    outcome_unknown: false,
                },
                "shutdown",
                "the SMTP client is shutting down",
            )
        })?;
        // One more try when the pool was swapped between taking the transport
        // and asking it for a connection.
        for _ in 0..2 {
            let transport = self.current_transport();
            match tokio::time::timeout(self.timeout, transport.send(message.clone())).await {
                Ok(Ok(_reply)) => return Ok(()),
                Ok(Err(e)) if e.is_transport_shutdown() => continue,
                Ok(Err(e)) => return Err(classify(&e)),
                Err(_) => {
                    self.renew_transport();
                    return Err(SendError::new(
                        FailureClass::Transient {
                            outcome_unknown: true,
                        },
                        "timeout",
                        format!(
                            "no complete SMTP answer within {:?}; the server may have accepted the message",
                            self.timeout
                        ),
                    ));
                }
            }
        }
        Err(SendError::new(
            FailureClass::Transient {
                outcome_unknown: false,
            },
            "shutdown",
            "the SMTP connection pool was shut down",
        ))
    }
}

#[async_trait]
impl Provider for SmtpEmail {
    fn name(&self) -> &str {
        "smtp"
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, msg: &Outgoing) -> SendResult {
        let message =
            email_message::build(msg, &self.from, self.reply_to.as_ref(), self.clock.now())
                .map_err(build_error)?;
        let message_id = email_message::message_id(msg, self.from.email.domain());
        let to = Email::from_trusted(msg.address.clone()).masked();
        match self.send_message(&message).await {
            Ok(()) => {
                tracing::debug!(message.id = msg.message_id, to = %to, "smtp: accepted");
                Ok(Accepted {
                    provider_message_id: Some(
                        message_id
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_owned(),
                    ),
                })
            }
            Err(mut e) => {
                // Replies often quote the recipient: keep only the masked form.
                e.message = e.message.replace(msg.address.trim(), &to);
                tracing::debug!(
                    message.id = msg.message_id, to = %to, code = %e.code, class = ?e.class,
                    "smtp: not accepted"
                );
                Err(e)
            }
        }
    }
}

/// A message that could not be built: nothing was sent.
fn build_error(e: EmailMessageError) -> SendError {
    let class = FailureClass::Permanent {
        suppress_address: matches!(e, EmailMessageError::InvalidRecipient(_)),
    };
    let code = match e {
        EmailMessageError::InvalidRecipient(_) => "invalid_address",
        EmailMessageError::NotEmail(_) => "wrong_channel",
        _ => "message",
    };
    SendError::new(class, code, e.to_string())
}

/// Classifies a lettre SMTP error (see the module documentation).
pub fn classify(e: &SmtpFailure) -> SendError {
    if let Some(code) = e.status() {
        let n = u16::from(code);
        let enhanced = enhanced_status(e);
        let class = reply_class(n, enhanced);
        return SendError::new(class, n.to_string(), e.to_string());
    }
    let (class, code) = if e.is_tls() {
        (FailureClass::ProviderDown, "tls")
    } else if e.is_client() {
        (FailureClass::ProviderDown, "client")
    } else if e.is_transport_shutdown() {
        (
            FailureClass::Transient {
                outcome_unknown: false,
            },
            "shutdown",
        )
    } else if e.is_response() {
        (
            FailureClass::Transient {
                outcome_unknown: true,
            },
            "response",
        )
    } else if never_connected(e) {
        (FailureClass::ProviderDown, "connect")
    } else {
        (
            FailureClass::Transient {
                outcome_unknown: true,
            },
            "network",
        )
    };
    SendError::new(class, code, e.to_string())
}

/// The class of a negative SMTP reply.
fn reply_class(code: u16, enhanced: Option<(u8, u16, u16)>) -> FailureClass {
    let permanent = |suppress_address| FailureClass::Permanent { suppress_address };
    match code {
        530 | 534 | 535 | 538 => FailureClass::ProviderDown,
        550 | 551 | 553 => match enhanced {
            Some((_, 7, _)) => permanent(false),
            Some((_, 1, 7 | 8)) => FailureClass::ProviderDown,
            _ => permanent(true),
        },
        421 => FailureClass::RateLimited(RateWait::Unspecified),
        400..=499 => FailureClass::Transient {
            outcome_unknown: false,
        },
        _ => permanent(false),
    }
}

/// Whether the failure happened before any SMTP conversation: connection
/// refused, unreachable, timed-out connect, or a name that did not resolve
/// (lettre's connection errors carry an `io::Error` of these kinds, or only
/// a message when resolution gave no address).
fn never_connected(e: &SmtpFailure) -> bool {
    use std::io::ErrorKind;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::TimedOut
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::NotFound
            );
        }
        source = s.source();
    }
    true
}

/// The RFC 3463 enhanced status code (`class.subject.detail`) that starts the
/// reply, if the server sent one.
fn enhanced_status(e: &SmtpFailure) -> Option<(u8, u16, u16)> {
    let reply = std::error::Error::source(e)?.to_string();
    parse_enhanced(reply.split_whitespace().next()?)
}

fn parse_enhanced(token: &str) -> Option<(u8, u16, u16)> {
    let mut parts = token.split('.');
    let class = parts.next()?.parse::<u8>().ok()?;
    let subject = parts.next()?.parse::<u16>().ok()?;
    let detail = parts.next()?.parse::<u16>().ok()?;
    (parts.next().is_none() && matches!(class, 2 | 4 | 5) && subject < 1000 && detail < 1000)
        .then_some((class, subject, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes() {
        assert_eq!(parse_enhanced("5.1.1"), Some((5, 1, 1)));
        assert_eq!(parse_enhanced("4.7.0"), Some((4, 7, 0)));
        assert_eq!(parse_enhanced("5.1"), None);
        assert_eq!(parse_enhanced("5.1.1.1"), None);
        assert_eq!(parse_enhanced("User"), None);
        assert_eq!(parse_enhanced("3.1.1"), None);
    }

    #[test]
    fn reply_codes() {
        let perm = |s| FailureClass::Permanent {
            suppress_address: s,
        };
        assert_eq!(reply_class(550, None), perm(true));
        assert_eq!(reply_class(550, Some((5, 1, 1))), perm(true));
        assert_eq!(reply_class(551, None), perm(true));
        assert_eq!(reply_class(553, None), perm(true));
        assert_eq!(reply_class(550, Some((5, 7, 1))), perm(false));
        assert_eq!(
            reply_class(553, Some((5, 1, 8))),
            FailureClass::ProviderDown
        );
        assert_eq!(reply_class(552, None), perm(false));
        assert_eq!(reply_class(554, None), perm(false));
        assert_eq!(reply_class(535, None), FailureClass::ProviderDown);
        assert_eq!(reply_class(530, None), FailureClass::ProviderDown);
        assert_eq!(
            reply_class(421, None),
            FailureClass::RateLimited(RateWait::Unspecified)
        );
        for c in [450, 451, 452] {
            assert_eq!(
                reply_class(c, None),
                FailureClass::Transient {
                    outcome_unknown: false
                }
            );
        }
    }
}
