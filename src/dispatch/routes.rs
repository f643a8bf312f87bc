//! Which providers serve each channel, in failover order, each behind its
//! own concurrency limit and rate limit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::dispatch::provider::Provider;
use crate::dispatch::providers::aliyun::AliyunSms;
use crate::dispatch::providers::file::FileProvider;
use crate::dispatch::providers::smtp::SmtpEmail;
use crate::dispatch::providers::tencent::TencentSms;
use crate::dispatch::providers::twilio::TwilioSms;
use crate::dispatch::providers::wechat::WechatClient;
use crate::dispatch::settings::Limits;
use crate::metrics::ProviderMeters;
use crate::store::Channel;

/// Why the providers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(
        "[channels] {channel} names provider {name:?}, which does not exist (known: file, aliyun, tencent, twilio, smtp, wechat)"
    )]
    Unknown { channel: Channel, name: String },
    #[error("[channels] {channel} names provider {name:?}, which sends {sends}, not {channel}")]
    WrongChannel {
        channel: Channel,
        name: String,
        sends: Channel,
    },
    #[error(
        "[channels] {channel} names provider {name:?}, but [providers.{name}] is not configured"
    )]
    NotConfigured { channel: Channel, name: String },
    #[error("[channels] {channel} names provider {name:?} twice")]
    Repeated { channel: Channel, name: String },
    #[error("[providers.{name}]: {reason}")]
    Build { name: String, reason: String },
}

/// One provider with its limits.
#[derive(Debug)]
pub struct Slot {
    pub provider: Arc<dyn Provider>,
    permits: Semaphore,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Registered on first use after the recorder is installed.
    meters: OnceLock<ProviderMeters>,
}

impl Slot {
    /// Wrap `provider` with `limits`.
    pub fn new(provider: Arc<dyn Provider>, limits: Limits) -> Slot {
        Slot {
            provider,
            permits: Semaphore::new(limits.concurrency.max(1)),
            limiter: NonZeroU32::new(limits.rate_per_second)
                .map(|r| RateLimiter::direct(Quota::per_second(r))),
            meters: OnceLock::new(),
        }
    }

    /// The provider's metrics (registered on first use once the recorder
    /// is installed; until then they count nothing).
    pub fn meters(&self) -> &ProviderMeters {
        if crate::metrics::handle().is_none() {
            return ProviderMeters::noop();
        }
        self.meters
            .get_or_init(|| ProviderMeters::new(self.provider.channel(), self.name()))
    }

    pub fn name(&self) -> &str {
        self.provider.name()
    }

    /// Wait for a free connection and for `n` sends' worth of rate.
    pub async fn ready(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        let permit = self.permits.acquire().await.ok()?;
        if let Some(l) = &self.limiter {
            for _ in 0..n.max(1) {
                l.until_ready().await;
            }
        }
        Some(permit)
    }
}

/// The providers of each channel, in failover order.
#[derive(Debug, Default)]
pub struct Routes {
    by_channel: HashMap<Channel, Vec<Arc<Slot>>>,
}

impl Routes {
    /// No providers at all.
    pub fn empty() -> Routes {
        Routes::default()
    }

    /// Append `slot` to `channel`'s chain.
    pub fn add(&mut self, channel: Channel, slot: Slot) {
        self.by_channel
            .entry(channel)
            .or_default()
            .push(Arc::new(slot));
    }

    /// The chain of `channel` (empty when none is set up).
    pub fn chain(&self, channel: Channel) -> &[Arc<Slot>] {
        self.by_channel.get(&channel).map_or(&[], Vec::as_slice)
    }

    /// `sms: aliyun → tencent`, … for the start-up log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for ch in [Channel::Sms, Channel::Email, Channel::Wechat] {
            let names: Vec<&str> = self.chain(ch).iter().map(|s| s.name()).collect();
            if !names.is_empty() {
                parts.push(format!("{ch}: {}", names.join(" → ")));
            }
        }
        parts.join(", ")
    }

    /// The routes the configuration asks for. A channel without a list in
    /// `[channels]` uses its configured providers, or `file` when none is.
    pub fn from_settings(settings: &Settings, clock: &SharedClock) -> Result<Routes, RouteError> {
        let mut routes = Routes::empty();
        let outbox = settings.data_dir.join("outbox");
        for channel in [Channel::Sms, Channel::Email, Channel::Wechat] {
            let listed = settings.channels.for_channel(channel);
            let names: Vec<String> = if listed.is_empty() {
                let configured = configured_for(settings, channel);
                if configured.is_empty() {
                    vec!["file".to_owned()]
                } else {
                    configured
                }
            } else {
                listed.to_vec()
            };
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    return Err(RouteError::Repeated {
                        channel,
                        name: name.clone(),
                    });
                }
                let slot = build(settings, &outbox, channel, name, clock)?;
                routes.add(channel, slot);
            }
        }
        Ok(routes)
    }
}

/// The providers configured under `[providers]` that send on `channel`.
fn configured_for(settings: &Settings, channel: Channel) -> Vec<String> {
    let p = &settings.providers;
    let candidates: [(bool, &str, Channel); 5] = [
        (p.aliyun.is_some(), "aliyun", Channel::Sms),
        (p.tencent.is_some(), "tencent", Channel::Sms),
        (p.twilio.is_some(), "twilio", Channel::Sms),
        (p.smtp.is_some(), "smtp", Channel::Email),
        (p.wechat.is_some(), "wechat", Channel::Wechat),
    ];
    candidates
        .into_iter()
        .filter(|(on, _, ch)| *on && *ch == channel)
        .map(|(_, name, _)| name.to_owned())
        .collect()
}

