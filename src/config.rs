//! Configuration: defaults, then `outreach.toml` (or `--config PATH`), then
//! `OUTREACH_<SECTION>__<KEY>` environment variables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::dispatch::settings::{ChannelRoutes, DispatchSettings, ProvidersSettings};
use crate::domain::{StoreCode, StoreInfo};
use crate::scheduler::{RetentionSettings, SchedulerSettings};

/// Errors while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Default IANA time zone for stores that do not name one.
    pub timezone: String,
    pub campaigns_dir: PathBuf,
    pub templates_dir: PathBuf,
    /// Where the file providers write their outbox.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub import: ImportSettings,
    pub campaigns: CampaignSettings,
    pub dispatch: DispatchSettings,
    /// Providers per channel, in failover order.
    #[serde(default)]
    pub channels: ChannelRoutes,
    /// Provider credentials and limits.
    #[serde(default)]
    pub providers: ProvidersSettings,
    /// Stores known before any import, by code.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreSettings>,
    /// Job schedules, watchdog and tick leases.
    #[serde(default)]
    pub scheduler: SchedulerSettings,
    /// What housekeeping deletes, by age.
    #[serde(default)]
    pub retention: RetentionSettings,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://…`.
    pub url: SecretString,
    pub max_connections: u32,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    /// Bearer token for the ops API; required when `addr` is not loopback.
    pub token: Option<SecretString>,
    /// The address customers reach the HTTP server at (unsubscribe links).
    pub public_url: String,
    /// Key that signs unsubscribe links. When unset, one is generated once
    /// and kept in the database, so every process shares it.
    pub link_secret: Option<SecretString>,
    /// Path token of the receipt and reply endpoints of providers that sign
    /// nothing (Aliyun, Tencent): `/hooks/{hooks_token}/aliyun/receipts`, ….
    /// Unset: those endpoints do not exist.
    pub hooks_token: Option<SecretString>,
}

/// `[campaigns]`: rules every campaign follows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSettings {
    /// Default send window, local "HH:MM" (campaigns may set their own).
    pub send_window_start: String,
    pub send_window_end: String,
    /// Frequency cap: at most `cap_messages` marketing messages per customer
    /// per `cap_days` days, across campaigns (0 messages: no cap).
    pub cap_messages: u32,
    pub cap_days: u32,
    /// Candidates planned (and written) per transaction.
    pub batch_size: usize,
}

/// `[import]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettings {
    /// Rows per transaction.
    pub batch_size: usize,
}

/// `[stores.<CODE>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub name: String,
    /// Sign name passed to SMS providers (without 【】).
    pub sms_signature: String,
    /// IANA zone; defaults to the top-level `timezone`.
    pub timezone: Option<String>,
}

/// The defaults of the contract, as a serialisable tree figment can merge.
#[derive(Serialize)]
struct Defaults {
    timezone: &'static str,
    campaigns_dir: &'static str,
    templates_dir: &'static str,
    data_dir: &'static str,
    database: DbDefaults,
    http: HttpDefaults,
    import: ImportDefaults,
    campaigns: CampaignDefaults,
    dispatch: DispatchDefaults,
}
#[derive(Serialize)]
struct DispatchDefaults {
    claim_batch: usize,
    lease_seconds: u64,
    max_attempts: u32,
    backoff_base_seconds: u64,
    backoff_max_seconds: u64,
    idle_poll_ms: u64,
    reconcile_seconds: u64,
}
#[derive(Serialize)]
struct CampaignDefaults {
    send_window_start: &'static str,
    send_window_end: &'static str,
    cap_messages: u32,
    cap_days: u32,
    batch_size: usize,
}
#[derive(Serialize)]
struct DbDefaults {
    url: &'static str,
    max_connections: u32,
}
#[derive(Serialize)]
struct HttpDefaults {
    addr: &'static str,
    public_url: &'static str,
}
#[derive(Serialize)]
struct ImportDefaults {
    batch_size: usize,
}

const DEFAULTS: Defaults = Defaults {
    timezone: "Asia/Shanghai",
    campaigns_dir: "campaigns",
    templates_dir: "templates",
    data_dir: "data",
    database: DbDefaults {
        url: "sqlite://data/outreach.db",
        max_connections: 8,
    },
    http: HttpDefaults {
        addr: "127.0.0.1:8080",
        public_url: "http://127.0.0.1:8080",
    },
    import: ImportDefaults { batch_size: 20_000 },
    campaigns: CampaignDefaults {
        send_window_start: "08:00",
        send_window_end: "21:00",
        cap_messages: 2,
        cap_days: 7,
        batch_size: 10_000,
    },
    dispatch: DispatchDefaults {
        claim_batch: 500,
        lease_seconds: 120,
        max_attempts: 8,
        backoff_base_seconds: 30,
        backoff_max_seconds: 6 * 3600,
        idle_poll_ms: 1_000,
        reconcile_seconds: 600,
    },
};

/// The configuration file read when `--config` is not given, if it exists.
const DEFAULT_FILE: &str = "outreach.toml";

/// Environment variables with this prefix are configuration, except the ones
/// the test suite and the benchmarks read for themselves.
const ENV_PREFIX: &str = "OUTREACH_";
const ENV_NOT_CONFIG: &[&str] = &["test_database_url", "bench_pg_url", "log"];

