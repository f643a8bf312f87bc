//! `outreach logs` as a user runs it: filters, masking and `--reveal`, JSON
//! Lines, CSV, paging with the printed cursor, one message in full, and one
//! clear sentence with exit code 2 for a bad filter.

use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

const NOW: &str = "2026-11-20T10:30:00+08:00";

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

/// `outreach logs ARGS --now NOW`, which must succeed.
fn logs(dir: &Path, args: &[&str]) -> (String, String) {
    let (code, out, err) = run(outreach(dir).arg("logs").args(args).args(["--now", NOW]));
    assert_eq!(code, 0, "{args:?}: {err}");
    (out, err)
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A demo shop with the repository's campaigns, and a win-back run: queued
/// and suppressed messages over SMS, e-mail and WeChat.
fn shop() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["campaigns", "templates"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, dir.join(folder).join(p.file_name().unwrap())).unwrap();
        }
    }
    for args in [
        vec!["demo", "--seed-only", "--customers", "800"],
        vec!["jobs", "run", "segments"],
        vec!["jobs", "run", "campaign:winback"],
    ] {
        let (code, _, err) = run(outreach(dir).args(&args).args(["--now", NOW]));
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    tmp
}

/// A masked phone, e-mail or OpenID: never the full address.
fn is_masked(a: &str) -> bool {
    a == "****" || a.contains("****") || a.contains("***@")
}

