//! The outbox worker on real campaign messages: sends once, retries with
//! backoff, fails over, gives up, honours leases, opt-outs, send windows and
//! shutdown, applies receipts, and never sends twice with two workers. Each
//! test runs on SQLite, and on PostgreSQL when OUTREACH_TEST_DATABASE_URL is set.

mod common;
#[path = "common/shop.rs"]
mod shop;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use outreach::campaigns::SendWindow;
use outreach::clock::{Clock, SharedClock};
use outreach::dispatch::claim::Claim;
use outreach::dispatch::providers::file::FileProvider;
use outreach::dispatch::routes::{Routes, Slot};
use outreach::dispatch::settings::{DispatchSettings, Limits};
use outreach::dispatch::worker::{Dispatcher, FixedWindow};
use outreach::dispatch::{
    Accepted, FailureClass, Outgoing, Provider, Receipt, ReceiptKey, SendError, SendResult,
};
use outreach::domain::{Consent, Customer};
use outreach::store::{Channel, OptOut, SharedStore};
use outreach::templates::Rendered;
use shop::{SHANGHAI, campaign, customer, run_at, seed, t, templates};
use tokio_util::sync::CancellationToken;

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn at(s: &str) -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(t(s))))
    }
    fn set(&self, s: &str) {
        *self.0.lock().unwrap() = t(s);
    }
    fn advance(&self, d: Duration) {
        let mut g = self.0.lock().unwrap();
        *g += d;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A provider that answers from a script (then accepts), and counts calls.
#[derive(Debug)]
struct Scripted {
    name: &'static str,
    script: Mutex<VecDeque<SendResult>>,
    calls: Mutex<Vec<i64>>,
    delay: Duration,
    /// `max_batch`; the sizes of the batch calls made are kept.
    batch: usize,
    batches: Mutex<Vec<usize>>,
}

impl Scripted {
    fn new(name: &'static str) -> Arc<Scripted> {
        Scripted::with(name, vec![], Duration::ZERO)
    }
    fn with(name: &'static str, script: Vec<SendResult>, delay: Duration) -> Arc<Scripted> {
        Arc::new(Scripted {
            name,
            script: Mutex::new(script.into()),
            calls: Mutex::new(Vec::new()),
            delay,
            batch: 1,
            batches: Mutex::new(Vec::new()),
        })
    }
    fn calls(&self) -> Vec<i64> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    fn channel(&self) -> Channel {
        Channel::Sms
    }
    fn max_batch(&self) -> usize {
        self.batch
    }
    async fn send_batch(&self, msgs: &[Outgoing]) -> Vec<SendResult> {
        self.batches.lock().unwrap().push(msgs.len());
        let mut out = Vec::new();
        for m in msgs {
            out.push(self.send(m).await);
        }
        out
    }
    async fn send(&self, msg: &Outgoing) -> SendResult {
        self.calls.lock().unwrap().push(msg.message_id);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| {
            Ok(Accepted {
                provider_message_id: Some(format!("{}-{}", self.name, msg.message_id)),
            })
        })
    }
}

fn err(class: FailureClass, code: &str) -> SendResult {
    Err(SendError::new(class, code, "scripted"))
}

const TRANSIENT: FailureClass = FailureClass::Transient {
    outcome_unknown: false,
};

fn dispatch_settings(max_attempts: u32) -> DispatchSettings {
    DispatchSettings {
        claim_batch: 7,
        lease_seconds: 120,
        max_attempts,
        backoff_base_seconds: 60,
        backoff_max_seconds: 3600,
        idle_poll_ms: 20,
        reconcile_seconds: 600,
    }
}

fn limits(concurrency: usize) -> Limits {
    Limits {
        concurrency,
        rate_per_second: 0,
        timeout: Duration::from_secs(5),
    }
}

fn dispatcher(
    store: &SharedStore,
    clock: &Arc<TestClock>,
    providers: &[Arc<Scripted>],
    concurrency: usize,
    max_attempts: u32,
) -> Dispatcher {
    let mut routes = Routes::empty();
    for p in providers {
        routes.add(Channel::Sms, Slot::new(p.clone(), limits(concurrency)));
    }
    let clock: SharedClock = clock.clone();
    Dispatcher::new(
        store.clone(),
        clock,
        Arc::new(routes),
        Arc::new(FixedWindow(SendWindow::default_hours())),
        dispatch_settings(max_attempts),
        SHANGHAI,
    )
}

