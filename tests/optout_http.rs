//! Opt-outs over HTTP: the signed one-click unsubscribe link (RFC 8058) and
//! `POST /api/optouts`. Each test runs on SQLite, and on PostgreSQL when
//! OUTREACH_TEST_DATABASE_URL is set.

mod common;
#[path = "common/shop.rs"]
mod shop;

use std::sync::Arc;

use outreach::campaigns::watch::{self, WatchOptions};
use outreach::clock::{FixedClock, SharedClock};
use outreach::http::{self, AppState};
use outreach::store::{Channel, SharedStore};
use outreach::unsubscribe::LinkSigner;
use shop::{campaign, customer, run_at, seed, t, templates};
use tokio_util::sync::CancellationToken;

const BIRTHDAY: &str = "id: bday\nschedule: \"0 10 * * *\"\ntrigger: { type: birthday, days_before: 0 }\n\
    coupon: { kind: amount_off, value: 10, valid_days: 14 }\nchannels: [email]\ntemplate: birthday\n";

struct Server {
    base: String,
    links: Arc<LinkSigner>,
    stop: CancellationToken,
}

async fn serve(store: &SharedStore, token: Option<&str>) -> Server {
    let clock: SharedClock = Arc::new(FixedClock(t("2026-03-10T10:05:00+08:00")));
    let stop = CancellationToken::new();
    let empty = tempfile::tempdir().unwrap();
    let (campaigns, _watcher) = watch::start(
        store.clone(),
        empty.path().join("campaigns"),
        empty.path().join("templates"),
        WatchOptions::default(),
        stop.clone(),
    )
    .await;
    let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let links = Arc::new(LinkSigner::new(
        &"k".to_owned().into(),
        &format!("http://{addr}"),
    ));
    let state = AppState {
        store: store.clone(),
        clock: clock.clone(),
        started_at: clock.now(),
        campaigns,
        links: links.clone(),
        token: token.map(|t| t.to_owned().into()),
    };
    tokio::spawn(http::serve(listener, state, stop.clone()));
    Server {
        base: format!("http://{addr}"),
        links,
        stop,
    }
}

async fn the_unsubscribe_link_confirms_then_opts_out_once(store: SharedStore) {
    let mut c = customer("C0001", "SH-001", Some("03-10"));
    c.email_opt_in = outreach::domain::Consent::Yes;
    seed(&store, &[c]).await;
    let tpl = templates();
    run_at(
        &store,
        &campaign(BIRTHDAY, &tpl),
        &tpl,
        "2026-03-10T10:00:00+08:00",
        None,
    )
    .await;
    let server = serve(&store, None).await;
    let url = server.links.url(Channel::Email, "c0001@example.com");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Looking at the page changes nothing.
    let page = client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("<form method=\"post\">"), "{body}");
    assert!(
        !store
            .is_opted_out(Channel::Email, "c0001@example.com")
            .await
            .unwrap()
    );
    // The one-click POST, as a mail client sends it.
    for _ in 0..2 {
        let done = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
        assert!(done.headers().get("set-cookie").is_none());
        assert!(done.headers().get("location").is_none());
        assert!(done.text().await.unwrap().contains("已退订"));
    }
    assert!(
        store
            .is_opted_out(Channel::Email, "c0001@example.com")
            .await
            .unwrap()
    );
    let m = store.messages_for(Some("bday"), None).await.unwrap();
    assert_eq!(
        (m[0].status.as_str(), m[0].reason.as_deref()),
        ("suppressed", Some("opted_out"))
    );
    // A forged or altered token is refused.
    let mut forged = url.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let no = client.post(&forged).send().await.unwrap();
    assert_eq!(no.status(), 404);
    let other = url.replace("/u/", "/u/x");
    assert_eq!(client.get(&other).send().await.unwrap().status(), 404);
    server.stop.cancel();
}

async fn the_api_records_opt_outs_behind_its_token(store: SharedStore) {
    seed(&store, &[customer("C0001", "SH-001", None)]).await;
    let server = serve(&store, Some("s3cret")).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/optouts", server.base);
    let body = serde_json::json!({"channel": "sms", "address": "138 0013 8000"});
    let denied = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let wrong = client
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = client
        .post(&url)
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let v: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(v["recorded"], true);
    assert!(
        store
            .is_opted_out(Channel::Sms, "+8613800138000")
            .await
            .unwrap()
    );
    let bad = client
        .post(&url)
        .bearer_auth("s3cret")
        .json(&serde_json::json!({"channel": "sms", "address": "12345"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let v: serde_json::Value = bad.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().starts_with("address:"), "{v}");
    let fax = client
        .post(&url)
        .bearer_auth("s3cret")
        .json(&serde_json::json!({"channel": "fax", "address": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fax.status(), 422);
    server.stop.cancel();
}

store_contract!(
    the_unsubscribe_link_confirms_then_opts_out_once,
    the_api_records_opt_outs_behind_its_token,
);
