//! A shop whose send log has sent, failed and suppressed messages, and the
//! HTTP server in the test process in front of it (port 0), for the ops
//! page, `/metrics` and authentication tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use outreach::campaigns::SendWindow;
use outreach::campaigns::watch::{self, WatchOptions};
use outreach::clock::{FixedClock, SharedClock};
use outreach::dispatch::routes::{Routes, Slot};
use outreach::dispatch::settings::{DispatchSettings, Limits};
use outreach::dispatch::worker::{Dispatcher, FixedWindow};
use outreach::dispatch::{Accepted, FailureClass, Outgoing, Provider, SendError, SendResult};
use outreach::domain::Consent;
use outreach::http::{self, AppState, HookSecrets};
use outreach::store::{Channel, SharedStore};
use outreach::unsubscribe::LinkSigner;
use tokio_util::sync::CancellationToken;

use super::shop::{SHANGHAI, campaign, customer, run_at, seed, t, templates};

/// The birthday campaign of the fixture (SMS only, on the day).
pub const BIRTHDAY: &str = "id: bday\nname: 生日礼\nschedule: \"0 10 * * *\"\n\
    trigger: { type: birthday, days_before: 0 }\n\
    coupon: { kind: amount_off, value: 10, min_spend: 30, valid_days: 14, code_prefix: BDAY }\n\
    channels: [sms]\ntemplate: birthday\npriority: 10\n";

/// Aliyun's code for text it refuses: a permanent failure.
pub const REFUSED: &str = "isv.SMS_CONTENT_ILLEGAL";

/// When the server's clock stands.
pub const NOW: &str = "2026-03-10T10:05:00+08:00";

/// A provider that accepts everything except the numbers it is told to refuse.
#[derive(Debug)]
pub struct TestSms {
    pub name: String,
    pub refuse: BTreeSet<String>,
}

#[async_trait]
impl Provider for TestSms {
    fn name(&self) -> &str {
        &self.name
    }
    fn channel(&self) -> Channel {
        Channel::Sms
    }
    async fn send(&self, msg: &Outgoing) -> SendResult {
        if self.refuse.contains(&msg.address) {
            return Err(SendError::new(
                FailureClass::Permanent {
                    suppress_address: false,
                },
                REFUSED,
                "短信内容违规",
            ));
        }
        Ok(Accepted {
            provider_message_id: Some(format!("{}-{}", self.name, msg.message_id)),
        })
    }
}

/// What the fixture wrote.
#[derive(Debug, Clone)]
pub struct Shop {
    /// Customers whose message was sent.
    pub sent: Vec<String>,
    /// The customer whose message the provider refused.
    pub failed: String,
    /// Customers without SMS consent (`suppressed: no_consent`).
    pub suppressed: Vec<String>,
    /// The provider's name (unique per call, so counters are this test's).
    pub provider: String,
}

/// Six customers with a birthday on March 10 who agreed to SMS (one of
/// whose messages the provider refuses) and two who did not; the birthday
/// campaign planned at 10:00 and the outbox drained at 10:01.
pub async fn shop(store: &SharedStore) -> Shop {
    let mut customers = Vec::new();
    for i in 1..=8 {
        let mut c = customer(&format!("C{i:04}"), "SH-001", Some("03-10"));
        if i > 6 {
            c.sms_opt_in = Consent::No;
        }
        customers.push(c);
    }
    seed(store, &customers).await;
    let tpl = templates();
    run_at(
        store,
        &campaign(BIRTHDAY, &tpl),
        &tpl,
        "2026-03-10T10:00:00+08:00",
        None,
    )
    .await;
    let provider = format!("sms-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    dispatch(
        store,
        "2026-03-10T10:01:00+08:00",
        &provider,
        &["+8613800130003"],
    )
    .await;
    Shop {
        sent: ["C0001", "C0002", "C0004", "C0005", "C0006"]
            .map(String::from)
            .to_vec(),
        failed: "C0003".into(),
        suppressed: ["C0007", "C0008"].map(String::from).to_vec(),
        provider,
    }
}