const BIRTHDAY: &str = "id: bday\nschedule: \"0 10 * * *\"\ntrigger: { type: birthday, days_before: 0 }\n\
    coupon: { kind: amount_off, value: 10, valid_days: 14 }\nchannels: [sms]\ntemplate: birthday\n";

/// `n` customers with a birthday on March 10, planned at 10:00 that day.
async fn planned(store: &SharedStore, n: usize) -> Vec<i64> {
    let customers: Vec<Customer> = (1..=n)
        .map(|i| customer(&format!("C{i:04}"), "SH-001", Some("03-10")))
        .collect();
    seed(store, &customers).await;
    let tpl = templates();
    let c = campaign(BIRTHDAY, &tpl);
    let report = run_at(store, &c, &tpl, "2026-03-10T10:00:00+08:00", None).await;
    assert_eq!(report.written, n as u64);
    let rows = store.messages_for(Some("bday"), None).await.unwrap();
    assert!(rows.iter().all(|m| m.status == "queued"), "{rows:?}");
    rows.iter().map(|m| m.id).collect()
}

async fn status_of(store: &SharedStore, id: i64) -> String {
    store.message_detail(id).await.unwrap().unwrap().status
}

async fn sends_each_message_once_and_records_the_attempt(store: SharedStore) {
    let ids = planned(&store, 10).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::new("sms-a");
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 4, 5);
    let r = d.drain().await.unwrap();
    assert_eq!((r.claimed, r.sent), (10, 10), "{r:?}");
    let mut calls = p.calls();
    calls.sort();
    assert_eq!(calls, ids);
    for id in &ids {
        let m = store.message_detail(*id).await.unwrap().unwrap();
        assert_eq!(m.status, "sent");
        assert_eq!(m.provider.as_deref(), Some("sms-a"));
        assert_eq!(m.provider_message_id, Some(format!("sms-a-{id}")));
        assert_eq!(m.attempts, 1);
        assert_eq!(m.sent_at, Some(t("2026-03-10T10:01:00+08:00")));
        assert_eq!(m.history.len(), 1);
        assert_eq!(m.history[0].outcome, "sent");
    }
    // Nothing is sent twice.
    let again = d.drain().await.unwrap();
    assert_eq!(again.claimed, 0);
    assert_eq!(p.calls().len(), 10);
}

async fn a_transient_failure_is_retried_after_a_backoff(store: SharedStore) {
    let ids = planned(&store, 1).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::with("sms-a", vec![err(TRANSIENT, "http 503")], Duration::ZERO);
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 4, 5);
    let r = d.drain().await.unwrap();
    assert_eq!(r.retrying, 1, "{r:?}");
    let m = store.message_detail(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (m.status.as_str(), m.reason.as_deref()),
        ("deferred", Some("retry"))
    );
    let next = m.next_attempt_at.unwrap();
    let wait = next - t("2026-03-10T10:01:00+08:00");
    assert!(
        (30..=60).contains(&wait.num_seconds()),
        "first retry after 30–60 s, got {wait}"
    );
    // Not due yet: nothing happens.
    clock.advance(Duration::from_secs(20));
    assert_eq!(d.drain().await.unwrap().claimed, 0);
    clock.advance(Duration::from_secs(60));
    assert_eq!(d.drain().await.unwrap().sent, 1);
    let m = store.message_detail(ids[0]).await.unwrap().unwrap();
    assert_eq!(m.status, "sent");
    assert_eq!(m.attempts, 2);
    let outcomes: Vec<(u32, &str, Option<&str>)> = m
        .history
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.provider_code.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        vec![(1, "retry", Some("http 503")), (2, "sent", Some("sms-a-1"))]
    );
}

