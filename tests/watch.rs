//! Hot reload against real folders: a temporary copy of the shipped
//! campaigns and templates, a SQLite store, and the real watcher. Every wait
//! polls with a deadline; nothing asserts on a fixed sleep.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use outreach::campaigns::watch::{self, CampaignRegistry, Snapshot, WatchOptions};
use outreach::domain::{StoreCode, StoreInfo};
use outreach::store::{Channel, SharedStore};
use outreach::templates::RenderContext;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

/// A copy of the repository's folders, watched.
struct Fixture {
    dir: tempfile::TempDir,
    registry: CampaignRegistry,
    shutdown: CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
    _store: common::TestStore,
}

impl Fixture {
    async fn start(options: WatchOptions) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        copy_folder("campaigns", &dir.path().join("campaigns"));
        copy_folder("templates", &dir.path().join("templates"));
        Fixture::start_in(dir, options).await
    }

    async fn start_in(dir: tempfile::TempDir, options: WatchOptions) -> Fixture {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("outreach=debug")
                .with_test_writer()
                .try_init();
        }
        let store = common::sqlite().await;
        seed_stores(&store.store).await;
        let shutdown = CancellationToken::new();
        let (registry, watcher) = watch::start(
            store.store.clone(),
            dir.path().join("campaigns"),
            dir.path().join("templates"),
            options,
            shutdown.clone(),
        )
        .await;
        Fixture {
            dir,
            registry,
            shutdown,
            watcher,
            _store: store,
        }
    }

    fn campaign_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("campaigns").join(name)
    }

    fn template_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("templates").join(name)
    }

    /// Rewrite a campaign file in place.
    fn edit(&self, name: &str, from: &str, to: &str) {
        let path = self.campaign_file(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{name} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Wait until `ok` holds for the current snapshot.
    async fn until(&self, what: &str, ok: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        let started = tokio::time::Instant::now();
        loop {
            let snapshot = self.registry.snapshot();
            if ok(&snapshot) {
                return snapshot;
            }
            if started.elapsed() > DEADLINE {
                panic!(
                    "not within {DEADLINE:?}: {what}\ncampaigns: {:?}\nerrors: {:#?}",
                    snapshot.campaigns.keys().collect::<Vec<_>>(),
                    snapshot.errors
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.watcher)
            .await
            .expect("the watcher stops on the shutdown token")
            .unwrap();
    }
}

fn repo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn copy_folder(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(repo(name)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

async fn seed_stores(store: &SharedStore) {
    let stores: Vec<StoreInfo> = ["SH-001", "SH-002"]
        .iter()
        .map(|code| StoreInfo {
            code: StoreCode::parse(code).unwrap(),
            name: format!("{code} 店"),
            sms_signature: "老街豆浆".into(),
            timezone: chrono_tz::Asia::Shanghai,
        })
        .collect();
    store
        .upsert_stores(&stores, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
        .await
        .unwrap();
}

/// Events only: a rescan would hide a watcher that misses changes.
fn events_only() -> WatchOptions {
    WatchOptions {
        debounce: Duration::from_millis(300),
        rescan_every: Duration::from_secs(3600),
        file_events: true,
    }
}

const SHIPPED: [&str; 5] = [
    "at-risk",
    "birthday",
    "member-day",
    "second-visit",
    "winback",
];

fn ids(s: &Snapshot) -> Vec<&str> {
    s.campaigns.keys().map(|k| k.as_str()).collect()
}

fn priority(s: &Snapshot, id: &str) -> Option<i32> {
    s.campaign(id).map(|a| a.campaign.priority)
}

fn untouched(before: &Snapshot, after: &Snapshot, except: &[&str]) {
    for id in SHIPPED.iter().filter(|id| !except.contains(id)) {
        let (a, b) = (before.campaign(id), after.campaign(id));
        assert!(
            a.zip(b).is_some_and(|(a, b)| Arc::ptr_eq(a, b)),
            "{id} was touched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_breaks_fixes_and_deletes_take_effect() {
    let fx = Fixture::start(events_only()).await;
    let first = fx.registry.snapshot();
    assert_eq!(ids(&first), SHIPPED);
    assert!(first.errors.is_empty(), "{:#?}", first.errors);
    assert_eq!(priority(&first, "birthday"), Some(10));

    fx.edit("birthday.yaml", "priority: 10", "priority: 11");
    let edited = fx
        .until("the new priority", |s| priority(s, "birthday") == Some(11))
        .await;
    untouched(&first, &edited, &["birthday"]);

    // A bad cron: the last good version keeps running, the error says where.
    fx.edit("birthday.yaml", "\"0 10 * * *\"", "\"0 25 * * *\"");
    let file = fx.campaign_file("birthday.yaml");
    let broken = fx
        .until("the schedule error", |s| !s.errors_in(&file).is_empty())
        .await;
    assert_eq!(priority(&broken, "birthday"), Some(11));
    assert!(Arc::ptr_eq(
        edited.campaign("birthday").unwrap(),
        broken.campaign("birthday").unwrap()
    ));
    let errors = broken.errors_in(&file);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (5, 11), "{errors:#?}");
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{}:5:11: schedule", file.display())),
        "{}",
        errors[0]
    );
    untouched(&first, &broken, &["birthday"]);

    fx.edit("birthday.yaml", "\"0 25 * * *\"", "\"0 9 * * *\"");
    let fixed = fx
        .until("the fixed file", |s| {
            s.errors.is_empty()
                && s.stale.is_empty()
                && !Arc::ptr_eq(
                    s.campaign("birthday").unwrap(),
                    broken.campaign("birthday").unwrap(),
                )
        })
        .await;
    assert_eq!(priority(&fixed, "birthday"), Some(11));

    std::fs::remove_file(fx.campaign_file("winback.yaml")).unwrap();
    let gone = fx
        .until("winback stopped", |s| s.campaign("winback").is_none())
        .await;
    assert_eq!(gone.campaigns.len(), 4);
    untouched(&fixed, &gone, &["winback"]);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_template_keeps_the_last_good_templates_of_its_campaign() {
    let fx = Fixture::start(events_only()).await;
    let first = fx.registry.snapshot();
    let template = fx.template_file("birthday.sms.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replacen("{{customer.name}}会员", "{{customer.nmae}}会员", 1),
    )
    .unwrap();
    let broken = fx
        .until("the template error", |s| !s.errors_in(&template).is_empty())
        .await;
    assert!(broken.errors_in(&template)[0].line > 0);
    let birthday = broken.campaign("birthday").unwrap();
    assert!(Arc::ptr_eq(birthday, first.campaign("birthday").unwrap()));
    assert!(broken.stale.iter().any(|id| id.as_str() == "birthday"));
    let sms = birthday
        .templates
        .render("birthday", Channel::Sms, &RenderContext::sample(true))
        .expect("the last good templates still render");
    assert!(format!("{sms:?}").contains("王小明"), "{sms:?}");
    untouched(&first, &broken, &["birthday"]);

    std::fs::write(&template, text.replacen("您好", "你好", 1)).unwrap();
    let fixed = fx
        .until("the new template", |s| {
            s.errors.is_empty() && !Arc::ptr_eq(s.campaign("birthday").unwrap(), birthday)
        })
        .await;
    let sms = fixed
        .campaign("birthday")
        .unwrap()
        .templates
        .render("birthday", Channel::Sms, &RenderContext::sample(true))
        .unwrap();
    assert!(format!("{sms:?}").contains("你好"), "{sms:?}");
    untouched(&first, &fixed, &["birthday"]);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_rename_save_is_picked_up() {
    let fx = Fixture::start(events_only()).await;
    let first = fx.registry.snapshot();
    let file = fx.campaign_file("member-day.yaml");
    let tmp = fx.campaign_file("member-day.yaml.tmp");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("priority: 8"));
    std::fs::write(&tmp, text.replacen("priority: 8", "priority: 33", 1)).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let saved = fx
        .until("the renamed file", |s| {
            priority(s, "member-day") == Some(33)
        })
        .await;
    assert!(saved.errors.is_empty(), "{:#?}", saved.errors);
    untouched(&first, &saved, &["member-day"]);
    // A second save the same way, on the new inode.
    std::fs::write(&tmp, text.replacen("priority: 8", "priority: 34", 1)).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    fx.until("the second save", |s| priority(s, "member-day") == Some(34))
        .await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_file_moves_its_campaign_and_a_copy_does_not_take_over() {
    let fx = Fixture::start(events_only()).await;
    let first = fx.registry.snapshot();
    std::fs::rename(
        fx.campaign_file("at-risk.yaml"),
        fx.campaign_file("churn-alert.yaml"),
    )
    .unwrap();
    let moved = fx
        .until("at-risk from its new file", |s| {
            s.campaign("at-risk")
                .is_some_and(|a| a.campaign.path.ends_with("churn-alert.yaml"))
        })
        .await;
    assert_eq!(ids(&moved), SHIPPED);
    untouched(&first, &moved, &["at-risk"]);

    // A copy that forgot to change `id:` sorts first but does not win.
    let copy = fx.campaign_file("birthday-copy.yaml");
    let text = std::fs::read_to_string(fx.campaign_file("birthday.yaml")).unwrap();
    std::fs::write(&copy, text.replacen("priority: 10", "priority: 77", 1)).unwrap();
    let dup = fx
        .until("the duplicate id error", |s| !s.errors_in(&copy).is_empty())
        .await;
    assert_eq!(priority(&dup, "birthday"), Some(10));
    assert!(dup.errors_in(&copy)[0].message.contains("birthday.yaml"));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rescan_finds_changes_without_file_events() {
    let fx = Fixture::start(WatchOptions {
        debounce: Duration::from_millis(300),
        rescan_every: Duration::from_millis(300),
        file_events: false,
    })
    .await;
    fx.edit("winback.yaml", "name: 沉睡唤醒", "name: 老友回归");
    fx.until("the new name", |s| {
        s.campaign("winback")
            .is_some_and(|a| a.campaign.name == "老友回归")
    })
    .await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_campaigns_folder_is_reported_then_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    copy_folder("templates", &dir.path().join("templates"));
    let fx = Fixture::start_in(
        dir,
        WatchOptions {
            rescan_every: Duration::from_millis(500),
            ..events_only()
        },
    )
    .await;
    let folder = fx.dir.path().join("campaigns");
    let first = fx.registry.snapshot();
    assert!(first.campaigns.is_empty());
    let errors = first.errors_in(&folder);
    assert_eq!(errors.len(), 1, "{:#?}", first.errors);
    assert!(
        errors[0].message.contains("campaigns folder"),
        "{}",
        errors[0]
    );

    copy_folder("campaigns", &folder);
    let loaded = fx
        .until("the new folder's campaigns", |s| s.campaigns.len() == 5)
        .await;
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    // Watched from now on: an edit arrives by event.
    fx.edit("birthday.yaml", "priority: 10", "priority: 12");
    fx.until("the edit", |s| priority(s, "birthday") == Some(12))
        .await;
    fx.stop().await;
}
