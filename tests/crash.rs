//! Killing `outreach jobs run campaign:…` in the middle of planning and
//! starting it again never makes a second message or coupon for the same
//! (campaign, customer, occurrence), and never leaves a coupon without its
//! message or a message without its coupon. The real binary, SIGKILLed while
//! it commits page after page of a broadcast to 20,000 demo customers; the
//! database is then read directly. On SQLite, and on PostgreSQL when
//! OUTREACH_TEST_DATABASE_URL is set.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

const NOW: &str = "2026-11-23T12:00:00+08:00";
const CUSTOMERS: &str = "20000";
/// Candidates per transaction: 1,000 pages for 20,000 customers, so that a
/// kill lands between (or inside) page writes, never after the last.
const BATCH_SIZE: &str = "20";

/// A broadcast with a coupon to every customer of every store.
const EVERYONE: &str = r#"id: everyone
name: 周年庆
trigger: { type: broadcast, at: "2026-11-23T10:00:00" }
coupon: { kind: amount_off, value: 8, min_spend: 30, valid_days: 14, code_prefix: ANNIV }
channels: [wechat, sms, email]
template: member_day
priority: 5
"#;

/// The working directory of the binary: the campaign and the repository's
/// templates.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    std::fs::write(dir.path().join("campaigns/everyone.yaml"), EVERYONE).unwrap();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    for entry in std::fs::read_dir(templates).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(
            &p,
            dir.path().join("templates").join(p.file_name().unwrap()),
        )
        .unwrap();
    }
    dir
}

/// The PostgreSQL application name of the processes under test.
const APP_NAME: &str = "outreach-crash-test";