async fn a_message_is_dead_after_its_last_attempt(store: SharedStore) {
    let ids = planned(&store, 1).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::with(
        "sms-a",
        vec![
            err(TRANSIENT, "timeout-1"),
            err(TRANSIENT, "timeout-2"),
            err(TRANSIENT, "timeout-3"),
        ],
        Duration::ZERO,
    );
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 4, 3);
    for _ in 0..3 {
        d.drain().await.unwrap();
        clock.advance(Duration::from_secs(3600));
    }
    let m = store.message_detail(ids[0]).await.unwrap().unwrap();
    assert_eq!(m.status, "dead");
    assert_eq!(m.reason.as_deref(), Some("timeout-3"));
    assert_eq!(m.attempts, 3);
    assert_eq!(m.history.len(), 3);
    // Dead is final.
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(d.drain().await.unwrap().claimed, 0);
    assert_eq!(p.calls().len(), 3);
}

async fn a_permanent_failure_suppresses_the_address(store: SharedStore) {
    let ids = planned(&store, 2).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::with(
        "sms-a",
        vec![err(
            FailureClass::Permanent {
                suppress_address: true,
            },
            "isv.MOBILE_NUMBER_ILLEGAL",
        )],
        Duration::ZERO,
    );
    // One at a time, so the script's failure hits the first message.
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 1, 5);
    let r = d.drain().await.unwrap();
    assert_eq!((r.failed, r.sent), (1, 1), "{r:?}");
    let failed = if status_of(&store, ids[0]).await == "failed" {
        ids[0]
    } else {
        ids[1]
    };
    let m = store.message_detail(failed).await.unwrap().unwrap();
    assert_eq!(m.reason.as_deref(), Some("isv.MOBILE_NUMBER_ILLEGAL"));
    assert!(
        m.detail
            .unwrap()
            .contains("sms-a isv.MOBILE_NUMBER_ILLEGAL")
    );
    let address = m.address.unwrap();
    assert!(store.is_opted_out(Channel::Sms, &address).await.unwrap());
}

async fn a_message_to_an_address_a_provider_refused_is_undeliverable_not_opted_out(
    store: SharedStore,
) {
    let ids = planned(&store, 2).await;
    let first = store.message_detail(ids[0]).await.unwrap().unwrap();
    let done = store
        .record_opt_out(&OptOut {
            channel: Channel::Sms,
            address: first.address.clone().unwrap(),
            source: "receipt:aliyun:MK:0012".into(),
            at: t("2026-03-10T10:00:30+08:00"),
        })
        .await
        .unwrap();
    assert_eq!((done.recorded, done.suppressed), (true, 1));
    let m = store.message_detail(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (m.status.as_str(), m.reason.as_deref()),
        ("suppressed", Some("undeliverable"))
    );
    let detail = m.detail.unwrap_or_default();
    assert!(detail.contains("receipt:aliyun:MK:0012"), "{detail}");
    assert_eq!(status_of(&store, ids[1]).await, "queued");
}

async fn a_provider_outage_fails_over_to_the_next_provider(store: SharedStore) {
    let ids = planned(&store, 3).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let down = || err(FailureClass::ProviderDown, "isv.OUT_OF_SERVICE");
    let a = Scripted::with("aliyun", vec![down(), down(), down()], Duration::ZERO);
    let b = Scripted::new("tencent");
    let d = dispatcher(&store, &clock, &[a.clone(), b.clone()], 4, 5);
    let r = d.drain().await.unwrap();
    assert_eq!((r.failed_over, r.sent), (3, 3), "{r:?}");
    for id in ids {
        let m = store.message_detail(id).await.unwrap().unwrap();
        assert_eq!(m.status, "sent");
        assert_eq!(m.provider.as_deref(), Some("tencent"));
        let trail: Vec<(&str, &str)> = m
            .history
            .iter()
            .map(|a| (a.provider.as_str(), a.outcome.as_str()))
            .collect();
        assert_eq!(
            trail,
            vec![("aliyun", "provider_down"), ("tencent", "sent")]
        );
    }
}