/// Drain the outbox at `at` through `provider`, refusing `refuse`.
pub async fn dispatch(store: &SharedStore, at: &str, provider: &str, refuse: &[&str]) {
    // As the daemon does: the recorder first, so the worker's counters count.
    outreach::metrics::install();
    let mut routes = Routes::empty();
    routes.add(
        Channel::Sms,
        Slot::new(
            Arc::new(TestSms {
                name: provider.to_owned(),
                refuse: refuse.iter().map(|s| (*s).to_owned()).collect(),
            }),
            Limits {
                concurrency: 4,
                rate_per_second: 0,
                timeout: Duration::from_secs(5),
            },
        ),
    );
    let clock: SharedClock = Arc::new(FixedClock(t(at)));
    let report = Dispatcher::new(
        store.clone(),
        clock,
        Arc::new(routes),
        Arc::new(FixedWindow(SendWindow::default_hours())),
        DispatchSettings {
            claim_batch: 50,
            lease_seconds: 120,
            max_attempts: 3,
            backoff_base_seconds: 60,
            backoff_max_seconds: 3600,
            idle_poll_ms: 20,
            reconcile_seconds: 600,
        },
        SHANGHAI,
    )
    .drain()
    .await
    .unwrap();
    assert!(report.claimed > 0, "{report:?}");
}

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub token: Option<&'a str>,
    /// Where to listen (`127.0.0.1:0`, or `0.0.0.0:0` for a listener
    /// beyond loopback).
    pub bind: &'a str,
    /// Campaign files (name, text) in the campaigns folder.
    pub campaign_files: Vec<(&'a str, &'a str)>,
    pub public_url: Option<&'a str>,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            token: None,
            bind: "127.0.0.1:0",
            campaign_files: vec![("bday.yaml", BIRTHDAY)],
            public_url: None,
        }
    }
}

/// Start the HTTP server on `store` as `spec` says, its clock at [`NOW`].
pub async fn serve(store: &SharedStore, spec: Spec<'_>) -> Server {
    outreach::metrics::install();
    let dir = tempfile::tempdir().unwrap();
    let campaigns_dir = dir.path().join("campaigns");
    std::fs::create_dir(&campaigns_dir).unwrap();
    for (name, text) in &spec.campaign_files {
        std::fs::write(campaigns_dir.join(name), text).unwrap();
    }
    let templates_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let stop = CancellationToken::new();
    let (campaigns, _watcher) = watch::start(
        store.clone(),
        campaigns_dir,
        templates_dir,
        WatchOptions::default(),
        stop.clone(),
    )
    .await;
    let listener = http::bind(spec.bind.parse().unwrap()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let clock: SharedClock = Arc::new(FixedClock(t(NOW)));
    let public_url = spec.public_url.map_or_else(|| base.clone(), str::to_owned);
    let state = AppState {
        store: store.clone(),
        clock: clock.clone(),
        started_at: t("2026-03-10T09:00:00+08:00"),
        campaigns,
        links: Arc::new(LinkSigner::new(&"k".to_owned().into(), &public_url)),
        token: spec.token.map(|t| t.to_owned().into()),
        hooks: Arc::new(HookSecrets {
            path_token: Some("hooks-token-0123456789".to_owned().into()),
            wechat_token: None,
            twilio_auth_token: None,
            public_url,
        }),
        scheduler: None,
        default_tz: SHANGHAI,
    };
    tokio::spawn(http::serve(listener, state, stop.clone()));
    Server {
        base,
        stop,
        _dir: dir,
    }
}

/// A client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The message id of `customer`'s bday message.
pub async fn message_of(store: &SharedStore, customer: &str) -> i64 {
    store
        .messages_for(Some("bday"), Some(customer))
        .await
        .unwrap()
        .first()
        .unwrap_or_else(|| panic!("{customer} has no message"))
        .id
}
