//! What the HTTP providers share: one pooled client per provider, and the
//! classification of transport failures and bare HTTP statuses.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::dispatch::provider::{FailureClass, RateWait, SendError};
use crate::dispatch::settings::Limits;

/// A pooled HTTPS client (rustls) with the provider's timeout.
pub fn client(limits: &Limits) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(limits.timeout)
        .connect_timeout(limits.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(limits.concurrency)
        .tcp_nodelay(true)
        .user_agent(concat!("outreach/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A request that got no HTTP answer. A refused connection never reached the
/// provider; a timeout or a broken connection may have.
pub fn transport_error(e: &reqwest::Error) -> SendError {
    if e.is_connect() {
        SendError::new(
            FailureClass::Transient {
                outcome_unknown: false,
            },
            "connect",
            format!("could not connect: {e}"),
        )
    } else if e.is_timeout() {
        SendError::new(
            FailureClass::Transient {
                outcome_unknown: true,
            },
            "timeout",
            "no answer within the timeout; the provider may have taken the message",
        )
    } else if e.is_builder() {
        SendError::new(
            FailureClass::ProviderDown,
            "request",
            format!("the request could not be built (check base_url): {e}"),
        )
    } else {
        SendError::new(
            FailureClass::Transient {
                outcome_unknown: true,
            },
            "http",
            format!("the connection failed: {e}"),
        )
    }
}

/// The class of a non-success status whose body carried no provider code:
/// 429 waits as `Retry-After` says, 5xx are retried, 401/403 mean the
/// credentials are wrong (the next provider takes over), other 4xx are
/// permanent for the message.
pub fn status_class(status: StatusCode, headers: &HeaderMap) -> FailureClass {
    if status == StatusCode::TOO_MANY_REQUESTS {
        FailureClass::RateLimited(retry_after(headers).map_or(RateWait::Unspecified, RateWait::For))
    } else if status.is_server_error() {
        FailureClass::Transient {
            outcome_unknown: false,
        }
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        FailureClass::ProviderDown
    } else {
        FailureClass::Permanent {
            suppress_address: false,
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_are_classified() {
        let mut h = HeaderMap::new();
        assert_eq!(
            status_class(StatusCode::TOO_MANY_REQUESTS, &h),
            FailureClass::RateLimited(RateWait::Unspecified)
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(
            status_class(StatusCode::TOO_MANY_REQUESTS, &h),
            FailureClass::RateLimited(RateWait::For(Duration::from_secs(30)))
        );
        assert_eq!(
            status_class(StatusCode::SERVICE_UNAVAILABLE, &h),
            FailureClass::Transient {
                outcome_unknown: false
            }
        );
        assert_eq!(
            status_class(StatusCode::UNAUTHORIZED, &h),
            FailureClass::ProviderDown
        );
        assert_eq!(
            status_class(StatusCode::BAD_REQUEST, &h),
            FailureClass::Permanent {
                suppress_address: false
            }
        );
    }
}