async fn a_crashed_workers_messages_are_taken_again_after_the_lease(store: SharedStore) {
    let ids = planned(&store, 2).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    // A worker claims and dies before settling.
    let claimed = store
        .claim_messages(&Claim {
            now: t("2026-03-10T10:01:00+08:00"),
            lease_until: t("2026-03-10T10:03:00+08:00"),
            limit: 10,
            token: "dead-worker".into(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].sms_signature.as_deref(), Some("老街豆浆"));
    assert_eq!(claimed[0].timezone.as_deref(), Some("Asia/Shanghai"));
    let p = Scripted::new("sms-a");
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 4, 5);
    assert_eq!(
        d.drain().await.unwrap().claimed,
        0,
        "leased messages are left alone"
    );
    assert_eq!(status_of(&store, ids[0]).await, "sending");
    clock.set("2026-03-10T10:03:01+08:00");
    assert_eq!(d.drain().await.unwrap().sent, 2);
    assert_eq!(p.calls().len(), 2);
    // The dead worker's late settlement changes nothing.
    let late = outreach::dispatch::claim::Settlement {
        message_id: ids[0],
        token: "dead-worker".into(),
        at: t("2026-03-10T10:04:00+08:00"),
        status: outreach::campaigns::outbox::MessageStatus::Failed,
        reason: Some("late".into()),
        detail: None,
        provider: None,
        provider_message_id: None,
        next_attempt_at: None,
        attempts: 1,
        attempt: None,
        suppress: None,
    };
    let counts = store.settle_messages(&[late]).await.unwrap();
    assert_eq!((counts.settled, counts.lease_lost), (0, 1));
    assert_eq!(status_of(&store, ids[0]).await, "sent");
}

async fn an_opt_out_suppresses_queued_messages_and_withdraws_their_coupons(store: SharedStore) {
    let ids = planned(&store, 2).await;
    let first = store.message_detail(ids[0]).await.unwrap().unwrap();
    let done = store
        .record_opt_out(&OptOut {
            channel: Channel::Sms,
            address: first.address.clone().unwrap(),
            source: "sms-reply".into(),
            at: t("2026-03-10T10:00:30+08:00"),
        })
        .await
        .unwrap();
    assert!(done.recorded);
    assert_eq!(done.suppressed, 1);
    let again = store
        .record_opt_out(&OptOut {
            channel: Channel::Sms,
            address: first.address.clone().unwrap(),
            source: "cli".into(),
            at: t("2026-03-10T10:00:40+08:00"),
        })
        .await
        .unwrap();
    assert_eq!((again.recorded, again.suppressed), (false, 0));
    let m = store.message_detail(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (m.status.as_str(), m.reason.as_deref()),
        ("suppressed", Some("opted_out"))
    );
    let coupons = store.coupons_for("bday").await.unwrap();
    let voided: Vec<bool> = coupons
        .iter()
        .filter(|c| Some(&c.code) == first.coupon_code.as_ref())
        .map(|c| c.voided_at.is_some())
        .collect();
    assert_eq!(voided, vec![true]);
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::new("sms-a");
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 4, 5);
    let r = d.drain().await.unwrap();
    assert_eq!(r.sent, 1);
    assert_eq!(p.calls(), vec![ids[1]]);
}

async fn nothing_leaves_at_night(store: SharedStore) {
    let ids = planned(&store, 1).await;
    let clock = TestClock::at("2026-03-10T22:30:00+08:00");
    let p = Scripted::new("sms-a");
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 4, 5);
    let r = d.drain().await.unwrap();
    assert_eq!(r.outside_window, 1, "{r:?}");
    assert!(p.calls().is_empty());
    let m = store.message_detail(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (m.status.as_str(), m.reason.as_deref()),
        ("deferred", Some("send_window"))
    );
    assert_eq!(m.next_attempt_at, Some(t("2026-03-11T08:00:00+08:00")));
    assert_eq!(m.attempts, 0);
    assert!(m.history.is_empty());
    clock.set("2026-03-11T08:00:00+08:00");
    assert_eq!(d.drain().await.unwrap().sent, 1);
}

