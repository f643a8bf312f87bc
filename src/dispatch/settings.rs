//! `[dispatch]`, `[channels]` and `[providers.*]`: how the outbox is drained
//! and through which providers. With no credentials configured every channel
//! uses the built-in `file` provider.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::store::Channel;

/// `[dispatch]`: the outbox worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSettings {
    /// Messages claimed per round trip.
    pub claim_batch: usize,
    /// How long a claim holds a message before another worker may take it.
    pub lease_seconds: u64,
    /// Attempts before a message is `dead`.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub backoff_base_seconds: u64,
    /// Longest retry delay.
    pub backoff_max_seconds: u64,
    /// Pause between polls when the outbox is empty.
    pub idle_poll_ms: u64,
    /// After a send whose outcome is unknown (a timeout once the request
    /// left), how long to wait for a delivery receipt before sending again.
    pub reconcile_seconds: u64,
}

impl DispatchSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    /// Reasons the settings cannot work, as `dispatch.<field>: …`.
    pub fn check(&self) -> Result<(), String> {
        if self.claim_batch == 0 || self.claim_batch > 10_000 {
            return Err("dispatch.claim_batch must be between 1 and 10000".into());
        }
        if self.lease_seconds < 10 {
            return Err("dispatch.lease_seconds must be at least 10 (a lease shorter than a provider's timeout lets a second worker send the same message)".into());
        }
        if self.max_attempts == 0 {
            return Err("dispatch.max_attempts must be at least 1".into());
        }
        if self.backoff_base_seconds == 0 || self.backoff_base_seconds > self.backoff_max_seconds {
            return Err("dispatch.backoff_base_seconds must be at least 1 and at most dispatch.backoff_max_seconds".into());
        }
        Ok(())
    }
}

/// `[channels]`: providers per channel, in failover order. Empty: the
/// configured provider of that channel if there is one, else `file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRoutes {
    #[serde(default)]
    pub sms: Vec<String>,
    #[serde(default)]
    pub email: Vec<String>,
    #[serde(default)]
    pub wechat: Vec<String>,
}

impl ChannelRoutes {
    pub fn for_channel(&self, channel: Channel) -> &[String] {
        match channel {
            Channel::Sms => &self.sms,
            Channel::Email => &self.email,
            Channel::Wechat => &self.wechat,
        }
    }
}

/// Limits every provider takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Sends per second (0: unlimited).
    pub rate_per_second: u32,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// `[providers.*]`: a section per configured provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersSettings {
    pub file: Option<FileSettings>,
    pub aliyun: Option<AliyunSettings>,
    pub tencent: Option<TencentSettings>,
    pub twilio: Option<TwilioSettings>,
    pub smtp: Option<SmtpSettings>,
    pub wechat: Option<WechatSettings>,
}

macro_rules! limits {
    ($t:ty, $conc:expr, $rate:expr, $timeout_ms:expr) => {
        impl $t {
            /// Concurrency, rate and timeout, with this provider's defaults.
            pub fn limits(&self) -> Limits {
                Limits {
                    concurrency: self.concurrency.unwrap_or($conc).max(1),
                    rate_per_second: self.rate_per_second.unwrap_or($rate),
                    timeout: Duration::from_millis(self.timeout_ms.unwrap_or($timeout_ms)),
                }
            }
        }
    };
}

/// `[providers.file]`: writes messages under `data_dir/outbox/<channel>/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub concurrency: Option<usize>,
    pub rate_per_second: Option<u32>,
    pub timeout_ms: Option<u64>,
}
limits!(FileSettings, 4, 0, 10_000);

/// `[providers.aliyun]`: Dysmsapi 2017-05-25.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunSettings {
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    /// Default `https://dysmsapi.aliyuncs.com`.
    pub base_url: Option<String>,
    /// Send through `SendBatchSms` (up to 100 numbers per call) when several
    /// messages share a template.
    #[serde(default)]
    pub batch: bool,
    /// Request signature: `acs3` (ACS3-HMAC-SHA256, default) or `rpc` (the
    /// legacy HMAC-SHA1 RPC signature, for accounts or gateways that still
    /// need it).
    #[serde(default)]
    pub signature: AliyunSignature,
    pub concurrency: Option<usize>,
    pub rate_per_second: Option<u32>,
    pub timeout_ms: Option<u64>,
}
limits!(AliyunSettings, 64, 5000, 5_000);

/// How Aliyun requests are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AliyunSignature {
    /// ACS3-HMAC-SHA256: parameters in the query (SendBatchSms: the JSON
    /// arrays in a form body), signed headers and `Authorization`.
    #[default]
    Acs3,
    /// RPC "SignatureVersion 1.0" HMAC-SHA1: every parameter and `Signature`
    /// in a form body.
    Rpc,
}

/// `[providers.tencent]`: SMS 2021-01-11.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TencentSettings {
    pub secret_id: String,
    pub secret_key: SecretString,
    /// `SmsSdkAppId`.
    pub sdk_app_id: String,
    /// Default `ap-guangzhou`.
    pub region: Option<String>,
    /// Default `https://sms.tencentcloudapi.com`.
    pub base_url: Option<String>,
    pub concurrency: Option<usize>,
    pub rate_per_second: Option<u32>,
    pub timeout_ms: Option<u64>,
}
limits!(TencentSettings, 64, 3000, 5_000);

/// `[providers.twilio]`: SMS for stores abroad.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// Sender number, or use `messaging_service_sid`.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// `StatusCallback` URL sent with every message, for delivery receipts.
    pub status_callback: Option<String>,
    /// Default `https://api.twilio.com`.
    pub base_url: Option<String>,
    pub concurrency: Option<usize>,
    pub rate_per_second: Option<u32>,
    pub timeout_ms: Option<u64>,
}
limits!(TwilioSettings, 16, 100, 10_000);

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on the same host or in tests.
    None,
}

/// `[providers.smtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The sender address (`From`), e.g. `会员中心 <club@example.cn>`.
    pub from: String,
    /// Optional `Reply-To`.
    pub reply_to: Option<String>,
    /// Pooled connections.
    pub pool_size: Option<u32>,
    pub concurrency: Option<usize>,
    pub rate_per_second: Option<u32>,
    pub timeout_ms: Option<u64>,
}
limits!(SmtpSettings, 8, 0, 30_000);

/// `[providers.wechat]`: official-account template messages and
/// mini-program subscribe messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatSettings {
    pub app_id: String,
    pub app_secret: SecretString,
    /// Default `https://api.weixin.qq.com`.
    pub base_url: Option<String>,
    /// Token configured for server callbacks (verifies `TEMPLATESENDJOBFINISH`).
    pub callback_token: Option<SecretString>,
    /// Mini-program a template message links to (`miniprogram.appid`).
    pub mini_program_app_id: Option<String>,
    /// `miniprogram_state` of subscribe messages: `formal` (default), `trial`, `developer`.
    pub mini_program_state: Option<String>,
    pub concurrency: Option<usize>,
    pub rate_per_second: Option<u32>,
    pub timeout_ms: Option<u64>,
}
limits!(WechatSettings, 32, 500, 5_000);
