//! The public HTTP endpoints: the signed one-click unsubscribe link (RFC
//! 8058), `POST /api/optouts`, and providers' receipt and reply pushes. Each test runs on SQLite, and on PostgreSQL when
//! OUTREACH_TEST_DATABASE_URL is set.

mod common;
#[path = "common/shop.rs"]
mod shop;

use std::sync::Arc;

use outreach::campaigns::outbox::MessageStatus;
use outreach::campaigns::watch::{self, WatchOptions};
use outreach::clock::{FixedClock, SharedClock};
use outreach::dispatch::claim::{Claim, Settlement};
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
        hooks: Arc::new(http::HookSecrets {
            path_token: Some("hooks-token-0123456789".to_owned().into()),
            wechat_token: Some("restaurant_token_2024".to_owned().into()),
            twilio_auth_token: Some("12345".to_owned().into()),
            public_url: format!("http://{addr}"),
        }),
        scheduler: None,
        default_tz: chrono_tz::Asia::Shanghai,
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

/// Plans `n` birthday SMS and marks them sent by `provider` with ids `P{id}`.
async fn sent_by(store: &SharedStore, provider: &str, n: usize) -> Vec<i64> {
    let customers: Vec<_> = (1..=n)
        .map(|i| customer(&format!("C{i:04}"), "SH-001", Some("03-10")))
        .collect();
    seed(store, &customers).await;
    let tpl = templates();
    let sms = BIRTHDAY.replace("[email]", "[sms]");
    run_at(
        store,
        &campaign(&sms, &tpl),
        &tpl,
        "2026-03-10T10:00:00+08:00",
        None,
    )
    .await;
    let claimed = store
        .claim_messages(&Claim {
            now: t("2026-03-10T10:01:00+08:00"),
            lease_until: t("2026-03-10T10:03:00+08:00"),
            limit: 100,
            token: "w".into(),
        })
        .await
        .unwrap();
    let settled: Vec<Settlement> = claimed
        .iter()
        .map(|m| Settlement {
            message_id: m.id,
            token: "w".into(),
            at: t("2026-03-10T10:01:01+08:00"),
            status: MessageStatus::Sent,
            reason: None,
            detail: None,
            provider: Some(provider.into()),
            provider_message_id: Some(format!("P{}", m.id)),
            next_attempt_at: None,
            attempts: 1,
            attempt: None,
            suppress: None,
        })
        .collect();
    store.settle_messages(&settled).await.unwrap();
    claimed.iter().map(|m| m.id).collect()
}

async fn status(store: &SharedStore, id: i64) -> (String, Option<String>) {
    let m = store.message_detail(id).await.unwrap().unwrap();
    (m.status, m.reason)
}

async fn aliyun_and_tencent_pushes_need_the_path_token(store: SharedStore) {
    let ids = sent_by(&store, "aliyun", 2).await;
    let server = serve(&store, None).await;
    let client = reqwest::Client::new();
    let url = |token: &str, what: &str| format!("{}/hooks/{token}/{what}", server.base);
    let receipt = format!(
        r#"[{{"phone_number":"13800130001","send_time":"2026-03-10 10:01:01","report_time":"2026-03-10 10:01:09","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"P{}","out_id":"{}"}},
            {{"phone_number":"13800130002","send_time":"2026-03-10 10:01:01","report_time":"2026-03-10 10:01:09","success":false,"err_code":"MK:0001","err_msg":"空号","sms_size":"1","biz_id":"P{}","out_id":"{}"}}]"#,
        ids[0], ids[0], ids[1], ids[1]
    );
    let wrong = client
        .post(url("not-the-token-000000", "aliyun/receipts"))
        .body(receipt.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    assert_eq!(status(&store, ids[0]).await.0, "sent");
    let ok = client
        .post(url("hooks-token-0123456789", "aliyun/receipts"))
        .header("content-type", "application/json")
        .body(receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let v: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(v["code"], 0);
    assert_eq!(status(&store, ids[0]).await, ("delivered".into(), None));
    assert_eq!(
        status(&store, ids[1]).await,
        ("failed".into(), Some("MK:0001".into()))
    );
    let broken = client
        .post(url("hooks-token-0123456789", "aliyun/receipts"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    // A reply of 退订 opts the number out.
    let reply = r#"[{"phone_number":"13800130002","send_time":"2026-03-10 10:05:00","content":"退订","sign_name":"老街豆浆","dest_code":"1","sequence_id":1}]"#;
    let ok = client
        .post(url("hooks-token-0123456789", "aliyun/replies"))
        .body(reply)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        store
            .is_opted_out(Channel::Sms, "+8613800130002")
            .await
            .unwrap()
    );
    // Tencent: receipts by serial number, replies by mobile.
    let tencent = r#"[{"user_receive_time":"2026-03-10 10:01:09","nationcode":"86","mobile":"13800130001","report_status":"SUCCESS","errmsg":"DELIVRD","description":"用户短信送达成功","sid":"nobody"}]"#;
    let ok = client
        .post(url("hooks-token-0123456789", "tencent/receipts"))
        .body(tencent)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let v: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(v["result"], 0);
    let reply = r#"[{"extend":"","mobile":"13800130001","nationcode":"86","sign":"老街豆浆","text":"R","time":1773108300}]"#;
    let ok = client
        .post(url("hooks-token-0123456789", "tencent/replies"))
        .body(reply)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        store
            .is_opted_out(Channel::Sms, "+8613800130001")
            .await
            .unwrap()
    );
    server.stop.cancel();
}

async fn wechat_and_twilio_pushes_must_be_signed(store: SharedStore) {
    let ids = sent_by(&store, "wechat", 1).await;
    let server = serve(&store, None).await;
    let client = reqwest::Client::new();
    // W1: token restaurant_token_2024, timestamp 1700000000, nonce 381957214.
    let signed =
        "timestamp=1700000000&nonce=381957214&signature=996568223385962b46e1faced3d4dafbca95fe80";
    let check = client
        .get(format!(
            "{}/hooks/wechat?{signed}&echostr=hello",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    assert_eq!(check.text().await.unwrap(), "hello");
    let event = format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oX]]></FromUserName>         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>         <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>P{}</MsgID><Status><![CDATA[success]]></Status></xml>",
        ids[0]
    );
    let forged = client
        .post(format!(
            "{}/hooks/wechat?timestamp=1700000000&nonce=381957214&signature=00",
            server.base
        ))
        .body(event.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(status(&store, ids[0]).await.0, "sent");
    let ok = client
        .post(format!("{}/hooks/wechat?{signed}", server.base))
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(status(&store, ids[0]).await.0, "delivered");
    // Twilio: an inbound STOP, signed with the auth token over the full URL.
    let url = format!("{}/hooks/twilio/inbound", server.base);
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC1"),
        ("Body", "STOP"),
        ("From", "+8613800130001"),
        ("MessageSid", "SM1"),
        ("To", "+15005550006"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = outreach::dispatch::sign::twilio::signature("12345", &url, &params);
    let form: String = params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    let bad = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "AAAA")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    assert!(
        !store
            .is_opted_out(Channel::Sms, "+8613800130001")
            .await
            .unwrap()
    );
    let ok = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        store
            .is_opted_out(Channel::Sms, "+8613800130001")
            .await
            .unwrap()
    );
    server.stop.cancel();
}

store_contract!(
    aliyun_and_tencent_pushes_need_the_path_token,
    wechat_and_twilio_pushes_must_be_signed,
    the_unsubscribe_link_confirms_then_opts_out_once,
    the_api_records_opt_outs_behind_its_token,
);