async fn receipts_mark_messages_delivered_or_failed(store: SharedStore) {
    let ids = planned(&store, 3).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::new("sms-a");
    dispatcher(&store, &clock, &[p], 4, 5)
        .drain()
        .await
        .unwrap();
    let receipts = vec![
        Receipt {
            provider: "sms-a".into(),
            key: ReceiptKey::ProviderMessageId(format!("sms-a-{}", ids[0])),
            delivered: true,
            code: "DELIVRD".into(),
            description: "用户接收成功".into(),
            at: Some(t("2026-03-10T10:01:05+08:00")),
            suppress_address: false,
        },
        Receipt {
            provider: "sms-a".into(),
            key: ReceiptKey::MessageId(ids[1]),
            delivered: false,
            code: "MK:0001".into(),
            description: "空号".into(),
            at: None,
            suppress_address: true,
        },
        Receipt {
            provider: "other".into(),
            key: ReceiptKey::MessageId(ids[2]),
            delivered: true,
            code: "DELIVRD".into(),
            description: String::new(),
            at: None,
            suppress_address: false,
        },
        Receipt {
            provider: "sms-a".into(),
            key: ReceiptKey::ProviderMessageId("nobody".into()),
            delivered: true,
            code: "DELIVRD".into(),
            description: String::new(),
            at: None,
            suppress_address: false,
        },
    ];
    let counts = store
        .apply_receipts(&receipts, t("2026-03-10T10:02:00+08:00"))
        .await
        .unwrap();
    assert_eq!(
        (counts.delivered, counts.failed, counts.unmatched),
        (1, 1, 2)
    );
    assert_eq!(status_of(&store, ids[0]).await, "delivered");
    let failed = store.message_detail(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_deref()),
        ("failed", Some("MK:0001"))
    );
    assert!(failed.detail.unwrap().contains("空号"));
    let address = failed.address.unwrap();
    assert!(store.is_opted_out(Channel::Sms, &address).await.unwrap());
    assert_eq!(
        status_of(&store, ids[2]).await,
        "sent",
        "a receipt from another provider is ignored"
    );
    // A second copy of the same receipt changes nothing.
    let again = store
        .apply_receipts(&receipts[..1], t("2026-03-10T10:03:00+08:00"))
        .await
        .unwrap();
    assert_eq!(again.unmatched, 1);
}

async fn two_workers_never_send_a_message_twice(store: SharedStore) {
    let ids = planned(&store, 40).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::with("sms-a", vec![], Duration::from_millis(3));
    let a = dispatcher(&store, &clock, std::slice::from_ref(&p), 3, 5);
    let b = dispatcher(&store, &clock, std::slice::from_ref(&p), 3, 5);
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.sent + rb.sent, 40, "{ra:?} {rb:?}");
    let mut calls = p.calls();
    calls.sort();
    assert_eq!(calls, ids, "every message exactly once");
}

async fn shutdown_finishes_sends_under_way_and_puts_the_rest_back(store: SharedStore) {
    let ids = planned(&store, 5).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::with("sms-a", vec![], Duration::from_millis(400));
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 1, 5);
    let stop = CancellationToken::new();
    let worker = tokio::spawn({
        let stop = stop.clone();
        async move { d.run(stop).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops promptly")
        .unwrap();
    assert_eq!((r.sent, r.released), (1, 4), "{r:?}");
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        *by_status.entry(status_of(&store, *id).await).or_default() += 1;
    }
    assert_eq!(by_status.get("sent"), Some(&1));
    assert_eq!(by_status.get("queued"), Some(&4));
    assert_eq!(p.calls().len(), 1);
}

async fn the_file_provider_writes_what_would_have_gone_out(store: SharedStore) {
    let mut c = customer("C0001", "SH-001", Some("03-10"));
    c.email_opt_in = Consent::Yes;
    c.sms_opt_in = Consent::No;
    let mut s = customer("C0002", "SH-001", Some("03-10"));
    s.email = None;
    seed(&store, &[c, s]).await;
    let tpl = templates();
    let camp = campaign(&BIRTHDAY.replace("[sms]", "[email, sms]"), &tpl);
    run_at(&store, &camp, &tpl, "2026-03-10T10:00:00+08:00", None).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let shared: SharedClock = clock.clone();
    let mut routes = Routes::empty();
    for ch in [Channel::Sms, Channel::Email] {
        routes.add(
            ch,
            Slot::new(
                Arc::new(FileProvider::new(dir.path(), ch, shared.clone())),
                limits(2),
            ),
        );
    }
    let d = Dispatcher::new(
        store.clone(),
        shared,
        Arc::new(routes),
        Arc::new(FixedWindow(SendWindow::default_hours())),
        dispatch_settings(5),
        SHANGHAI,
    );
    assert_eq!(d.drain().await.unwrap().sent, 2);
    let rows = store.messages_for(Some("bday"), None).await.unwrap();
    for m in rows {
        let detail = store.message_detail(m.id).await.unwrap().unwrap();
        let file = dir.path().join(detail.provider_message_id.unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        let rendered: Rendered = serde_json::from_str(m.payload.as_deref().unwrap()).unwrap();
        match rendered {
            Rendered::Sms { text: body, .. } => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["to"], "+8613800130002");
                assert_eq!(v["sign_name"], "老街豆浆");
                assert_eq!(v["text"], format!("【老街豆浆】{body}"));
                assert!(body.ends_with("拒收请回复R"), "{body}");
            }
            Rendered::Email { .. } => {
                assert!(file.extension().unwrap() == "eml");
                assert!(text.contains("To: c0001@example.com"), "{text}");
                assert!(text.contains("multipart/alternative"), "{text}");
            }
            Rendered::Wechat { .. } => panic!("no wechat here"),
        }
    }
}