#[test]
fn filters_masking_formats_and_paging() {
    let tmp = shop();
    let dir = tmp.path();

    // Everything, as JSON Lines, newest first; addresses masked.
    let (out, _) = logs(dir, &["--format", "json", "--limit", "1000"]);
    let all = json_lines(&out);
    assert!(all.len() > 30, "{}", all.len());
    let keys: Vec<(String, i64)> = all
        .iter()
        .map(|r| {
            (
                r["created_at"].as_str().unwrap().to_owned(),
                r["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first");
    let addresses: Vec<&str> = all.iter().filter_map(|r| r["address"].as_str()).collect();
    assert!(!addresses.is_empty());
    assert!(addresses.iter().all(|a| is_masked(a)), "{addresses:?}");

    // --reveal shows them in full.
    let (out, _) = logs(dir, &["--format", "json", "--limit", "1000", "--reveal"]);
    let revealed = json_lines(&out);
    assert_eq!(revealed.len(), all.len());
    let full: Vec<&str> = revealed
        .iter()
        .filter_map(|r| r["address"].as_str())
        .collect();
    assert!(full.iter().all(|a| !is_masked(a)), "{full:?}");
    assert!(full.iter().any(|a| a.starts_with("+86") && a.len() == 14));

    // Each filter keeps only its rows.
    let suppressed = all.iter().filter(|r| r["status"] == "suppressed").count();
    assert!(suppressed > 0 && suppressed < all.len());
    let (out, _) = logs(
        dir,
        &[
            "--status",
            "suppressed",
            "--format",
            "json",
            "--limit",
            "1000",
        ],
    );
    let rows = json_lines(&out);
    assert_eq!(rows.len(), suppressed);
    assert!(
        rows.iter().all(|r| r["reason"].is_string()),
        "every unsent row says why"
    );
    let (out, _) = logs(
        dir,
        &["--channel", "sms", "--format", "json", "--limit", "1000"],
    );
    let rows = json_lines(&out);
    assert!(!rows.is_empty() && rows.len() < all.len());
    assert!(rows.iter().all(|r| r["channel"] == "sms"));
    let one = all[3]["customer_id"].as_str().unwrap().to_owned();
    let (out, _) = logs(dir, &["--customer", &one, "--format", "json"]);
    let rows = json_lines(&out);
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["customer_id"] == one.as_str()));
    let (out, _) = logs(
        dir,
        &[
            "--campaign",
            "winback",
            "--format",
            "json",
            "--limit",
            "1000",
        ],
    );
    assert_eq!(json_lines(&out).len(), all.len());
    let (out, _) = logs(dir, &["--campaign", "birthday", "--format", "json"]);
    assert_eq!(out, "");
    // The run wrote them at NOW: all within the last hour, none before 2 h ago.
    let (out, _) = logs(
        dir,
        &["--since", "1h", "--format", "json", "--limit", "1000"],
    );
    assert_eq!(json_lines(&out).len(), all.len());
    let (out, _) = logs(dir, &["--until", "2h", "--format", "json"]);
    assert_eq!(out, "");
    let (out, _) = logs(
        dir,
        &[
            "--since",
            "2026-11-20T10:30:00+08:00",
            "--status",
            "queued",
            "--channel",
            "sms",
        ],
    );
    assert!(out.starts_with("ID "), "{out}");

    // The table: a header naming the zone, the reason of every unsent row.
    let (out, _) = logs(dir, &["--status", "suppressed", "--limit", "1000"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("CREATED (Asia/Shanghai)") && header.contains("WHY NOT SENT"));
    for line in lines {
        assert!(
            [
                "no_consent",
                "no_address",
                "invalid_address",
                "capped",
                "opted_out"
            ]
            .iter()
            .any(|r| line.ends_with(r)),
            "{line}"
        );
        assert!(line.contains("suppressed"), "{line}");
    }
    let (out, _) = logs(dir, &["--status", "queued", "--limit", "3"]);
    assert!(out.lines().nth(1).unwrap().contains("due 2026-"), "{out}");
    let (out, _) = logs(dir, &["--customer", "NOBODY"]);
    assert_eq!(out.trim(), "no messages match");

    // CSV: a header, then one RFC 4180 record per message.
    let (out, _) = logs(dir, &["--format", "csv", "--limit", "1000"]);
    let records = csv_records(&out);
    assert_eq!(records[0][..3], ["id", "created_at", "campaign_id"]);
    assert_eq!(records.len(), all.len() + 1);
    assert!(records.iter().all(|r| r.len() == 17), "{records:?}");
    assert_eq!(records[1][0], all[0]["id"].to_string());
    assert!(
        records[1..]
            .iter()
            .all(|r| r[7].is_empty() || is_masked(&r[7]))
    );
    // A phone number's `+` would make a spreadsheet compute the cell.
    assert!(
        records[1..]
            .iter()
            .filter(|r| r[5] == "sms" && !r[7].is_empty())
            .all(|r| r[7].starts_with("'+")),
        "{records:?}"
    );

    // Paging: the hint on stderr reads the next page; pages join up.
    let (first, err) = logs(
        dir,
        &["--limit", "7", "--format", "json", "--status", "queued"],
    );
    let hint = err
        .lines()
        .find_map(|l| l.strip_prefix("more: "))
        .unwrap_or_else(|| panic!("no paging hint: {err}"));
    let words: Vec<&str> = hint.split(' ').collect();
    assert_eq!(words[..2], ["outreach", "logs"], "{hint}");
    assert!(
        hint.contains("--status queued") && hint.contains("--limit 7"),
        "{hint}"
    );
    let (second, _) = {
        let (code, out, err) = run(outreach(dir).args(&words[1..]));
        assert_eq!(code, 0, "{err}");
        (out, err)
    };
    let (both, _) = logs(
        dir,
        &["--limit", "14", "--format", "json", "--status", "queued"],
    );
    assert_eq!(format!("{first}{second}"), both);
    assert_eq!(json_lines(&first).len(), 7);
}

#[test]
fn one_message_in_full_and_bad_values_in_one_sentence() {
    let tmp = shop();
    let dir = tmp.path();
    let (out, _) = logs(
        dir,
        &["--format", "json", "--limit", "1", "--status", "queued"],
    );
    let row = &json_lines(&out)[0];
    let id = row["id"].to_string();

    let (out, _) = logs(dir, &[&id]);
    assert!(
        out.starts_with(&format!("message {id}: campaign winback")),
        "{out}"
    );
    assert!(out.contains("status       queued"), "{out}");
    assert!(out.contains("no provider calls yet"), "{out}");
    let address = row["address"].as_str().unwrap();
    assert!(out.contains(address), "masked as in the list: {out}");
    let (out, _) = logs(dir, &["--id", &id, "--format", "json"]);
    let detail: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(detail["id"].to_string(), id);
    assert_eq!(detail["history"], Value::Array(vec![]));
    assert_eq!(detail["address"].as_str(), Some(address));
    let (out, _) = logs(dir, &["--id", &id, "--format", "json", "--reveal"]);
    let detail: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(!is_masked(detail["address"].as_str().unwrap()));

    for (args, needle) in [
        (
            vec!["--status", "lost"],
            "--status: unknown status \"lost\" (expected one of queued, deferred, sending, sent, delivered, failed, dead, suppressed)",
        ),
        (
            vec!["--channel", "fax"],
            "--channel: unknown channel \"fax\"",
        ),
        (
            vec!["--since", "yesterday"],
            "--since: \"yesterday\" is neither a duration",
        ),
        (
            vec!["--until", "5x"],
            "--until: \"5x\" is neither a duration",
        ),
        (
            vec!["--before", "page2"],
            "--before: \"page2\" is not a send-log cursor",
        ),
        (vec!["--customer", "a b"], "--customer: "),
        (
            vec!["--campaign", "Win Back"],
            "--campaign: campaign id \"Win Back\"",
        ),
        (vec!["999999"], "no message has id 999999"),
        (vec!["1", "--format", "csv"], "--format csv lists messages"),
    ] {
        let (code, out, err) = run(outreach(dir).arg("logs").args(&args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(out, "", "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    }
    // An id with filters, or a page size out of range: a usage error.
    for args in [vec!["1", "--status", "dead"], vec!["--limit", "0"]] {
        let (code, _, err) = run(outreach(dir).arg("logs").args(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

/// Records of an RFC 4180 document (quoted fields may hold commas, quotes
/// and line breaks).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}
