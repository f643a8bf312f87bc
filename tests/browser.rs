//! The ops page in a real browser: headless Chromium loads the server
//! running in this process and the test reads the DOM it built
//! (`--dump-dom`). The send log filtered by status and by campaign shows
//! exactly the expected rows with their reasons, in English and Chinese,
//! and the message and campaign pages render. Skipped (with a notice) when
//! Chromium is not installed. Runs on SQLite, and on PostgreSQL when
//! OUTREACH_TEST_DATABASE_URL is set.

mod common;
#[path = "common/ops.rs"]
mod ops;
#[path = "common/shop.rs"]
mod shop;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ops::{Spec, message_of, serve, shop};
use outreach::store::SharedStore;

/// `/usr/bin/chromium`, or `chromium` / `chromium-browser` on the PATH.
fn chromium() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// The DOM Chromium builds from `url`.
async fn dump_dom(browser: &Path, profile: &Path, url: &str) -> String {
    let run = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--accept-lang=zh-CN",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish loading {url} within 90 s"))
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).expect("the DOM is UTF-8");
    assert!(dom.contains("</html>"), "no document from {url}: {dom}");
    dom
}

/// (customer, status, reason) of every send-log row in the DOM.
fn rows(dom: &str) -> Vec<(String, String, Option<String>)> {
    dom.split("<tr class=\"msg\"")
        .skip(1)
        .map(|row| {
            let tag = row.split('>').next().unwrap();
            let get = |name: &str| {
                tag.split(&format!("{name}=\""))
                    .nth(1)
                    .map(|r| r.split('"').next().unwrap().to_owned())
            };
            (
                get("data-customer").unwrap(),
                get("data-status").unwrap(),
                get("data-reason"),
            )
        })
        .collect()
}

fn customers(rows: &[(String, String, Option<String>)]) -> Vec<String> {
    let mut c: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    c.sort();
    c
}

async fn the_page_in_chromium_shows_the_filtered_send_log(store: SharedStore) {
    let Some(browser) = chromium() else {
        eprintln!("skipped: chromium not installed");
        return;
    };
    let fixture = shop(&store).await;
    let server = serve(&store, Spec::default()).await;
    let profile = tempfile::tempdir().unwrap();
    let open = |path: &str| {
        let url = format!("{}{path}", server.base);
        let browser = browser.clone();
        let profile = profile.path().to_owned();
        async move { dump_dom(&browser, &profile, &url).await }
    };

    // Suppressed, in English: the two customers without consent, why, and
    // nobody else.
    let dom = open("/?status=suppressed&lang=en").await;
    let got = rows(&dom);
    assert_eq!(customers(&got), fixture.suppressed, "{dom}");
    assert!(
        got.iter()
            .all(|r| r.1 == "suppressed" && r.2.as_deref() == Some("no_consent")),
        "{got:?}"
    );
    assert!(
        dom.contains("the customer has not opted in to any of the campaign's channels"),
        "{dom}"
    );
    assert!(dom.contains("<h1>Send log</h1>"), "{dom}");
    for sent in &fixture.sent {
        assert!(!dom.contains(&format!("data-customer=\"{sent}\"")), "{dom}");
    }

    // The same filter in Chinese, chosen by the browser's Accept-Language.
    let dom = open("/?status=suppressed").await;
    assert!(dom.contains("<html lang=\"zh-CN\">"), "{dom}");
    assert!(dom.contains("<h1>发送记录</h1>"), "{dom}");
    assert!(dom.contains("顾客没有同意接收该渠道的营销消息"), "{dom}");
    assert_eq!(customers(&rows(&dom)), fixture.suppressed);

    // One campaign's failures, in Chinese: the refused message with the
    // provider's code in words.
    let dom = open("/?campaign=bday&status=failed&lang=zh").await;
    let got = rows(&dom);
    assert_eq!(customers(&got), vec![fixture.failed.clone()], "{dom}");
    assert_eq!(got[0].2.as_deref(), Some(ops::REFUSED));
    assert!(dom.contains("阿里云：短信内容违规"), "{dom}");
    assert!(dom.contains("+86138****0003"), "{dom}");
    assert!(!dom.contains("13800130003"), "the address is masked: {dom}");

    // Everything of the campaign, in English: eight rows, five sent.
    let dom = open("/?campaign=bday&lang=en").await;
    let got = rows(&dom);
    assert_eq!(got.len(), 8, "{dom}");
    assert_eq!(got.iter().filter(|r| r.1 == "sent").count(), 5);
    // The language switch keeps the filter.
    assert!(
        dom.contains("href=\"/?lang=zh&amp;campaign=bday\""),
        "{dom}"
    );

    // A message: its attempts and the retry form.
    let id = message_of(&store, &fixture.failed).await;
    let dom = open(&format!("/messages/{id}?lang=en")).await;
    assert!(dom.contains("<table id=\"attempts\">"), "{dom}");
    assert!(dom.contains("id=\"retry-form\""), "{dom}");
    assert!(dom.contains("Retry now"), "{dom}");

    // The campaign card, in Chinese.
    let dom = open("/campaigns?lang=zh").await;
    assert!(dom.contains("Asia/Shanghai 时间每天 10:00"), "{dom}");
    assert!(dom.contains("id=\"campaign-bday\""), "{dom}");
}

store_contract!(the_page_in_chromium_shows_the_filtered_send_log);