impl Settings {
    /// Load from `path` (must exist) or `./outreach.toml` (optional), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(DEFAULTS));
        match path {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            None if Path::new(DEFAULT_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_FILE))
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).ignore(ENV_NOT_CONFIG).split("__"));
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        parse_tz(&self.timezone, "timezone")?;
        if self.import.batch_size == 0 || self.import.batch_size > 1_000_000 {
            return Err(ConfigError::Invalid(
                "import.batch_size must be between 1 and 1000000".into(),
            ));
        }
        self.store_infos()?;
        self.send_window()?;
        if self.campaigns.batch_size == 0 || self.campaigns.batch_size > 100_000 {
            return Err(ConfigError::Invalid(
                "campaigns.batch_size must be between 1 and 100000".into(),
            ));
        }
        self.dispatch.check().map_err(ConfigError::Invalid)?;
        self.scheduler.check().map_err(ConfigError::Invalid)?;
        self.retention.check().map_err(ConfigError::Invalid)?;
        if let Some(t) = &self.http.hooks_token {
            use secrecy::ExposeSecret;
            let t = t.expose_secret();
            if t.len() < 16
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::Invalid(
                    "http.hooks_token must be at least 16 characters of letters, digits, '-' or '_' (it is the secret part of the receipt URLs)".into(),
                ));
            }
        }
        if self.campaigns.cap_messages > 0 && self.campaigns.cap_days == 0 {
            return Err(ConfigError::Invalid(
                "campaigns.cap_days must be at least 1 when campaigns.cap_messages is set (0 messages turns the cap off)".into(),
            ));
        }
        Ok(())
    }

    /// The default send window of `[campaigns]`.
    pub fn send_window(&self) -> Result<crate::campaigns::SendWindow, ConfigError> {
        let c = &self.campaigns;
        let parse = |v: &str, field: &str| {
            crate::yaml_file::parse_hhmm(v).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "campaigns.{field} {v:?} is not a time of day; write HH:MM, e.g. \"08:00\""
                ))
            })
        };
        let start = parse(&c.send_window_start, "send_window_start")?;
        let end = parse(&c.send_window_end, "send_window_end")?;
        if start >= end {
            return Err(ConfigError::Invalid(format!(
                "campaigns.send_window_start ({}) must come before campaigns.send_window_end ({})",
                c.send_window_start, c.send_window_end
            )));
        }
        Ok(crate::campaigns::SendWindow { start, end })
    }

    /// The default time zone.
    /// What the configuration says every campaign run follows.
    pub fn run_settings(&self) -> Result<crate::campaigns::run::RunSettings, ConfigError> {
        let c = &self.campaigns;
        Ok(crate::campaigns::run::RunSettings {
            default_tz: self.default_tz(),
            default_window: self.send_window()?,
            cap: (c.cap_messages > 0).then_some((c.cap_messages, c.cap_days)),
            batch_size: c.batch_size,
        })
    }

    pub fn default_tz(&self) -> chrono_tz::Tz {
        // validated at load
        parse_tz(&self.timezone, "timezone").unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// The `[stores]` section as domain values.
    pub fn store_infos(&self) -> Result<Vec<StoreInfo>, ConfigError> {
        self.stores
            .iter()
            .map(|(code, s)| {
                let code = StoreCode::parse(code)
                    .map_err(|e| ConfigError::Invalid(format!("[stores.{code}]: {e}")))?;
                let tz = match &s.timezone {
                    Some(tz) => parse_tz(tz, &format!("stores.{code}.timezone"))?,
                    None => parse_tz(&self.timezone, "timezone")?,
                };
                Ok(StoreInfo {
                    code,
                    name: s.name.clone(),
                    sms_signature: s.sms_signature.clone(),
                    timezone: tz,
                })
            })
            .collect()
    }
}

/// Parse an IANA zone name with a helpful error.
pub fn parse_tz(name: &str, field: &str) -> Result<chrono_tz::Tz, ConfigError> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        ConfigError::Invalid(format!(
            "{field}: unknown time zone {name:?} (use an IANA name such as \"Asia/Shanghai\")"
        ))
    })
}

#[cfg(test)]
// figment's Jail closures return figment::Error, which is large; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_match_the_contract() {
        Jail::expect_with(|_| {
            let s = Settings::load(None).expect("defaults load");
            assert_eq!(s.database.url.expose_secret(), "sqlite://data/outreach.db");
            assert_eq!(s.http.addr.to_string(), "127.0.0.1:8080");
            assert_eq!(s.timezone, "Asia/Shanghai");
            assert_eq!(s.campaigns_dir, PathBuf::from("campaigns"));
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file_and_test_url_is_not_config() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "outreach.toml",
                "[database]\nurl = \"sqlite://x.db\"\n[stores.SH-001]\nname = \"人民广场店\"\nsms_signature = \"早安包子铺\"\n",
            )?;
            jail.set_env("OUTREACH_DATABASE__URL", "postgres://localhost/db");
            jail.set_env("OUTREACH_TEST_DATABASE_URL", "postgres://localhost/test");
            let s = Settings::load(None).expect("loads");
            assert_eq!(s.database.url.expose_secret(), "postgres://localhost/db");
            let stores = s.store_infos().expect("stores");
            assert_eq!(stores[0].timezone, chrono_tz::Asia::Shanghai);
            Ok(())
        });
    }

    #[test]
    fn typos_and_bad_zones_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("outreach.toml", "timezon = \"Asia/Shanghai\"\n")?;
            let e = Settings::load(None).expect_err("unknown field");
            assert!(e.to_string().contains("timezon"), "{e}");
            jail.create_file("outreach.toml", "timezone = \"Asia/Shanghia\"\n")?;
            let e = Settings::load(None).expect_err("bad zone");
            assert!(e.to_string().contains("Asia/Shanghia"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let e = Settings::load(Some(Path::new("/nonexistent/outreach.toml"))).expect_err("missing");
        assert!(matches!(e, ConfigError::Missing(_)));
    }
}