fn build(
    settings: &Settings,
    outbox: &Path,
    channel: Channel,
    name: &str,
    clock: &SharedClock,
) -> Result<Slot, RouteError> {
    let p = &settings.providers;
    let not_configured = || RouteError::NotConfigured {
        channel,
        name: name.to_owned(),
    };
    let failed = |reason: String| RouteError::Build {
        name: name.to_owned(),
        reason,
    };
    let sends = |sends: Channel| {
        if sends == channel {
            Ok(())
        } else {
            Err(RouteError::WrongChannel {
                channel,
                name: name.to_owned(),
                sends,
            })
        }
    };
    let built: (Arc<dyn Provider>, Limits) = match name {
        "file" => {
            let s = p.file.clone().unwrap_or_default();
            let mut f = FileProvider::new(outbox, channel, clock.clone());
            if let Some(smtp) = &p.smtp {
                f = f.with_email_from(smtp.from.clone());
            }
            (Arc::new(f), s.limits())
        }
        "aliyun" => {
            sends(Channel::Sms)?;
            let s = p.aliyun.as_ref().ok_or_else(not_configured)?;
            let c = AliyunSms::new(s, clock.clone()).map_err(|e| failed(e.to_string()))?;
            (Arc::new(c), s.limits())
        }
        "tencent" => {
            sends(Channel::Sms)?;
            let s = p.tencent.as_ref().ok_or_else(not_configured)?;
            let c = TencentSms::new(s, clock.clone()).map_err(|e| failed(e.to_string()))?;
            (Arc::new(c), s.limits())
        }
        "twilio" => {
            sends(Channel::Sms)?;
            let s = p.twilio.as_ref().ok_or_else(not_configured)?;
            let c = TwilioSms::new(s, clock.clone()).map_err(|e| failed(e.to_string()))?;
            (Arc::new(c), s.limits())
        }
        "smtp" => {
            sends(Channel::Email)?;
            let s = p.smtp.as_ref().ok_or_else(not_configured)?;
            let c = SmtpEmail::new(s, clock.clone()).map_err(|e| failed(e.to_string()))?;
            (Arc::new(c), s.limits())
        }
        "wechat" => {
            sends(Channel::Wechat)?;
            let s = p.wechat.as_ref().ok_or_else(not_configured)?;
            let c = WechatClient::new(s, clock.clone()).map_err(|e| failed(e.to_string()))?;
            (Arc::new(c), s.limits())
        }
        _ => {
            return Err(RouteError::Unknown {
                channel,
                name: name.to_owned(),
            });
        }
    };
    Ok(Slot::new(built.0, built.1))
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use std::sync::Arc;

    use figment::Jail;

    use super::*;
    use crate::clock::SystemClock;

    fn routes(toml: &str) -> Result<Routes, RouteError> {
        let mut out = None;
        Jail::expect_with(|jail| {
            jail.create_file("outreach.toml", toml)?;
            let settings = Settings::load(None).expect("settings load");
            let clock: SharedClock = Arc::new(SystemClock);
            out = Some(Routes::from_settings(&settings, &clock));
            Ok(())
        });
        out.expect("ran")
    }

    const ALIYUN: &str =
        "[providers.aliyun]\naccess_key_id = \"LTAI\"\naccess_key_secret = \"s\"\n";
    const TENCENT: &str = "[providers.tencent]\nsecret_id = \"AKID\"\nsecret_key = \"s\"\nsdk_app_id = \"1400000000\"\n";

    #[test]
    fn without_credentials_every_channel_writes_files() {
        let r = routes("").unwrap();
        assert_eq!(r.describe(), "sms: file, email: file, wechat: file");
    }

    #[test]
    fn configured_providers_take_their_channel_in_a_fixed_order() {
        let r = routes(&format!("{TENCENT}{ALIYUN}")).unwrap();
        assert_eq!(
            r.describe(),
            "sms: aliyun → tencent, email: file, wechat: file"
        );
        let r = routes(&format!(
            "{TENCENT}{ALIYUN}[channels]\nsms = [\"tencent\", \"aliyun\", \"file\"]\n"
        ))
        .unwrap();
        assert_eq!(
            r.describe(),
            "sms: tencent → aliyun → file, email: file, wechat: file"
        );
    }

    #[test]
    fn bad_channel_lists_are_refused_with_the_reason() {
        let e = routes("[channels]\nsms = [\"aliyun\"]\n").unwrap_err();
        assert!(matches!(e, RouteError::NotConfigured { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("[providers.aliyun] is not configured"),
            "{e}"
        );
        let e = routes(&format!("{ALIYUN}[channels]\nemail = [\"aliyun\"]\n")).unwrap_err();
        assert!(matches!(e, RouteError::WrongChannel { .. }), "{e}");
        let e = routes("[channels]\nsms = [\"sendgrid\"]\n").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = routes(&format!(
            "{ALIYUN}[channels]\nsms = [\"aliyun\", \"aliyun\"]\n"
        ))
        .unwrap_err();
        assert!(matches!(e, RouteError::Repeated { .. }), "{e}");
    }
}