fn outreach(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outreach"));
    cmd.current_dir(dir)
        .env("OUTREACH_DATABASE__URL", url)
        .env("OUTREACH_CAMPAIGNS__BATCH_SIZE", BATCH_SIZE)
        .env("OUTREACH_LOG", "warn")
        // Names the process's PostgreSQL sessions (sqlx reads PGAPPNAME).
        .env("PGAPPNAME", APP_NAME)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Run to completion; exit 0 and the JSON it printed.
fn run_json(dir: &Path, url: &str, args: &[&str]) -> serde_json::Value {
    let out = outreach(dir, url, args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {}\n{stderr}", out.status);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// A direct connection to the database the binary writes.
enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    async fn open(url: &str) -> Db {
        if url.starts_with("sqlite:") {
            Db::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap())
        } else {
            Db::Postgres(sqlx::PgConnection::connect(url).await.unwrap())
        }
    }

    /// A query returning one BIGINT.
    async fn int(&mut self, sql: &'static str) -> i64 {
        let r = match self {
            Db::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Db::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// PostgreSQL sessions of the processes under test (None on SQLite).
    async fn sessions_under_test(&mut self) -> Option<i64> {
        let Db::Postgres(c) = self else { return None };
        let sql = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND application_name = $1";
        let r = sqlx::query_scalar(sql).bind(APP_NAME).fetch_one(c).await;
        Some(r.unwrap_or_else(|e| panic!("{sql}: {e}")))
    }

    /// On PostgreSQL a killed client's last COMMIT may still be in the
    /// server when the process is gone: wait until its sessions have ended,
    /// so that what is counted next is all it wrote.
    async fn wait_for_killed_sessions_to_end(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(open) = self.sessions_under_test().await
            && open > 0
        {
            assert!(
                Instant::now() < deadline,
                "{open} sessions of the killed run ({APP_NAME}) still open after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A query returning (TEXT, BIGINT) rows.
    async fn counts(&mut self, sql: &'static str) -> Vec<(String, i64)> {
        let r = match self {
            Db::Sqlite(c) => sqlx::query_as(sql).fetch_all(c).await,
            Db::Postgres(c) => sqlx::query_as(sql).fetch_all(c).await,
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn messages(&mut self) -> i64 {
        self.int("SELECT count(*) FROM messages WHERE campaign_id = 'everyone'")
            .await
    }

    /// What must hold after any run, finished or killed.
    async fn check_invariants(&mut self) {
        let checks: [(&str, &'static str); 6] = [
            (
                "(campaign, customer, occurrence) with more than one message",
                "SELECT count(*) FROM (SELECT campaign_id, customer_id, occurrence FROM messages \
                 GROUP BY campaign_id, customer_id, occurrence HAVING count(*) > 1) d",
            ),
            (
                "messages with a code but not exactly one coupon of that code, message and customer",
                "SELECT count(*) FROM messages m WHERE m.coupon_code IS NOT NULL AND \
                 (SELECT count(*) FROM coupons c WHERE c.code = m.coupon_code AND c.message_id = m.id \
                  AND c.customer_id = m.customer_id AND c.campaign_id = m.campaign_id) <> 1",
            ),
            (
                "coupons without their message",
                "SELECT count(*) FROM coupons c WHERE NOT EXISTS (SELECT 1 FROM messages m \
                 WHERE m.id = c.message_id AND m.coupon_code = c.code)",
            ),
            (
                "messages with more than one coupon",
                "SELECT count(*) FROM (SELECT message_id FROM coupons GROUP BY message_id \
                 HAVING count(*) > 1) d",
            ),
            (
                "suppressed messages with a coupon",
                "SELECT count(*) FROM messages m WHERE m.status = 'suppressed' AND \
                 (m.coupon_code IS NOT NULL OR EXISTS (SELECT 1 FROM coupons c WHERE c.message_id = m.id))",
            ),
            (
                "planned messages without a coupon",
                "SELECT count(*) FROM messages WHERE status <> 'suppressed' AND coupon_code IS NULL",
            ),
        ];
        for (what, sql) in checks {
            assert_eq!(self.int(sql).await, 0, "{what}");
        }
    }

    /// Messages by status and reason, e.g. `queued` or `suppressed:no_consent`.
    async fn by_status(&mut self) -> Vec<(String, i64)> {
        self.counts(
            "SELECT status || COALESCE(':' || reason, '') AS s, count(*) FROM messages \
             WHERE campaign_id = 'everyone' GROUP BY status || COALESCE(':' || reason, '') ORDER BY 1",
        )
        .await
    }
}

/// Start the campaign job, wait until at least `progress` more messages are
/// committed, and SIGKILL it. Fails when the job finishes first.
async fn kill_mid_run(dir: &Path, url: &str, db: &mut Db, progress: i64) {
    let before = db.messages().await;
    let mut child = outreach(
        dir,
        url,
        &["jobs", "run", "campaign:everyone", "--now", NOW],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before it could be killed, after {} new messages: \
                 make the shop bigger or the batch smaller",
                db.messages().await - before
            );
        }
        if db.messages().await >= before + progress {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress in 120 s: {} new messages",
            db.messages().await - before
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The sessions are found by name, or waiting for them below is void.
    assert_ne!(db.sessions_under_test().await, Some(0));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the run had ended ({status}) when it was killed"
    );
    db.wait_for_killed_sessions_to_end().await;
}

async fn killed_twice_then_finished(url: &str) {
    let tmp = workdir();
    let dir = tmp.path();
    let started = Instant::now();
    let out = outreach(
        dir,
        url,
        &[
            "demo",
            "--seed-only",
            "--customers",
            CUSTOMERS,
            "--now",
            NOW,
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preview = run_json(
        dir,
        url,
        &[
            "campaigns",
            "preview",
            "everyone",
            "--now",
            NOW,
            "--format",
            "json",
        ],
    );
    let total = preview["candidates"].as_i64().unwrap();
    assert_eq!(total, 20_000, "{preview}");
    let mut expected: Vec<(String, i64)> = preview["suppressed"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(reason, n)| (format!("suppressed:{reason}"), n.as_i64().unwrap()))
        .collect();
    for status in ["queued", "deferred"] {
        let n = preview[status].as_i64().unwrap();
        if n > 0 {
            expected.push((status.to_owned(), n));
        }
    }
    expected.sort();
    let coupons = preview["coupons"].as_i64().unwrap();
    assert!(coupons > 10_000 && coupons < total, "{preview}");

    let mut db = Db::open(url).await;
    assert_eq!(db.messages().await, 0);

    // Killed after 10 pages, started again and killed after 20 more.
    kill_mid_run(dir, url, &mut db, 200).await;
    let first = db.messages().await;
    assert!(
        first >= 200 && first < total,
        "after the first kill: {first}"
    );
    db.check_invariants().await;
    kill_mid_run(dir, url, &mut db, 400).await;
    let second = db.messages().await;
    assert!(
        second >= first + 400 && second < total,
        "after the second kill: {second}"
    );
    db.check_invariants().await;

    // Started again, it plans the rest and only the rest.
    let job = [
        "jobs",
        "run",
        "campaign:everyone",
        "--now",
        NOW,
        "--format",
        "json",
    ];
    let rest = run_json(dir, url, &job);
    assert_eq!(rest["candidates"].as_i64(), Some(total - second), "{rest}");
    assert_eq!(rest["written"].as_i64(), Some(total - second), "{rest}");
    assert_eq!(rest["already"].as_i64(), Some(0), "{rest}");
    db.check_invariants().await;
    assert_eq!(db.messages().await, total);
    assert_eq!(db.by_status().await, expected, "preview: {preview}");
    assert_eq!(
        db.int("SELECT count(*) FROM coupons WHERE campaign_id = 'everyone'")
            .await,
        coupons
    );
    assert_eq!(
        db.int(
            "SELECT count(*) FROM messages WHERE campaign_id = 'everyone' \
             AND occurrence <> 'broadcast:2026-11-23T10:00'"
        )
        .await,
        0
    );

    // And once more: nothing new.
    let again = run_json(dir, url, &job);
    assert_eq!(
        (again["candidates"].as_i64(), again["written"].as_i64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(db.messages().await, total);
    eprintln!(
        "killed after {first} and {second} of {total} messages; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_twice_then_finished() {
        let db = crate::common::sqlite().await;
        super::killed_twice_then_finished(&db.url).await;
        db.cleanup().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_twice_then_finished() {
        let Some(db) = crate::common::postgres().await else {
            return;
        };
        super::killed_twice_then_finished(&db.url).await;
        db.cleanup().await;
    }
}
