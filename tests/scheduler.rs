//! The scheduler against both backends: ticks claimed exactly once (also by
//! two schedulers passing at the same time), a dead process's tick taken
//! over, missed ticks folded or skipped by the catch-up policy, and
//! housekeeping by age.

mod common;
#[path = "common/shop.rs"]
mod shop;

use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use outreach::campaigns::watch::{ReloadKind, Reloader};
use outreach::clock::{ManualClock, SharedClock};
use outreach::scheduler::{Executor, PassReport, Scheduler, SchedulerSettings};
use outreach::store::SharedStore;
use outreach::store::ticks::{Retention, TickClaim, TickFinish, TickOutcome};
use outreach::unsubscribe::LinkSigner;
use shop::t;
use tokio_util::sync::CancellationToken;

store_contract!(
    a_tick_is_claimed_once,
    concurrent_claims_give_the_tick_to_one,
    a_dead_process_tick_is_taken_over,
    housekeeping_clears_by_age,
    each_due_tick_runs_once,
    downtime_folds_or_skips_missed_ticks,
    two_schedulers_share_the_ticks,
    an_import_request_runs_segments_once,
    campaigns_wait_for_a_segments_run_under_way_elsewhere,
);

const BIRTHDAY: &str = "id: birthday
name: 生日礼
schedule: \"0 10 * * *\"
catch_up: 6h
trigger: { type: birthday, days_before: 3 }
audience: { stores: [SH-001] }
coupon: { kind: amount_off, value: 10, min_spend: 30, valid_days: 14, code_prefix: BDAY }
channels: [sms]
template: birthday
";

fn claim<'a>(job: &'a str, tick: &str, worker: &'a str, now: &str) -> TickClaim<'a> {
    TickClaim {
        job,
        scheduled_for: t(tick),
        worker,
        now: t(now),
        lease_until: t(now) + Duration::minutes(5),
    }
}

