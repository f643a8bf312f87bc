//! The ops HTTP surface over a real server in the test process: who may in
//! (token, session cookie, loopback), `/metrics`, and the ops page (send
//! log filters and paging, reasons in words, a message's attempts, retry
//! with its form token, campaign cards, file errors, both languages). Each
//! test runs on SQLite, and on PostgreSQL when OUTREACH_TEST_DATABASE_URL
//! is set.

mod common;
#[path = "common/ops.rs"]
mod ops;
#[path = "common/shop.rs"]
mod shop;

use ops::{REFUSED, Server, Spec, client, message_of, serve, shop};
use outreach::store::SharedStore;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};

const TOKEN: &str = "ops-token-0123456789";

/// The `outreach_session=…` pair of a response's `Set-Cookie`.
fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("outreach_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

async fn get(s: &Server, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap()
}

async fn text(s: &Server, path: &str) -> String {
    let r = get(s, path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.unwrap()
}

/// Sign in with `token` as `name`; the session cookie on success.
async fn sign_in(s: &Server, token: &str, name: &str) -> (StatusCode, Option<String>, String) {
    let r = client()
        .post(format!("{}/login", s.base))
        .form(&[
            ("token", token),
            ("name", name),
            ("next", "/?status=failed"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cookie = session_cookie(&r);
    let location = r
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cookie, location)
}

async fn opt_out(s: &Server, auth: Option<(&str, &str)>) -> StatusCode {
    let mut req = client()
        .post(format!("{}/api/optouts", s.base))
        .json(&serde_json::json!({"channel": "sms", "address": "13800130099"}));
    if let Some((k, v)) = auth {
        req = req.header(k, v);
    }
    req.send().await.unwrap().status()
}

// ------------------------------------------------------------ authentication

async fn loopback_without_a_token_is_open(store: SharedStore) {
    shop(&store).await;
    let s = serve(&store, Spec::default()).await;
    assert_eq!(get(&s, "/").await.status(), StatusCode::OK);
    assert_eq!(get(&s, "/metrics").await.status(), StatusCode::OK);
    assert_eq!(get(&s, "/campaigns").await.status(), StatusCode::OK);
    assert_eq!(opt_out(&s, None).await, StatusCode::OK);
    // Nothing to sign in to: /login sends the browser on.
    let r = get(&s, "/login?next=/jobs").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/jobs");
}

async fn beyond_loopback_without_a_token_only_public_paths_answer(store: SharedStore) {
    let shop = shop(&store).await;
    let s = serve(
        &store,
        Spec {
            bind: "0.0.0.0:0",
            ..Spec::default()
        },
    )
    .await;
    let r = get(&s, "/metrics").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    assert_eq!(opt_out(&s, None).await, StatusCode::UNAUTHORIZED);
    let r = get(&s, "/?status=failed").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=%2F%3Fstatus%3Dfailed");
    let id = message_of(&store, &shop.failed).await;
    assert_eq!(
        get(&s, &format!("/messages/{id}")).await.status(),
        StatusCode::SEE_OTHER
    );
    // Public: health, unsubscribe links, providers' pushes.
    assert_eq!(get(&s, "/healthz").await.status(), StatusCode::OK);
    assert_eq!(
        get(&s, "/u/not-a-token").await.status(),
        StatusCode::NOT_FOUND
    );
    let hook = client()
        .post(format!(
            "{}/hooks/hooks-token-0123456789/aliyun/receipts",
            s.base
        ))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), StatusCode::OK);
    // No token: signing in is impossible, so nothing gets in.
    let (status, cookie, _) = sign_in(&s, "", "x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cookie, None);
}

async fn with_a_token_the_bearer_or_a_session_is_needed_even_on_loopback(store: SharedStore) {
    shop(&store).await;
    let s = serve(
        &store,
        Spec {
            token: Some(TOKEN),
            ..Spec::default()
        },
    )
    .await;
    // Nothing: the API and /metrics answer 401 JSON, the page sends to /login.
    assert_eq!(get(&s, "/metrics").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(opt_out(&s, None).await, StatusCode::UNAUTHORIZED);
    let r = get(&s, "/campaigns").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=%2Fcampaigns");
    let login = text(&s, "/login?next=%2Fcampaigns&lang=en").await;
    assert!(login.contains("name=\"token\""), "{login}");
    assert!(login.contains("Sign in"), "{login}");
    let login = text(&s, "/login?lang=zh").await;
    assert!(login.contains("访问令牌"), "{login}");
    // The bearer token.
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        opt_out(&s, Some(("authorization", &bearer))).await,
        StatusCode::OK
    );
    assert_eq!(
        opt_out(&s, Some(("authorization", "Bearer wrong-token-0123456789"))).await,
        StatusCode::UNAUTHORIZED
    );
    let r = client()
        .get(format!("{}/", s.base))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A wrong token signs nobody in.
    let (status, cookie, _) = sign_in(&s, "wrong-token-0123456789", "li").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cookie, None);
    // The right one: a session cookie, HttpOnly and SameSite=Strict, and
    // back to where the browser was going.
    let r = client()
        .post(format!("{}/login", s.base))
        .form(&[("token", TOKEN), ("name", "li"), ("next", "/jobs")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/jobs");
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains("Secure"), "http public_url: {set}");
    let cookie = session_cookie(&r).unwrap();
    let with_cookie = |path: &str| {
        client()
            .get(format!("{}{path}", s.base))
            .header("cookie", &cookie)
            .send()
    };
    let page = with_cookie("/jobs?lang=en").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Signed in as li"), "{page}");
    assert!(page.contains("Sign out"), "{page}");
    assert_eq!(
        with_cookie("/metrics").await.unwrap().status(),
        StatusCode::OK
    );
    let r = client()
        .post(format!("{}/api/optouts", s.base))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"channel": "sms", "address": "13800130098"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A forged cookie is refused.
    let forged = format!("{}x", &cookie[..cookie.len() - 1]);
    let r = client()
        .get(format!("{}/", s.base))
        .header("cookie", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Signing out removes the cookie.
    let r = client()
        .post(format!("{}/logout", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The sign-in redirect never leaves the site.
    let (status, _, location) = {
        let r = client()
            .post(format!("{}/login", s.base))
            .form(&[("token", TOKEN), ("next", "//evil.example/")])
            .send()
            .await
            .unwrap();
        (
            r.status(),
            (),
            r.headers()[LOCATION].to_str().unwrap().to_owned(),
        )
    };
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/");
}

async fn cookies_are_secure_when_the_public_url_is_https(store: SharedStore) {
    let s = serve(
        &store,
        Spec {
            token: Some(TOKEN),
            public_url: Some("https://ops.example.cn"),
            campaign_files: vec![],
            ..Spec::default()
        },
    )
    .await;
    let r = client()
        .post(format!("{}/login", s.base))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.ends_with("; Secure"), "{set}");
}

// ------------------------------------------------------------------ metrics

async fn metrics_are_prometheus_text_and_count_dispatches(store: SharedStore) {
    let fixture = shop(&store).await;
    let s = serve(&store, Spec::default()).await;
    let r = get(&s, "/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = r.text().await.unwrap();
    for family in [
        "# TYPE outreach_messages_total counter",
        "# TYPE outreach_send_seconds histogram",
        "# TYPE outreach_queue_messages gauge",
        "# TYPE outreach_campaigns_in_force gauge",
        "# TYPE outreach_campaign_file_errors gauge",
        "# TYPE outreach_uptime_seconds gauge",
        "# TYPE outreach_build_info gauge",
        "# HELP outreach_messages_total",
    ] {
        assert!(body.contains(family), "{family} missing:\n{body}");
    }
    let sent = format!(
        "outreach_messages_total{{channel=\"sms\",provider=\"{}\",status=\"sent\"}}",
        fixture.provider
    );
    let failed = format!(
        "outreach_messages_total{{channel=\"sms\",provider=\"{}\",status=\"failed\"}}",
        fixture.provider
    );
    assert!(body.contains(&format!("{sent} 5")), "{body}");
    assert!(body.contains(&format!("{failed} 1")), "{body}");
    assert!(
        body.contains(&format!(
            "outreach_send_seconds_count{{provider=\"{}\"}} 6",
            fixture.provider
        )),
        "{body}"
    );
    assert!(body.contains("outreach_campaigns_in_force 1"), "{body}");
    assert!(body.contains("outreach_campaign_file_errors 0"), "{body}");
    assert!(body.contains("outreach_uptime_seconds 3900"), "{body}");
    assert!(
        body.contains("outreach_queue_messages{state=\"queued\"} 0"),
        "{body}"
    );
    // Sending again moves the counters: the refused message, retried and
    // now accepted.
    let id = message_of(&store, &fixture.failed).await;
    let retried = store
        .retry_message(id, "test", shop::t("2026-03-10T10:02:00+08:00"))
        .await
        .unwrap();
    assert!(
        matches!(retried, outreach::store::RetryOutcome::Retried { .. }),
        "{retried:?}"
    );
    let queued = text(&s, "/metrics").await;
    assert!(
        queued.contains("outreach_queue_messages{state=\"queued\"} 1"),
        "{queued}"
    );
    ops::dispatch(&store, "2026-03-10T10:03:00+08:00", &fixture.provider, &[]).await;
    let body = text(&s, "/metrics").await;
    assert!(body.contains(&format!("{sent} 6")), "{body}");
    assert!(body.contains(&format!("{failed} 1")), "{body}");
    // A receipt moves its counter.
    let receipt = r#"[{"phone_number":"13800130001","send_time":"2026-03-10 10:01:01","report_time":"2026-03-10 10:01:09","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"nobody-knows","out_id":"0"}]"#;
    let before = counter(
        &body,
        "outreach_receipts_total{provider=\"aliyun\",outcome=\"unmatched\"}",
    );
    let r = client()
        .post(format!(
            "{}/hooks/hooks-token-0123456789/aliyun/receipts",
            s.base
        ))
        .body(receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let after = text(&s, "/metrics").await;
    assert!(
        counter(
            &after,
            "outreach_receipts_total{provider=\"aliyun\",outcome=\"unmatched\"}"
        ) > before,
        "{after}"
    );
}

/// The value of `series` in `body` (0 when absent).
fn counter(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- the page

/// `s` with the entities askama writes turned back into characters.
fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
}

/// The value of attribute `name` in `html` after its first `<… marker`.
fn attr(html: &str, marker: &str, name: &str) -> Option<String> {
    let tag = html.split(marker).nth(1)?.split('>').next()?;
    let value = tag.split(&format!("{name}=\"")).nth(1)?.split('"').next()?;
    Some(unescape(value))
}

/// The rows of the send-log table, as (customer, status, reason).
fn rows(page: &str) -> Vec<(String, String, Option<String>)> {
    page.split("<tr class=\"msg\"")
        .skip(1)
        .map(|row| {
            let tag = row.split('>').next().unwrap();
            let get = |name: &str| {
                tag.split(&format!("{name}=\""))
                    .nth(1)
                    .map(|r| unescape(r.split('"').next().unwrap()))
            };
            (
                get("data-customer").unwrap(),
                get("data-status").unwrap(),
                get("data-reason"),
            )
        })
        .collect()
}

async fn the_send_log_filters_and_says_why_in_both_languages(store: SharedStore) {
    let shop = shop(&store).await;
    let s = serve(&store, Spec::default()).await;
    let all = text(&s, "/?lang=en").await;
    assert_eq!(rows(&all).len(), 8, "{all}");
    // Suppressed only: the two without consent, with the reason in words.
    let page = text(&s, "/?status=suppressed&lang=en").await;
    let got = rows(&page);
    let mut customers: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    customers.sort();
    assert_eq!(customers, shop.suppressed);
    assert!(
        got.iter()
            .all(|r| r.1 == "suppressed" && r.2.as_deref() == Some("no_consent"))
    );
    assert!(
        unescape(&page).contains("the customer has not opted in to any of the campaign's channels"),
        "{page}"
    );
    // The same in Chinese.
    let page = text(&s, "/?status=suppressed&lang=zh").await;
    assert!(page.contains("顾客没有同意接收该渠道的营销消息"), "{page}");
    assert!(page.contains("发送记录"), "{page}");
    assert!(page.contains("lang=\"zh-CN\""), "{page}");
    // Accept-Language decides without ?lang=.
    let r = client()
        .get(format!("{}/?status=failed", s.base))
        .header("accept-language", "en-GB,en;q=0.9,zh;q=0.5")
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("Send log"), "{page}");
    let got = rows(&page);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, shop.failed);
    assert_eq!(got[0].2.as_deref(), Some(REFUSED));
    assert!(page.contains("Aliyun: the text is not allowed"), "{page}");
    // Addresses are masked.
    assert!(page.contains("+86138****0003"), "{page}");
    assert!(!page.contains("13800130003"), "{page}");
    // A customer; a channel; a date range.
    let page = text(&s, "/?customer=C0002&lang=en").await;
    assert_eq!(rows(&page).len(), 1);
    let page = text(&s, "/?channel=email&lang=en").await;
    assert!(rows(&page).is_empty());
    assert!(page.contains("No messages match these filters."), "{page}");
    assert_eq!(
        rows(&text(&s, "/?since=2026-03-10&until=2026-03-10").await).len(),
        8
    );
    assert!(rows(&text(&s, "/?since=2026-03-11").await).is_empty());
    // A bad filter says which field and why.
    let r = get(&s, "/?status=sendt&lang=en").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = r.text().await.unwrap();
    assert!(
        unescape(&page).contains("status: \"sendt\" is not a status"),
        "{page}"
    );
}

async fn the_send_log_pages_by_cursor(store: SharedStore) {
    shop(&store).await;
    let s = serve(&store, Spec::default()).await;
    let mut seen = Vec::new();
    let mut path = "/?limit=3&lang=en".to_owned();
    let mut pages = 0;
    loop {
        let page = text(&s, &path).await;
        pages += 1;
        let ids: Vec<String> = page
            .split("<tr class=\"msg\" data-id=\"")
            .skip(1)
            .map(|r| r.split('"').next().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 3);
        seen.extend(ids);
        match attr(&page, "<a id=\"older\"", "href") {
            Some(next) => path = next,
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let mut sorted: Vec<i64> = seen.iter().map(|i| i.parse().unwrap()).collect();
    let newest_first = sorted.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(newest_first, sorted, "newest first, no repeats");
    sorted.dedup();
    assert_eq!(sorted.len(), 8);
}

async fn a_message_shows_its_attempts_and_a_failed_one_can_be_retried(store: SharedStore) {
    let shop = shop(&store).await;
    let s = serve(&store, Spec::default()).await;
    let id = message_of(&store, &shop.failed).await;
    let r = get(&s, &format!("/messages/{id}?lang=en")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // No token configured: an anonymous session protects the form.
    let cookie = session_cookie(&r).expect("a session cookie for the form");
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"retry-form\""), "{page}");
    assert!(page.contains(REFUSED), "{page}");
    assert!(
        page.contains("短信内容违规"),
        "the provider's words: {page}"
    );
    assert!(page.contains("<table id=\"attempts\">"), "{page}");
    let form_token = attr(&page, "<input type=\"hidden\" name=\"form_token\"", "value").unwrap();
    assert!(!form_token.is_empty());
    // A sent message has no retry button.
    let sent = message_of(&store, &shop.sent[0]).await;
    let page = text(&s, &format!("/messages/{sent}?lang=en")).await;
    assert!(!page.contains("retry-form"), "{page}");
    let retry = |cookie: Option<String>, token: String, origin: Option<&'static str>| {
        let mut req = client()
            .post(format!("{}/messages/{id}/retry", s.base))
            .form(&[("form_token", token.as_str()), ("lang", "en")]);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    // Without the cookie, with a wrong token, or from another site: refused.
    for (c, tok, origin) in [
        (None, form_token.clone(), None),
        (Some(cookie.clone()), "wrong".to_owned(), None),
        (
            Some(cookie.clone()),
            form_token.clone(),
            Some("https://evil.example"),
        ),
    ] {
        let r = retry(c, tok, origin).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()[LOCATION],
            format!("/messages/{id}?lang=en&retry=forbidden")
        );
        let m = store.message_detail(id).await.unwrap().unwrap();
        assert_eq!(m.status, "failed");
    }
    let page = text(&s, &format!("/messages/{id}?lang=en&retry=forbidden")).await;
    assert!(page.contains("The form has expired"), "{page}");
    // With both: back in the queue.
    let r = retry(Some(cookie.clone()), form_token.clone(), None)
        .await
        .unwrap();
    assert_eq!(
        r.headers()[LOCATION],
        format!("/messages/{id}?lang=en&retry=done")
    );
    let m = store.message_detail(id).await.unwrap().unwrap();
    assert_eq!(m.status, "queued");
    let page = text(&s, &format!("/messages/{id}?lang=zh&retry=done")).await;
    assert!(page.contains("已重新排队"), "{page}");
    // Again: it is no longer failed.
    let r = retry(Some(cookie), form_token, None).await.unwrap();
    assert_eq!(
        r.headers()[LOCATION],
        format!("/messages/{id}?lang=en&retry=not_retryable&status=queued")
    );
    let page = text(
        &s,
        &format!("/messages/{id}?lang=en&retry=not_retryable&status=queued"),
    )
    .await;
    assert!(
        page.contains("only failed and dead messages can be retried"),
        "{page}"
    );
    // An unknown message.
    assert_eq!(
        get(&s, "/messages/999999").await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn a_retry_by_a_signed_in_person_is_audited_with_their_name(store: SharedStore) {
    let shop = shop(&store).await;
    let s = serve(
        &store,
        Spec {
            token: Some(TOKEN),
            ..Spec::default()
        },
    )
    .await;
    let (status, cookie, _) = sign_in(&s, TOKEN, "小李").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap();
    let id = message_of(&store, &shop.failed).await;
    let page = client()
        .get(format!("{}/messages/{id}", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form_token = attr(&page, "<input type=\"hidden\" name=\"form_token\"", "value").unwrap();
    let r = client()
        .post(format!("{}/messages/{id}/retry", s.base))
        .header("cookie", &cookie)
        .form(&[("form_token", form_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .ends_with("retry=done"),
        "{:?}",
        r.headers()[LOCATION]
    );
    let m = store.message_detail(id).await.unwrap().unwrap();
    assert_eq!(m.status, "queued");
    assert!(
        m.detail.as_deref().unwrap_or("").contains("page:小李"),
        "{:?}",
        m.detail
    );
}

async fn campaign_cards_show_schedule_next_run_and_figures(store: SharedStore) {
    shop(&store).await;
    let s = serve(&store, Spec::default()).await;
    // The figures are computed in the background: a page asked for before
    // they are ready says so and reloads itself, as a person's browser would.
    let mut page = text(&s, "/campaigns?lang=en").await;
    for _ in 0..100 {
        if !page.contains("being computed") {
            break;
        }
        assert!(page.contains("<meta http-equiv=\"refresh\""), "{page}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        page = text(&s, "/campaigns?lang=en").await;
    }
    assert!(page.contains("id=\"campaign-bday\""), "{page}");
    assert!(page.contains("every day at 10:00 Asia/Shanghai"), "{page}");
    // The clock stands at 10:05 on March 10: the next run is tomorrow.
    assert!(page.contains("2026-03-11 10:00 Asia/Shanghai"), "{page}");
    assert!(
        page.contains("¥10.00 off, from ¥30.00, valid 14 days"),
        "{page}"
    );
    let figure = |class: &str| {
        page.split(&format!("<b class=\"{class}\">"))
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(figure("sent"), "5");
    assert_eq!(figure("failed"), "1");
    assert_eq!(figure("suppressed"), "2");
    assert_eq!(figure("issued"), "6");
    assert_eq!(figure("revenue"), "¥0.00");
    let page = text(&s, "/campaigns?lang=zh").await;
    assert!(page.contains("Asia/Shanghai 时间每天 10:00"), "{page}");
    assert!(page.contains("减 10.00 元"), "{page}");
}

async fn campaign_file_errors_are_listed_with_file_and_line(store: SharedStore) {
    shop(&store).await;
    let broken = "id: broken\nschedule: \"0 25 * * *\"\ntrigger: { type: birthday }\nchannels: [sms]\ntemplate: birthday\n";
    let s = serve(
        &store,
        Spec {
            campaign_files: vec![("bday.yaml", ops::BIRTHDAY), ("broken.yaml", broken)],
            ..Spec::default()
        },
    )
    .await;
    let jobs = text(&s, "/jobs?lang=en").await;
    assert!(jobs.contains("<table id=\"errors\">"), "{jobs}");
    assert!(jobs.contains("broken.yaml"), "{jobs}");
    assert!(jobs.contains("not a valid cron schedule"), "{jobs}");
    assert!(jobs.contains("<td class=\"num\">2</td>"), "line 2: {jobs}");
    // Every page carries the banner.
    let page = text(&s, "/?lang=en").await;
    assert!(page.contains("id=\"file-errors-banner\""), "{page}");
    let listed = jobs
        .split("<table id=\"errors\">")
        .nth(1)
        .unwrap()
        .matches("<tr><td><code>")
        .count();
    let metrics = text(&s, "/metrics").await;
    assert!(
        metrics.contains(&format!("outreach_campaign_file_errors {listed}")),
        "{listed} errors listed:\n{jobs}\n{metrics}"
    );
    // Health.
    let page = text(&s, "/jobs?lang=en").await;
    assert!(page.contains("1 h 5 min"), "uptime from the clock: {page}");
}

async fn the_jobs_page_lists_recent_runs(store: SharedStore) {
    use outreach::store::ticks::{TickClaim, TickFinish, TickOutcome};
    shop(&store).await;
    let at = |s: &str| shop::t(s);
    for (job, tick, outcome, detail) in [
        (
            "segments",
            "2026-03-10T03:00:00+08:00",
            Some(TickOutcome::Ok),
            "{\"customers\":8}",
        ),
        (
            "campaign:bday",
            "2026-03-10T10:00:00+08:00",
            Some(TickOutcome::Failed),
            "the database went away",
        ),
        ("campaign:bday", "2026-03-10T10:05:00+08:00", None, ""),
    ] {
        let claimed = store
            .claim_tick(&TickClaim {
                job,
                scheduled_for: at(tick),
                worker: "host:1:abc",
                now: at(tick),
                lease_until: at(tick) + chrono::Duration::minutes(5),
            })
            .await
            .unwrap();
        assert!(claimed.is_some());
        if let Some(outcome) = outcome {
            store
                .finish_tick(&TickFinish {
                    job,
                    scheduled_for: at(tick),
                    worker: "host:1:abc",
                    finished_at: at(tick) + chrono::Duration::milliseconds(2500),
                    outcome,
                    detail,
                })
                .await
                .unwrap();
        }
    }
    let s = serve(&store, Spec::default()).await;
    let page = unescape(&text(&s, "/jobs?lang=en").await);
    let runs: Vec<(String, String)> = page
        .split("<tr class=\"run\"")
        .skip(1)
        .map(|r| {
            let tag = r.split('>').next().unwrap();
            let get = |n: &str| {
                tag.split(&format!("{n}=\""))
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_owned()
            };
            (get("data-job"), get("data-outcome"))
        })
        .collect();
    assert_eq!(runs.len(), 3, "{page}");
    for expected in [
        ("segments".to_owned(), "ok".to_owned()),
        ("campaign:bday".to_owned(), "failed".to_owned()),
        ("campaign:bday".to_owned(), String::new()),
    ] {
        assert!(runs.contains(&expected), "{expected:?} in {runs:?}");
    }
    assert!(page.contains("the database went away"), "{page}");
    assert!(page.contains("2.5 s"), "{page}");
    assert!(page.contains("running"), "{page}");
    assert!(page.contains("no scheduler runs in this process"), "{page}");
    let page = text(&s, "/jobs?lang=zh").await;
    assert!(page.contains("最近的任务运行"), "{page}");
    assert!(page.contains("进行中"), "{page}");
}

store_contract!(
    loopback_without_a_token_is_open,
    beyond_loopback_without_a_token_only_public_paths_answer,
    with_a_token_the_bearer_or_a_session_is_needed_even_on_loopback,
    cookies_are_secure_when_the_public_url_is_https,
    metrics_are_prometheus_text_and_count_dispatches,
    the_send_log_filters_and_says_why_in_both_languages,
    the_send_log_pages_by_cursor,
    a_message_shows_its_attempts_and_a_failed_one_can_be_retried,
    a_retry_by_a_signed_in_person_is_audited_with_their_name,
    campaign_cards_show_schedule_next_run_and_figures,
    campaign_file_errors_are_listed_with_file_and_line,
    the_jobs_page_lists_recent_runs,
);
