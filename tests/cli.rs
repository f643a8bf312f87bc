//! The `outreach` binary as a user runs it: exit codes, messages, files.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

const NOW: &str = "2026-11-23T12:00:00+08:00";

/// `outreach` run in `dir` (so the default `data/outreach.db` lands there), no config file.
fn outreach(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("outreach").unwrap();
    cmd.current_dir(dir)
        .env_remove("OUTREACH_DATABASE__URL")
        .env("OUTREACH_LOG", "warn,outreach=info")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const STORES_TOML: &str =
    "[stores.SH-001]\nname = \"人民广场店\"\nsms_signature = \"早安包子铺\"\n";

#[test]
fn import_exit_codes_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("outreach.toml"), STORES_TOML).unwrap();
    std::fs::write(
        dir.path().join("good.csv"),
        "id,name,phone,store\nC1,王小明,13800138000,SH-001\nC2,李雷,13900139000,SH-001\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.csv"),
        "id,name,phone,birthday,store\nC3,韩梅梅,13700137000,13-45,SH-001\nC4,张三,13600136000,03-08,SH-001\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("noid.csv"), "name,phone\n王,13800138000\n").unwrap();
    std::fs::write(dir.path().join("x.xlsx"), "").unwrap();

    let (code, out, err) = run(outreach(dir.path()).args(["import", "customers", "good.csv"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 rows read, 2 imported (2 new"), "{out}");
    // Piped (not a terminal): no progress bar, nothing at all on stderr.
    assert_eq!(err, "", "stderr must stay empty when piped");
    assert!(dir.path().join("data/outreach.db").exists());

    let (code, out, err) = run(outreach(dir.path()).args(["import", "customers", "bad.csv"]));
    assert_eq!(code, 1);
    assert!(err.contains("bad.csv:2:4: birthday: "), "{err}");
    assert!(
        out.contains("1 imported") && out.contains("1 rejected"),
        "{out}"
    );

    let (code, out, _) =
        run(outreach(dir.path()).args(["import", "customers", "good.csv", "--format", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["unchanged"].as_u64(), v["inserted"].as_u64()),
        (Some(2), Some(0))
    );

    for (file, needle) in [
        ("missing.csv", "cannot open missing.csv"),
        ("x.xlsx", "name it .csv or .jsonl"),
        ("noid.csv", "missing required column \"id\""),
    ] {
        let (code, out, err) = run(outreach(dir.path()).args(["import", "customers", file]));
        assert_eq!(code, 2, "{file}: {out} {err}");
        assert!(err.contains(needle), "{file}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn bad_configuration_is_one_sentence_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("outreach.toml"),
        "timezone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let (code, _, err) = run(outreach(dir.path()).args(["import", "customers", "x.csv"]));
    assert_eq!(code, 2);
    assert!(err.contains("Mars/Olympus"), "{err}");
    let (code, _, err) = run(outreach(dir.path())
        .args(["run"])
        .env("OUTREACH_DATABASE__URL", "mysql://localhost/x")
        .env("OUTREACH_TIMEZONE", "Asia/Shanghai"));
    assert_eq!(code, 2);
    assert!(err.contains("unsupported database URL"), "{err}");
}

#[test]
fn demo_seeds_once_and_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) =
        run(outreach(dir.path()).args(["demo", "--seed-only", "--customers", "400", "--now", NOW]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("seeded the demo shop"), "{err}");
    let (code, _, err) =
        run(outreach(dir.path()).args(["demo", "--seed-only", "--customers", "400", "--now", NOW]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already in the database"), "{err}");

    // Exports of the same shop are byte-identical and import cleanly.
    for sub in ["a", "b"] {
        let (code, _, err) = run(outreach(dir.path()).args([
            "demo",
            "--customers",
            "400",
            "--now",
            NOW,
            "--export",
            sub,
        ]));
        assert_eq!(code, 0, "{err}");
    }
    for f in ["customers.csv", "orders.csv", "stores.toml"] {
        let a = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert!(a == b && !a.is_empty(), "{f} differs");
    }
    let fresh = tempfile::tempdir().unwrap();
    for kind in ["customers", "orders"] {
        let file = dir.path().join("a").join(format!("{kind}.csv"));
        let (code, out, err) = run(outreach(fresh.path())
            .args([
                "--config",
                dir.path().join("a/stores.toml").to_str().unwrap(),
            ])
            .args(["import", kind, file.to_str().unwrap()]));
        assert_eq!(code, 0, "{kind}: {out} {err}");
        assert!(out.contains("0 rejected"), "{out}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(outreach(dir.path()).args([
        "--log-format",
        "json",
        "demo",
        "--seed-only",
        "--customers",
        "50",
        "--now",
        NOW,
    ]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
}

#[test]
fn optout_is_recorded_once_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(outreach(dir.path()).args(["optout", "sms", "138 0013 8000"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("+86138****8000") && !out.contains("13800138000"),
        "{out}"
    );
    let (_, out, _) = run(outreach(dir.path()).args(["optout", "sms", "+8613800138000"]));
    assert!(out.contains("already"), "{out}");
    let (code, _, err) = run(outreach(dir.path()).args(["optout", "sms", "010-12345678"]));
    assert_eq!(code, 2);
    assert!(err.starts_with("error: "), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn daemon_serves_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = outreach(dir.path())
        .args(["run"])
        .env("OUTREACH_HTTP__ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some(r) = get(port, "/healthz") {
            break r;
        }
        assert!(Instant::now() < deadline, "daemon did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn daemon_refuses_a_public_listener_without_token() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(outreach(dir.path())
        .args(["run"])
        .env("OUTREACH_HTTP__ADDR", "0.0.0.0:0"));
    assert_eq!(code, 2);
    assert!(err.contains("http.token is required"), "{err}");
}

#[tokio::test]
async fn import_and_demo_work_on_postgres() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.clone();
    let (code, _, err) = run(outreach(dir.path())
        .env("OUTREACH_DATABASE__URL", &url)
        .args(["demo", "--seed-only", "--customers", "300", "--now", NOW]));
    assert_eq!(code, 0, "{err}");
    let counts = db.store.counts().await.unwrap();
    assert_eq!(counts.customers, 300);
    assert!(counts.orders > 1000, "{counts:?}");
    std::fs::write(
        dir.path().join("more.csv"),
        "id,name,store\nNEW1,新客,SH-001\nC0000001,改名,SH-001\n",
    )
    .unwrap();
    let (code, out, err) = run(outreach(dir.path())
        .env("OUTREACH_DATABASE__URL", &url)
        .args(["import", "customers", "more.csv"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 new, 1 updated"), "{out}");
    db.cleanup().await;
}

/// The repository's own campaigns/segments.yaml, copied into `dir/campaigns`.
fn with_repo_segments(dir: &Path) {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/segments.yaml"),
        dir.join("campaigns/segments.yaml"),
    )
    .unwrap();
}

#[test]
fn segments_job_sizes_and_one_customer_explained() {
    let dir = tempfile::tempdir().unwrap();
    with_repo_segments(dir.path());
    let (code, _, err) =
        run(outreach(dir.path()).args(["demo", "--seed-only", "--customers", "600", "--now", NOW]));
    assert_eq!(code, 0, "{err}");
    // Before any run there is nothing to show, and the message says what to do.
    let (code, _, err) = run(outreach(dir.path()).args(["segments", "--now", NOW]));
    assert_eq!(code, 1);
    assert!(err.contains("outreach jobs run segments"), "{err}");

    let (code, out, err) =
        run(outreach(dir.path())
            .args(["jobs", "run", "segments", "--now", NOW, "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["mode"], "full");
    assert_eq!(report["recomputed"], 600);

    let (code, out, err) =
        run(outreach(dir.path()).args(["segments", "--now", NOW, "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let sizes: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(sizes["customers"], 600);
    let list = sizes["segments"].as_array().unwrap();
    let size = |name: &str| {
        list.iter()
            .find(|s| s["segment"] == name)
            .unwrap_or_else(|| panic!("no {name} in {out}"))["customers"]
            .as_u64()
            .unwrap()
    };
    // The demo shop shows every stage and tier.
    for name in [
        "new", "active", "at_risk", "lapsed", "churned", "vip", "core", "regular",
    ] {
        assert!(size(name) > 0, "{name} is empty: {out}");
    }
    assert!(size("morning_regulars") > 0, "{out}");
    let stages: u64 = ["new", "active", "at_risk", "lapsed", "churned"]
        .iter()
        .map(|s| size(s))
        .sum();
    assert_eq!(stages, 600);

    let (code, table, err) = run(outreach(dir.path()).args(["segments", "--now", NOW]));
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("at_risk") && table.contains("morning_regulars"),
        "{table}"
    );

    let (code, out, err) =
        run(outreach(dir.path()).args(["segments", "--customer", "C0000001", "--now", NOW]));
    assert_eq!(code, 0, "{err}");
    for needle in [
        "lifecycle",
        "recency_days",
        "favorite_daypart",
        "segments",
        "recent transitions",
        "entered",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
    let (code, out, _) = run(outreach(dir.path()).args([
        "segments",
        "--customer",
        "C0000001",
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 0);
    let p: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        p["segments"][0]["why"].as_str().unwrap().len() > 10,
        "{out}"
    );

    let (code, _, err) =
        run(outreach(dir.path()).args(["segments", "--customer", "nobody", "--now", NOW]));
    assert_eq!(code, 1);
    assert!(err.contains("no customer with id nobody"), "{err}");

    // An incremental run right after changes nothing.
    let report = segments_report(dir.path(), "--incremental");
    assert_eq!(report["mode"], "incremental");
    assert_eq!(report["changed"], 0);

    // A rebuild is a full run; nothing was edited, so nothing changes.
    let report = segments_report(dir.path(), "--rebuild");
    assert_eq!(report["mode"], "full");
    assert_eq!(
        (&report["changed"], &report["transitions"]),
        (&0.into(), &0.into())
    );
    let (code, _, err) = run(outreach(dir.path()).args([
        "jobs",
        "run",
        "segments",
        "--rebuild",
        "--incremental",
        "--now",
        NOW,
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--rebuild") && err.contains("--incremental"),
        "{err}"
    );
}

/// `jobs run segments FLAG --format json` at NOW in `dir`: its report.
fn segments_report(dir: &Path, flag: &str) -> serde_json::Value {
    let (code, out, err) = run(outreach(dir).args([
        "jobs", "run", "segments", flag, "--now", NOW, "--format", "json",
    ]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn a_bad_segments_file_is_reported_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    std::fs::write(
        dir.path().join("campaigns/segments.yaml"),
        "segments:\n  regulars: \"order_cnt >= 3 and favorite_daypart == 'brunch'\"\n",
    )
    .unwrap();
    let (code, _, err) =
        run(outreach(dir.path()).args(["demo", "--seed-only", "--customers", "50", "--now", NOW]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(outreach(dir.path()).args(["jobs", "run", "segments", "--now", NOW]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("campaigns/segments.yaml:2:14: segment regulars:"),
        "{err}"
    );
    assert!(err.contains("order_count"), "{err}");
    assert!(err.contains("did not run"), "{err}");
    let (code, _, err) = run(outreach(dir.path()).args(["jobs", "run", "nightly", "--now", NOW]));
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown job \"nightly\"; known jobs: segments"),
        "{err}"
    );
}

/// The repository's campaigns and templates, copied next to a fresh database.
fn with_repo_campaigns(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["campaigns", "templates"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, dir.join(folder).join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A folder with the repository's campaigns and templates and the demo shop
/// seeded at `now`.
fn demo_shop_with_repo_campaigns(now: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    with_repo_campaigns(tmp.path());
    let (code, _, err) = run(outreach(tmp.path()).args(["demo", "--seed-only", "--now", now]));
    assert_eq!(code, 0, "{err}");
    tmp
}

#[test]
fn campaigns_check_preview_and_run_once() {
    let now = "2026-11-20T10:30:00+08:00";
    let tmp = demo_shop_with_repo_campaigns(now);
    let dir = tmp.path();
    let (code, out, err) = run(outreach(dir).args(["campaigns", "check"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("5 campaign file(s): 5 ok, 0 error(s)"),
        "{out}"
    );
    let (code, _, err) = run(outreach(dir).args(["jobs", "run", "segments", "--now", now]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(outreach(dir).args([
        "campaigns",
        "preview",
        "winback",
        "--now",
        now,
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{err}");
    let preview: serde_json::Value = serde_json::from_str(&out).unwrap();
    let queued = preview["queued"].as_u64().unwrap();
    assert!(queued > 100, "{out}");
    assert_eq!(preview["written"], 0);
    // The preview shows addresses masked only.
    assert!(!out.contains("+86138"), "{out}");
    let job = [
        "jobs",
        "run",
        "campaign:winback",
        "--now",
        now,
        "--format",
        "json",
    ];
    let (code, out, err) = run(outreach(dir).args(job));
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(first["queued"].as_u64(), Some(queued));
    assert_eq!(first["coupons"].as_u64(), Some(queued));
    let (code, out, _) = run(outreach(dir).args(job));
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["written"], 0, "{out}");
    // The figures: every win-back coupon issued, none redeemed yet.
    let (code, out, err) =
        run(outreach(dir).args(["campaigns", "stats", "winback", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let stats: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(stats["coupons_issued"].as_u64(), Some(queued), "{out}");
    assert_eq!(stats["coupons_redeemed"].as_u64(), Some(0), "{out}");
    let (code, out, _) = run(outreach(dir).args(["campaigns", "stats"]));
    assert_eq!(code, 0);
    assert!(out.contains("winback") && out.contains("redeemed"), "{out}");
    let (code, _, err) = run(outreach(dir).args(["campaigns", "stats", "nope"]));
    assert_eq!(code, 2);
    assert!(err.contains("campaign nope has no messages yet"), "{err}");
    // A broken file: reported with its place, exit 1, the others still pass.
    std::fs::write(
        dir.join("campaigns/broken.yaml"),
        "schedule: \"0 10 * *\"\ntrigger: { type: birthday }\ncoupon: { kind: amount_off, value: 5 }\nchannels: [sms]\ntemplate: birthday\n",
    )
    .unwrap();
    let (code, out, _) = run(outreach(dir).args(["campaigns", "check"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("broken.yaml:1:11: schedule \"0 10 * *\" has 4 field(s)"),
        "{out}"
    );
    assert!(
        out.contains("6 campaign file(s): 5 ok, 1 error(s) in 1 file(s)"),
        "{out}"
    );
    let (code, _, err) = run(outreach(dir).args(["jobs", "run", "campaign:broken"]));
    assert_eq!(code, 1);
    assert!(err.contains("broken.yaml:1:11"), "{err}");
    // A disabled campaign can be previewed but does not run.
    let winback = std::fs::read_to_string(dir.join("campaigns/winback.yaml")).unwrap();
    std::fs::write(
        dir.join("campaigns/paused.yaml"),
        winback.replace("id: winback", "id: paused") + "\nenabled: false\n",
    )
    .unwrap();
    let (code, out, err) =
        run(outreach(dir).args(["campaigns", "preview", "paused", "--now", now]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queued"), "{out}");
    let (code, _, err) = run(outreach(dir).args(["jobs", "run", "campaign:paused", "--now", now]));
    assert_eq!(code, 2);
    assert!(
        err.contains("campaign paused is disabled (enabled: false in its file)"),
        "{err}"
    );
    // A broken template: the campaigns using it show its errors.
    std::fs::write(
        dir.join("templates/winback.sms.yaml"),
        "kind: marketing\ntext: \"{{customer.name}}，好久不见\"\n",
    )
    .unwrap();
    let (code, _, err) = run(outreach(dir).args(["jobs", "run", "campaign:winback"]));
    assert_eq!(code, 1);
    assert!(err.contains("winback.sms.yaml"), "{err}");
    assert!(err.contains("campaign winback has errors"), "{err}");
}

#[tokio::test]
async fn start_up_refuses_an_unreachable_database_and_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(outreach(dir.path()).args(["run"]).env(
        "OUTREACH_DATABASE__URL",
        "postgres://postgres@127.0.0.1:9/none",
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot open the database"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");

    let (code, _, err) =
        run(outreach(dir.path()).args(["demo", "--seed-only", "--customers", "5"]));
    assert_eq!(code, 0, "{err}");
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("data/outreach.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (29991231000000, 'from the future', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let (code, _, err) = run(outreach(dir.path()).args(["run"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("newer than this binary (migration 29991231000000"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
}

#[test]
fn run_once_runs_each_due_tick_then_nothing() {
    // 10:40 on the 8th: the segments tick of 03:00, housekeeping of 04:30,
    // and the 10:00 / 10:30 campaign ticks (birthday, member day, win-back)
    // are due.
    let now = "2026-12-08T10:40:00+08:00";
    let tmp = demo_shop_with_repo_campaigns(now);
    let dir = tmp.path();
    let once = ["run", "--once", "--now", now, "--format", "json"];
    let (code, out, err) = run(outreach(dir).args(once));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let ran: Vec<&str> = report["jobs"]["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "ok")
        .map(|t| t["job"].as_str().unwrap())
        .collect();
    for job in [
        "segments",
        "campaign:birthday",
        "campaign:member-day",
        "campaign:winback",
        "housekeeping",
    ] {
        assert!(ran.contains(&job), "{job} did not run: {out}");
    }
    assert_eq!(ran[0], "segments", "segments run first: {out}");
    let sent = report["dispatch"]["sent"].as_u64().unwrap();
    assert!(sent > 10, "{out}");
    assert!(dir.join("data/outbox/sms").exists());
    // Again at the same instant: every tick is recorded, nothing is due.
    let (code, out, err) = run(outreach(dir).args(once));
    assert_eq!(code, 0, "{err}");
    let again: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(again["jobs"]["ticks"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(again["dispatch"]["claimed"], 0, "{out}");
    // The table for people.
    let (code, out, _) = run(outreach(dir).args(["run", "--once", "--now", now]));
    assert_eq!(code, 0);
    assert!(out.contains("jobs: none due"), "{out}");
    assert!(out.contains("dispatch: claimed 0"), "{out}");
}

/// The first SIGTERM drains: a send under way is waited for. The second one
/// exits at once (130), even with that send still hanging.
#[test]
fn a_second_signal_exits_at_once_while_a_send_hangs() {
    let now = "2026-12-08T10:40:00+08:00";
    let tmp = demo_shop_with_repo_campaigns(now);
    let dir = tmp.path();
    // An SMS provider that accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().flatten() {
            held.push(conn);
            let _ = seen_tx.send(());
        }
    });
    std::fs::write(
        dir.join("outreach.toml"),
        format!(
            "[channels]\nsms = [\"aliyun\"]\n[providers.aliyun]\naccess_key_id = \"LTAItest\"\n\
             access_key_secret = \"test-secret\"\nbase_url = \"http://127.0.0.1:{hole_port}\"\n\
             timeout_ms = 120000\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = outreach(dir)
        .args(["run", "--now", now])
        .env("OUTREACH_HTTP__ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The start-up pass plans the day's messages; the first SMS goes out.
    if seen_rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!("no SMS reached the provider");
    }
    let pid = child.id().to_string();
    let term = || Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    term();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal waits for the send under way"
    );
    term();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second signal did not stop the daemon");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
}