async fn batch_providers_get_messages_in_batches(store: SharedStore) {
    let ids = planned(&store, 8).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Arc::new(Scripted {
        batch: 3,
        ..Arc::into_inner(Scripted::new("sms-a")).unwrap()
    });
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 2, 5);
    let r = d.drain().await.unwrap();
    assert_eq!(r.sent, 8, "{r:?}");
    let mut sizes = p.batches.lock().unwrap().clone();
    sizes.sort();
    // claim_batch is 7: one claim of 7 goes as 3 + 3 in batches and a single
    // send; the claim after it takes the 8th, also sent alone.
    assert_eq!(sizes, vec![3, 3]);
    let mut calls = p.calls();
    calls.sort();
    assert_eq!(calls, ids);
}

store_contract!(
    batch_providers_get_messages_in_batches,
    sends_each_message_once_and_records_the_attempt,
    a_transient_failure_is_retried_after_a_backoff,
    a_message_is_dead_after_its_last_attempt,
    a_permanent_failure_suppresses_the_address,
    a_message_to_an_address_a_provider_refused_is_undeliverable_not_opted_out,
    a_provider_outage_fails_over_to_the_next_provider,
    a_crashed_workers_messages_are_taken_again_after_the_lease,
    an_opt_out_suppresses_queued_messages_and_withdraws_their_coupons,
    nothing_leaves_at_night,
    receipts_mark_messages_delivered_or_failed,
    two_workers_never_send_a_message_twice,
    shutdown_finishes_sends_under_way_and_puts_the_rest_back,
    the_file_provider_writes_what_would_have_gone_out,
    housekeeping_clears_old_attempt_details_only,
);

async fn housekeeping_clears_old_attempt_details_only(store: SharedStore) {
    let ids = planned(&store, 2).await;
    let clock = TestClock::at("2026-03-10T10:01:00+08:00");
    let p = Scripted::with(
        "sms-a",
        vec![
            err(TRANSIENT, "busy"),
            err(TRANSIENT, "busy"),
            err(TRANSIENT, "busy"),
            err(TRANSIENT, "busy"),
        ],
        Duration::ZERO,
    );
    let d = dispatcher(&store, &clock, std::slice::from_ref(&p), 1, 5);
    d.drain().await.unwrap();
    // A second round 100 days later: the old attempts age, the new do not.
    clock.set("2026-06-18T10:01:00+08:00");
    d.drain().await.unwrap();
    let retention = outreach::store::ticks::Retention {
        attempt_detail_days: 90,
        job_runs_days: 90,
    };
    let report = store.housekeeping(clock.now(), &retention).await.unwrap();
    assert_eq!(report.attempt_details_cleared, 2, "{report:?}");
    for id in ids {
        let m = store.message_detail(id).await.unwrap().unwrap();
        assert_eq!(m.history.len(), 2, "{m:?}");
        let (old, new) = (&m.history[0], &m.history[1]);
        assert_eq!(old.detail, None, "{m:?}");
        assert_eq!(old.provider_code.as_deref(), Some("busy"), "the code stays");
        assert!(new.detail.is_some(), "{m:?}");
    }
    let again = store.housekeeping(clock.now(), &retention).await.unwrap();
    assert_eq!(again.attempt_details_cleared, 0);
}
