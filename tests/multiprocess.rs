//! Three real `outreach run` processes on one PostgreSQL database: every
//! job tick runs in exactly one of them, and every message is sent exactly
//! once (one provider call, one file in one process's outbox).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The processes start five seconds before the campaigns' 10:00 ticks.
const START: &str = "2026-12-08T09:59:55+08:00";

/// A broadcast to every customer at 10:00 on the 8th, on top of the
/// repository's campaigns (the member day also falls on the 8th).
const FLASH: &str = "id: flash
name: 冬至早餐
schedule: \"0 10 8 12 *\"
trigger: { type: broadcast }
coupon: { kind: amount_off, value: 3, valid_days: 3, code_prefix: FLASH }
channels: [sms, email]
template: member_day
";

fn outreach(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::cargo_bin("outreach").unwrap();
    cmd.current_dir(dir)
        .env("OUTREACH_DATABASE__URL", url)
        .env("OUTREACH_LOG", "warn,outreach=info")
        // The built-in jobs tick every few seconds so that they race too.
        .env("OUTREACH_SCHEDULER__SEGMENTS", "*/4 * * * * *")
        .env("OUTREACH_SCHEDULER__HOUSEKEEPING", "*/3 * * * * *")
        .env("OUTREACH_SCHEDULER__WATCHDOG_SECONDS", "1")
        .env("OUTREACH_DISPATCH__IDLE_POLL_MS", "200")
        .stdin(Stdio::null());
    cmd
}

fn copy_repo_folder(dir: &Path, folder: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join(folder)).unwrap();
    for entry in std::fs::read_dir(root.join(folder)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.join(folder).join(p.file_name().unwrap())).unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The (job, tick) of every job run a process logged, from its JSON log.
fn ticks_logged(log: &str) -> BTreeSet<(String, String)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["span"]["name"] == "job_run")
        .map(|v| {
            (
                v["span"]["job"].as_str().unwrap_or("").to_owned(),
                v["span"]["tick"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn outbox_files(data: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for channel in ["sms", "email", "wechat"] {
        let Ok(entries) = std::fs::read_dir(data.join("outbox").join(channel)) else {
            continue;
        };
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                names.push(format!("{channel}/{name}"));
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_run_each_tick_and_send_each_message_once() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let url = db.url.clone();
    drop(db.store.clone());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_repo_folder(dir, "campaigns");
    copy_repo_folder(dir, "templates");
    std::fs::write(dir.join("campaigns/flash.yaml"), FLASH).unwrap();
    let seeded = outreach(dir, &url)
        .args(["demo", "--seed-only", "--customers", "1500", "--now", START])
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );

    let mut children: Vec<(Child, PathBuf, PathBuf)> = Vec::new();
    for i in 0..3 {
        let data = dir.join(format!("data-{i}"));
        let log = dir.join(format!("run-{i}.log"));
        let child = outreach(dir, &url)
            .args(["run", "--log-format", "json", "--now", START])
            .env("OUTREACH_HTTP__ADDR", format!("127.0.0.1:{}", free_port()))
            .env("OUTREACH_DATA_DIR", &data)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        children.push((child, data, log));
    }

    // Wait for the 10:00 ticks (five seconds on) and the sends they plan.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (flash_runs, unsent) = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let flash_runs: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_ticks WHERE job = 'campaign:flash' AND outcome = 'ok'
               AND scheduled_for = '2026-12-08T10:00:00+08:00'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let unsent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if flash_runs > 0 && unsent == 0 {
            break (flash_runs, unsent);
        }
        assert!(
            Instant::now() < deadline,
            "no quiet outbox after the 10:00 ticks (flash runs {flash_runs}, unsent {unsent})"
        );
    };
    assert_eq!((flash_runs, unsent), (1, 0));
    // The flash broadcast ticks once per zone: 10:00 in Sydney (an hour
    // before the processes started, within catch-up) and 10:00 in Shanghai.
    let flash_ticks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_ticks WHERE job = 'campaign:flash'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(flash_ticks, 2);
    // Let a few more built-in ticks race.
    tokio::time::sleep(Duration::from_secs(5)).await;

    for (child, _, _) in &children {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
    }
    let mut logged: Vec<BTreeSet<(String, String)>> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    for (mut child, data, log) in children {
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(0), "{text}");
        logged.push(ticks_logged(&text));
        files.extend(outbox_files(&data));
    }

    // Each tick ran in exactly one process.
    let mut runs_per_tick: BTreeMap<(String, String), usize> = BTreeMap::new();
    for set in &logged {
        for key in set {
            *runs_per_tick.entry(key.clone()).or_default() += 1;
        }
    }
    let twice: Vec<_> = runs_per_tick.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "ticks run by more than one process: {twice:?}"
    );
    let segments_ticks = runs_per_tick
        .keys()
        .filter(|(j, _)| j == "segments")
        .count();
    assert!(segments_ticks >= 3, "{runs_per_tick:?}");
    assert!(
        logged.iter().filter(|s| !s.is_empty()).count() >= 2,
        "the ticks were shared between processes: {logged:?}"
    );
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_ticks WHERE outcome = 'ok' AND attempt = 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(recorded as usize, runs_per_tick.len());

    // Each message went out once: one provider call, one outbox file.
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'sent'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(sent > 100, "the broadcast planned messages: {sent}");
    let calls_twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT message_id FROM message_attempts
           GROUP BY message_id HAVING count(*) > 1) x",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(calls_twice, 0);
    let distinct: BTreeSet<&String> = files.iter().collect();
    assert_eq!(distinct.len(), files.len(), "a message was written twice");
    assert_eq!(files.len() as i64, sent);
    drop(conn);
    db.cleanup().await;
}