async fn a_tick_is_claimed_once(store: SharedStore) {
    let tick = "2026-12-24T10:00:00+08:00";
    let first = store
        .claim_tick(&claim("campaign:a", tick, "w1", tick))
        .await
        .unwrap();
    assert_eq!(first, Some(1));
    assert_eq!(
        store
            .claim_tick(&claim("campaign:a", tick, "w2", tick))
            .await
            .unwrap(),
        None,
        "a held tick is not handed out again"
    );
    // Another job's tick at the same instant is its own.
    assert_eq!(
        store
            .claim_tick(&claim("segments", tick, "w2", tick))
            .await
            .unwrap(),
        Some(1)
    );
    let finish = |worker| TickFinish {
        job: "campaign:a",
        scheduled_for: t(tick),
        worker,
        finished_at: t(tick) + Duration::seconds(3),
        outcome: TickOutcome::Ok,
        detail: "{\"queued\":3}",
    };
    assert!(!store.finish_tick(&finish("w2")).await.unwrap());
    assert!(store.finish_tick(&finish("w1")).await.unwrap());
    // Finished: never again, even long after.
    assert_eq!(
        store
            .claim_tick(&claim(
                "campaign:a",
                tick,
                "w3",
                "2026-12-25T10:00:00+08:00"
            ))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.last_tick("campaign:a").await.unwrap(), Some(t(tick)));
    assert_eq!(store.last_tick("campaign:b").await.unwrap(), None);
    // Skipping a tick that has a row changes nothing.
    assert!(
        !store
            .skip_tick("campaign:a", t(tick), "w3", t(tick), "late")
            .await
            .unwrap()
    );
    assert!(
        store
            .skip_tick(
                "campaign:a",
                t("2026-12-25T10:00:00+08:00"),
                "w3",
                t("2026-12-25T18:00:00+08:00"),
                "missed by 8h"
            )
            .await
            .unwrap()
    );
    let runs = store.job_runs(Some("campaign:a"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome.as_deref(), Some("skipped"));
    assert_eq!(runs[0].detail.as_deref(), Some("missed by 8h"));
    assert_eq!(runs[1].outcome.as_deref(), Some("ok"));
    assert_eq!(runs[1].claimed_by, "w1");
    assert_eq!(runs[1].detail.as_deref(), Some("{\"queued\":3}"));
    let latest = store.latest_job_runs().await.unwrap();
    let jobs: Vec<(&str, Option<&str>)> = latest
        .iter()
        .map(|r| (r.job.as_str(), r.outcome.as_deref()))
        .collect();
    assert_eq!(
        jobs,
        vec![("campaign:a", Some("skipped")), ("segments", None)]
    );
    assert_eq!(store.job_runs(None, 1).await.unwrap().len(), 1);
}

async fn concurrent_claims_give_the_tick_to_one(store: SharedStore) {
    let tick = "2026-12-24T10:00:00+08:00";
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{i}");
            store
                .claim_tick(&claim("segments", tick, &worker, tick))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

async fn a_dead_process_tick_is_taken_over(store: SharedStore) {
    let tick = "2026-12-24T03:00:00+08:00";
    assert_eq!(
        store
            .claim_tick(&claim("segments", tick, "dead", tick))
            .await
            .unwrap(),
        Some(1)
    );
    // Within the lease: nobody else.
    assert_eq!(
        store
            .claim_tick(&claim("segments", tick, "w2", "2026-12-24T03:04:00+08:00"))
            .await
            .unwrap(),
        None
    );
    // A renewal keeps it.
    assert!(
        store
            .renew_tick("segments", t(tick), "dead", t("2026-12-24T03:10:00+08:00"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .claim_tick(&claim("segments", tick, "w2", "2026-12-24T03:09:00+08:00"))
            .await
            .unwrap(),
        None
    );
    // The lease runs out: the next claimant takes it over as attempt 2.
    assert_eq!(
        store
            .claim_tick(&claim("segments", tick, "w2", "2026-12-24T03:11:00+08:00"))
            .await
            .unwrap(),
        Some(2)
    );
    // The first process, if it comes back, can neither renew nor finish it.
    assert!(
        !store
            .renew_tick("segments", t(tick), "dead", t("2026-12-24T03:20:00+08:00"))
            .await
            .unwrap()
    );
    let runs = store.job_runs(Some("segments"), 5).await.unwrap();
    assert_eq!(runs[0].claimed_by, "w2");
    assert_eq!(runs[0].attempt, 2);
    assert!(runs[0].finished_at.is_none());
}

async fn housekeeping_clears_by_age(store: SharedStore) {
    let retention = Retention {
        attempt_detail_days: 30,
        job_runs_days: 10,
    };
    let old = "2026-10-01T03:00:00+08:00";
    let recent = "2026-12-20T03:00:00+08:00";
    for (tick, worker) in [(old, "w"), (recent, "w")] {
        store
            .claim_tick(&claim("segments", tick, worker, tick))
            .await
            .unwrap();
        store
            .finish_tick(&TickFinish {
                job: "segments",
                scheduled_for: t(tick),
                worker,
                finished_at: t(tick),
                outcome: TickOutcome::Ok,
                detail: "{}",
            })
            .await
            .unwrap();
    }
    // A campaign tick whose process died, superseded by a later tick that ran.
    let dead = "2026-12-20T10:00:00+08:00";
    store
        .claim_tick(&claim("campaign:x", dead, "gone", dead))
        .await
        .unwrap();
    let later = "2026-12-21T10:00:00+08:00";
    store
        .claim_tick(&claim("campaign:x", later, "w", later))
        .await
        .unwrap();
    store
        .finish_tick(&TickFinish {
            job: "campaign:x",
            scheduled_for: t(later),
            worker: "w",
            finished_at: t(later),
            outcome: TickOutcome::Ok,
            detail: "{}",
        })
        .await
        .unwrap();
    let report = store
        .housekeeping(t("2026-12-24T04:30:00+08:00"), &retention)
        .await
        .unwrap();
    assert_eq!(report.job_runs_deleted, 1, "{report:?}");
    assert_eq!(report.ticks_abandoned, 1, "{report:?}");
    let runs = store.job_runs(None, 10).await.unwrap();
    assert!(runs.iter().all(|r| r.scheduled_for != t(old)));
    let abandoned = runs
        .iter()
        .find(|r| r.scheduled_for == t(dead))
        .expect("the abandoned tick stays, closed");
    assert_eq!(abandoned.outcome.as_deref(), Some("failed"));
    assert!(
        abandoned
            .detail
            .as_deref()
            .unwrap()
            .starts_with("abandoned")
    );
    // Again: nothing more to do.
    let again = store
        .housekeeping(t("2026-12-24T04:30:00+08:00"), &retention)
        .await
        .unwrap();
    assert_eq!((again.job_runs_deleted, again.ticks_abandoned), (0, 0));
}

/// A scheduler over `store` with the birthday campaign, at a manual clock.
struct Rig {
    scheduler: Scheduler,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn rig(store: &SharedStore, now: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = dir.path().join("campaigns");
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(campaigns.join("birthday.yaml"), BIRTHDAY).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for name in [
        "birthday.sms.yaml",
        "birthday.email.yaml",
        "birthday.wechat.yaml",
    ] {
        std::fs::copy(repo.join(name), templates.join(name)).unwrap();
    }
    let clock = Arc::new(ManualClock::new(t(now)));
    let shared: SharedClock = clock.clone();
    let (mut reloader, registry) = Reloader::new(store.clone(), campaigns.clone(), templates);
    reloader.reload(ReloadKind::Start).await.unwrap();
    assert_eq!(
        registry.snapshot().campaigns.len(),
        1,
        "{:?}",
        registry.snapshot().errors
    );
    let executor = Executor {
        store: store.clone(),
        campaigns_dir: campaigns,
        default_tz: shop::SHANGHAI,
        run_settings: shop::settings(None),
        links: Arc::new(LinkSigner::new(
            &"k".to_owned().into(),
            "https://m.example.com",
        )),
        retention: Retention {
            attempt_detail_days: 180,
            job_runs_days: 90,
        },
    };
    let scheduler = Scheduler::new(
        store.clone(),
        shared,
        registry,
        executor,
        SchedulerSettings::default(),
    )
    .unwrap();
    Rig {
        scheduler,
        clock,
        _dir: dir,
    }
}

async fn pass(rig: &Rig) -> PassReport {
    let jobs = rig.scheduler.jobs().await.unwrap();
    rig.scheduler
        .pass(&jobs, &CancellationToken::new())
        .await
        .unwrap()
}

fn ran(report: &PassReport) -> Vec<(String, String, TickOutcome)> {
    report
        .ticks
        .iter()
        .map(|t| (t.job.clone(), t.scheduled_for.to_rfc3339(), t.outcome))
        .collect()
}

async fn seed_birthdays(store: &SharedStore) {
    shop::seed(
        store,
        &[
            shop::customer("C1", "SH-001", Some("12-24")),
            shop::customer("C2", "SH-001", Some("12-25")),
            shop::customer("C3", "NY-001", Some("12-24")),
        ],
    )
    .await;
}

async fn messages(store: &SharedStore) -> Vec<(String, String)> {
    store
        .messages_for(Some("birthday"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.customer_id, m.occurrence))
        .collect()
}

async fn each_due_tick_runs_once(store: SharedStore) {
    seed_birthdays(&store).await;
    let rig = rig(&store, "2026-12-21T10:00:05+08:00").await;
    let first = pass(&rig).await;
    assert_eq!(
        ran(&first),
        vec![
            (
                "segments".into(),
                "2026-12-20T19:00:00+00:00".into(),
                TickOutcome::Ok
            ),
            (
                "campaign:birthday".into(),
                "2026-12-21T02:00:00+00:00".into(),
                TickOutcome::Ok
            ),
            (
                "housekeeping".into(),
                "2026-12-20T20:30:00+00:00".into(),
                TickOutcome::Ok
            ),
        ]
    );
    assert_eq!(
        messages(&store).await,
        vec![("C1".to_owned(), "birthday:2026".to_owned())]
    );
    // The same instant again, and later the same day: nothing is due.
    assert!(pass(&rig).await.ticks.is_empty());
    rig.clock.set(t("2026-12-21T21:00:00+08:00"));
    assert!(pass(&rig).await.ticks.is_empty());
    // The next day's tick runs once: C2's birthday is three days on.
    rig.clock.set(t("2026-12-22T10:00:01+08:00"));
    let next = pass(&rig).await;
    assert!(
        next.ticks
            .iter()
            .any(|t| t.job == "campaign:birthday" && t.outcome == TickOutcome::Ok),
        "{next:?}"
    );
    assert_eq!(messages(&store).await.len(), 2);
    let runs = store.job_runs(Some("campaign:birthday"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.outcome.as_deref() == Some("ok")));
    let detail: serde_json::Value =
        serde_json::from_str(runs[1].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["queued"], 1, "{detail}");
    assert_eq!(detail["coupons"], 1, "{detail}");
}

async fn downtime_folds_or_skips_missed_ticks(store: SharedStore) {
    seed_birthdays(&store).await;
    let rig = rig(&store, "2026-12-18T10:00:05+08:00").await;
    pass(&rig).await;
    // Down until the 21st at 12:00: the ticks of the 19th and 20th were
    // missed; the 21st's (2 h late, within the 6 h catch-up) runs and plans
    // what the missed ones would have.
    rig.clock.set(t("2026-12-21T12:00:00+08:00"));
    let back = pass(&rig).await;
    let campaign = back
        .ticks
        .iter()
        .find(|t| t.job == "campaign:birthday")
        .expect("the campaign ran");
    assert_eq!(campaign.outcome, TickOutcome::Ok);
    assert_eq!(campaign.folded, 2);
    assert_eq!(campaign.scheduled_for, t("2026-12-21T10:00:00+08:00"));
    assert_eq!(
        messages(&store).await,
        vec![("C1".to_owned(), "birthday:2026".to_owned())]
    );
    // Down again until the 22nd at 17:00: 7 h late, beyond the 6 h allowance:
    // the tick is recorded as skipped with the reason, and nothing is sent.
    rig.clock.set(t("2026-12-22T17:00:00+08:00"));
    let late = pass(&rig).await;
    let skipped = late
        .ticks
        .iter()
        .find(|t| t.job == "campaign:birthday")
        .expect("the missed tick is reported");
    assert_eq!(skipped.outcome, TickOutcome::Skipped);
    assert!(
        skipped.summary.contains("missed by 7h 0m"),
        "{}",
        skipped.summary
    );
    assert!(
        skipped.summary.contains("catch_up allows 6h 0m"),
        "{}",
        skipped.summary
    );
    assert_eq!(messages(&store).await.len(), 1);
    let runs = store.job_runs(Some("campaign:birthday"), 1).await.unwrap();
    assert_eq!(runs[0].outcome.as_deref(), Some("skipped"));
    // Segments (catch-up one day) ran at 17:00 for the 03:00 tick.
    assert!(
        late.ticks
            .iter()
            .any(|t| t.job == "segments" && t.outcome == TickOutcome::Ok)
    );
}

async fn two_schedulers_share_the_ticks(store: SharedStore) {
    seed_birthdays(&store).await;
    let a = rig(&store, "2026-12-21T10:00:05+08:00").await;
    let b = rig(&store, "2026-12-21T10:00:05+08:00").await;
    let (ra, rb) = tokio::join!(pass(&a), pass(&b));
    let mut all: Vec<_> = ran(&ra).into_iter().chain(ran(&rb)).collect();
    all.sort();
    assert_eq!(all.len(), 3, "each due tick ran once in all: {all:?}");
    // The other either found a tick taken or already recorded.
    assert!(ra.taken_elsewhere + rb.taken_elsewhere <= 3);
    assert_eq!(messages(&store).await.len(), 1);
    let runs = store.job_runs(None, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
}

async fn an_import_request_runs_segments_once(store: SharedStore) {
    seed_birthdays(&store).await;
    let rig = rig(&store, "2026-12-21T10:00:05+08:00").await;
    pass(&rig).await;
    rig.clock.set(t("2026-12-21T15:00:00+08:00"));
    assert!(pass(&rig).await.ticks.is_empty());
    store
        .set_meta(
            outreach::scheduler::SEGMENTS_REQUESTED,
            &t("2026-12-21T14:59:00+08:00").to_rfc3339(),
        )
        .await
        .unwrap();
    let report = pass(&rig).await;
    assert_eq!(
        ran(&report),
        vec![(
            "segments".into(),
            "2026-12-21T06:59:00+00:00".into(),
            TickOutcome::Ok
        )]
    );
    assert!(pass(&rig).await.ticks.is_empty());
}

async fn campaigns_wait_for_a_segments_run_under_way_elsewhere(store: SharedStore) {
    seed_birthdays(&store).await;
    let rig = rig(&store, "2026-12-21T10:00:05+08:00").await;
    // Another process took today's 03:00 segments tick and is still at it.
    let segments_tick = "2026-12-21T03:00:00+08:00";
    let other = claim(
        "segments",
        segments_tick,
        "other:1:abc",
        "2026-12-21T10:00:00+08:00",
    );
    assert!(store.claim_tick(&other).await.unwrap().is_some());
    let report = pass(&rig).await;
    assert!(
        !report.ticks.iter().any(|t| t.job == "campaign:birthday"),
        "{report:?}"
    );
    assert_eq!(report.waiting_for_segments, 1);
    assert!(messages(&store).await.is_empty());
    // Once it has finished, the next pass runs the campaign.
    assert!(
        store
            .finish_tick(&TickFinish {
                job: "segments",
                scheduled_for: t(segments_tick),
                worker: "other:1:abc",
                finished_at: t("2026-12-21T10:00:30+08:00"),
                outcome: TickOutcome::Ok,
                detail: "{}",
            })
            .await
            .unwrap()
    );
    rig.clock.set(t("2026-12-21T10:01:00+08:00"));
    let report = pass(&rig).await;
    assert!(
        report
            .ticks
            .iter()
            .any(|t| t.job == "campaign:birthday" && t.outcome == TickOutcome::Ok),
        "{report:?}"
    );
    assert_eq!(report.waiting_for_segments, 0);
    assert_eq!(messages(&store).await.len(), 1);
}
