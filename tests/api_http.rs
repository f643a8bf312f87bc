//! The JSON API for ops, against an in-process server: the send log
//! (filters, paging, masking), one message, audited retries, the campaigns
//! in force with their figures and file errors, and customers and orders
//! posted like import rows; all behind the bearer token. Each test runs on
//! SQLite, and on PostgreSQL when OUTREACH_TEST_DATABASE_URL is set.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use outreach::campaigns::outbox::MessageStatus;
use outreach::campaigns::watch::{self, WatchOptions};
use outreach::clock::{FixedClock, SharedClock};
use outreach::domain::{Consent, Customer, CustomerId, Phone, StoreCode, StoreInfo, Tags};
use outreach::http::{self, AppState};
use outreach::store::Channel;
use outreach::unsubscribe::LinkSigner;
use raw::{Msg, Raw};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use common::TestStore;

const TOKEN: &str = "ops-token-0123456789";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    t("2026-11-24T12:00:00+08:00")
}

struct Server {
    base: String,
    client: reqwest::Client,
    token: Option<&'static str>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn post(
        &self,
        path: &str,
        body: Option<&Value>,
        actor: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(self.url(path));
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(a) = actor {
            req = req.header("X-Outreach-Actor", a);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The API on a free port, with the repository's win-back campaign and its
/// templates in force, plus one broken campaign file.
async fn serve(db: &TestStore, token: Option<&'static str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    std::fs::copy(
        root.join("campaigns/winback.yaml"),
        dir.path().join("campaigns/winback.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("campaigns/broken.yaml"),
        "schedule: \"0 10 * *\"\ntrigger: { type: birthday }\ncoupon: { kind: amount_off, value: 5 }\n\
         channels: [sms]\ntemplate: birthday\n",
    )
    .unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for entry in std::fs::read_dir(root.join("templates")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, templates.join(p.file_name().unwrap())).unwrap();
    }
    let clock: SharedClock = Arc::new(FixedClock(now()));
    let stop = CancellationToken::new();
    let (campaigns, _watcher) = watch::start(
        db.store.clone(),
        dir.path().join("campaigns"),
        templates,
        WatchOptions::default(),
        stop.clone(),
    )
    .await;
    let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState {
        store: db.store.clone(),
        clock: clock.clone(),
        started_at: clock.now(),
        campaigns,
        links: Arc::new(LinkSigner::new(
            &"k".to_owned().into(),
            &format!("http://{addr}"),
        )),
        token: token.map(|t| t.to_owned().into()),
        hooks: Arc::new(http::HookSecrets::default()),
        default_tz: chrono_tz::Asia::Shanghai,
        scheduler: None,
    };
    tokio::spawn(http::serve(listener, state, stop.clone()));
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        token,
        stop,
        _dir: dir,
    }
}

fn stores() -> Vec<StoreInfo> {
    vec![StoreInfo {
        code: StoreCode::parse("SH-001").unwrap(),
        name: "人民广场店".into(),
        sms_signature: "早安包子铺".into(),
        timezone: chrono_tz::Asia::Shanghai,
    }]
}

fn customer(id: &str, phone: &str) -> Customer {
    Customer {
        id: CustomerId::parse(id).unwrap(),
        name: Some("王小明".into()),
        phone: Some(Phone::parse(phone).unwrap()),
        email: None,
        wechat_openid: None,
        birthday: None,
        store: Some(StoreCode::parse("SH-001").unwrap()),
        tags: Tags::default(),
        sms_opt_in: Consent::Yes,
        email_opt_in: Consent::Unknown,
        wechat_opt_in: Consent::Unknown,
        joined_at: None,
    }
}

async fn seed_customers(db: &TestStore) {
    let at = t("2026-01-01T00:00:00Z");
    db.store.upsert_stores(&stores(), at).await.unwrap();
    db.store
        .upsert_customers(
            &[
                customer("C1", "13800138000"),
                customer("C2", "13800138001"),
                customer("C3", "13800138002"),
            ],
            at,
        )
        .await
        .unwrap();
}

/// Ten win-back messages (three dead, one with a coupon), and five birthday ones.
async fn seed_log(db: &TestStore) -> Vec<i64> {
    seed_customers(db).await;
    let mut raw = Raw::open(db).await;
    let mut ids = Vec::new();
    let base = now() - Duration::hours(30);
    for i in 0..15usize {
        let campaign = if i < 10 { "winback" } else { "birthday" };
        let mut m = Msg::new(
            campaign,
            ["C1", "C2", "C3"][i % 3],
            base + Duration::hours(i as i64 * 2),
        );
        if i % 4 == 1 {
            m.status = MessageStatus::Dead;
            m.reason = Some("isp.SYSTEM_ERROR");
            m.sent_at = None;
            m.attempts = 8;
        }
        if i == 12 {
            m.channel = Some(Channel::Email);
            m.address = Some("xiaoming@163.com".into());
        }
        let id = raw.insert(i, &m).await;
        if i == 1 {
            raw.coupon(
                id,
                &m,
                "BACK-RETRY01",
                now() + Duration::days(5),
                false,
                None,
            )
            .await;
            raw.attempt(id, 1, m.created_at).await;
        }
        ids.push(id);
    }
    ids
}

async fn every_endpoint_needs_the_token_when_one_is_set(db: &TestStore) {
    seed_customers(db).await;
    let server = serve(db, Some(TOKEN)).await;
    let anonymous = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/api/messages"),
        ("GET", "/api/messages/1"),
        ("POST", "/api/messages/1/retry"),
        ("GET", "/api/campaigns"),
        ("POST", "/api/customers"),
        ("POST", "/api/orders"),
    ] {
        for token in [None, Some("wrong-token")] {
            let mut req = match method {
                "GET" => anonymous.get(server.url(path)),
                _ => anonymous.post(server.url(path)).json(&json!({})),
            };
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            let body: Value = res.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("bearer token"));
        }
    }
    let (status, _) = server.get("/api/messages").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.get("/api/campaigns").await;
    assert_eq!(status, StatusCode::OK);
}

async fn the_send_log_is_filtered_paged_and_masked(db: &TestStore) {
    let ids = seed_log(db).await;
    let server = serve(db, None).await;
    let (status, body) = server.get("/api/messages").await;
    assert_eq!(status, StatusCode::OK);
    let rows = body["messages"].as_array().unwrap();
    assert_eq!(rows.len(), 15);
    assert_eq!(body["next"], Value::Null);
    let got: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first);
    assert!(rows.iter().all(|r| {
        let a = r["address"].as_str().unwrap();
        a == "+86138****8000" || a == "x***@163.com"
    }));
    let (_, body) = server.get("/api/messages?reveal=true&channel=email").await;
    assert_eq!(body["messages"][0]["address"], "xiaoming@163.com");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);

    let (_, body) = server
        .get("/api/messages?status=dead&campaign=winback")
        .await;
    let dead: Vec<i64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(dead, vec![ids[9], ids[5], ids[1]]);
    assert!(body["messages"][0]["reason"] == "isp.SYSTEM_ERROR");
    let (_, body) = server
        .get("/api/messages?customer=C2&campaign=birthday")
        .await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    let (_, body) = server.get("/api/messages?since=5h").await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 2, "{body}");
    let since = (now() - Duration::hours(5))
        .to_rfc3339()
        .replace('+', "%2B");
    let (_, same) = server.get(&format!("/api/messages?since={since}")).await;
    assert_eq!(same, body);
    let (_, body) = server.get("/api/messages?until=24h").await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 3, "{body}");
    // Empty values are left out (an empty field of a form).
    let (status, body) = server.get("/api/messages?campaign=&status=&limit=").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["messages"].as_array().unwrap().len(), 15);

    // Pages of 4 follow the cursor to the end, each row once.
    let mut seen = Vec::new();
    let mut path = "/api/messages?limit=4".to_owned();
    loop {
        let (status, body) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(
            body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match body["next"].as_str() {
            Some(c) => path = format!("/api/messages?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);

    for (query, parameter) in [
        (
            "status=lost",
            "status: unknown status \"lost\" (expected one of queued",
        ),
        ("channel=fax", "channel: unknown channel"),
        (
            "since=yesterday",
            "since: \"yesterday\" is neither a duration",
        ),
        ("until=3x", "until: "),
        (
            "limit=0",
            "limit: \"0\" is not a whole number from 1 to 1000",
        ),
        ("limit=5000", "limit: "),
        ("cursor=abc", "cursor: \"abc\" is not a send-log cursor"),
        ("reveal=maybe", "reveal: \"maybe\" is not true or false"),
        ("customer=a%20b", "customer: "),
        ("campaign=Win%20Back", "campaign: campaign id"),
        ("statuz=dead", "unknown parameter \"statuz\""),
        ("status=dead&status=sent", "status: given more than once"),
    ] {
        let (status, body) = server.get(&format!("/api/messages?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let e = body["error"].as_str().unwrap();
        assert!(e.contains(parameter), "{query}: {e}");
    }
}

async fn one_message_and_its_audited_retry(db: &TestStore) {
    let ids = seed_log(db).await;
    let server = serve(db, Some(TOKEN)).await;
    let dead = ids[1];
    let (status, m) = server.get(&format!("/api/messages/{dead}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["status"], "dead");
    assert_eq!(m["address"], "+86138****8000");
    assert_eq!(m["history"].as_array().unwrap().len(), 1);
    assert_eq!(m["retries"], json!([]));
    let (_, m) = server.get(&format!("/api/messages/{dead}?reveal=1")).await;
    assert_eq!(m["address"], "+8613800138000");
    let (status, body) = server.get("/api/messages/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no message has id 999999");
    let (status, body) = server.get("/api/messages/abc").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().starts_with("id: \"abc\""));

    let (status, body) = server
        .post(
            &format!("/api/messages/{dead}/retry"),
            None,
            Some("ops:li.lei"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "retried");
    assert_eq!(body["previous_status"], "dead");
    assert_eq!(body["actor"], "ops:li.lei");
    let (_, m) = server.get(&format!("/api/messages/{dead}")).await;
    assert_eq!(m["status"], "queued");
    assert_eq!(m["retries"][0]["actor"], "ops:li.lei");
    assert_eq!(m["retries"][0]["previous_reason"], "isp.SYSTEM_ERROR");
    // Again: it is queued now.
    let (status, body) = server
        .post(&format!("/api/messages/{dead}/retry"), None, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["outcome"], "not_retryable");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only failed and dead")
    );
    // The default actor is "api".
    let (status, _) = server
        .post(&format!("/api/messages/{}/retry", ids[5]), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, m) = server.get(&format!("/api/messages/{}", ids[5])).await;
    assert_eq!(m["retries"][0]["actor"], "api");
    let (status, _) = server
        .post(&format!("/api/messages/{}/retry", ids[0]), None, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a sent message");
    let (status, body) = server.post("/api/messages/999999/retry", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["outcome"], "not_found");
    let (status, body) = server
        .post(
            &format!("/api/messages/{}/retry", ids[9]),
            None,
            Some("a b"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("X-Outreach-Actor: ")
    );
    let (_, m) = server.get(&format!("/api/messages/{}", ids[9])).await;
    assert_eq!(m["status"], "dead", "a refused request changes nothing");
}

async fn campaigns_in_force_with_figures_and_file_errors(db: &TestStore) {
    seed_log(db).await;
    let server = serve(db, None).await;
    let (status, body) = server.get("/api/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    let campaigns = body["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1, "{body}");
    let w = &campaigns[0];
    assert_eq!(w["id"], "winback");
    assert_eq!(w["trigger"], "lapsed");
    assert!(
        w["file"]
            .as_str()
            .unwrap()
            .ends_with("campaigns/winback.yaml")
    );
    assert!(w["schedule"].is_string() && w["channels"].is_array());
    assert_eq!(w["stale"], false);
    let s = &w["stats"];
    assert_eq!(s["messages"], 10);
    assert_eq!(s["failed"], 3);
    assert_eq!(s["sent"], 7);
    assert_eq!(s["by_status"]["dead"], 3);
    assert_eq!(s["coupons_issued"], 1);
    assert_eq!(s["coupons_redeemed"], 0);
    assert_eq!(s["revenue"], "0.00");
    // The birthday messages' campaign has no file here.
    assert_eq!(body["not_in_force"][0]["id"], "birthday");
    assert_eq!(body["not_in_force"][0]["stats"]["messages"], 5);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["file"].as_str().unwrap().ends_with("broken.yaml"));
    assert_eq!(errors[0]["line"], 1);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("4 field(s)")
    );
}

async fn customers_and_orders_are_checked_like_import_rows(db: &TestStore) {
    seed_log(db).await;
    let server = serve(db, Some(TOKEN)).await;
    // One object.
    let (status, body) = server
        .post(
            "/api/customers",
            Some(&json!({"id": "C9", "name": "李雷", "phone": "139 0013 9000", "store": "SH-001",
                         "tags": ["student"], "sms_opt_in": true, "joined_at": "2026-11-01 09:00:00"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["inserted"].as_u64()),
        (Some(1), Some(1))
    );
    let c = db
        .store
        .customer(&CustomerId::parse("C9").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.phone.unwrap().as_str(), "+8613900139000");
    assert_eq!(c.joined_at, Some(t("2026-11-01T09:00:00+08:00")));
    // Some good, some bad: the good ones are stored.
    let (status, body) = server
        .post(
            "/api/customers",
            Some(&json!([
                {"id": "C10", "phone": "13700137000"},
                {"id": "C11", "phone": "12345"},
                {"id": "C12", "birthday": "13-45"},
                {"id": "C13", "birthdy": "03-08"},
                {"id": "C10", "phone": "13700137001"},
                "not an object",
            ])),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["superseded"], 1);
    let errors = body["errors"].as_array().unwrap();
    let at: Vec<(u64, Value)> = errors
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].clone()))
        .collect();
    assert_eq!(
        at,
        vec![
            (1, json!("phone")),
            (2, json!("birthday")),
            (3, Value::Null),
            (5, Value::Null)
        ]
    );
    assert!(
        errors[2]["reason"]
            .as_str()
            .unwrap()
            .contains("did you mean \"birthday\"")
    );
    let c10 = db
        .store
        .customer(&CustomerId::parse("C10").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c10.phone.unwrap().as_str(),
        "+8613700137001",
        "the later item wins"
    );
    // None good.
    let (status, body) = server
        .post("/api/customers", Some(&json!([{"name": "no id"}])), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "id");
    for bad in [json!([]), json!(42), json!("x")] {
        let (status, body) = server.post("/api/customers", Some(&bad), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(body["error"].is_string());
    }
    let res = server
        .client
        .post(server.url("/api/orders"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("the body: "),
        "{body}"
    );

    // Orders: an unknown customer is refused; a coupon code is redeemed.
    let (status, body) = server
        .post(
            "/api/orders",
            Some(&json!([
                {"id": "O1", "customer_id": "C2", "store": "SH-001", "amount": "38.50",
                 "ordered_at": "2026-11-24 08:00:00", "coupon_code": "BACK-RETRY01"},
                {"id": "O2", "customer_id": "NOBODY", "store": "SH-001", "amount": 12,
                 "ordered_at": "2026-11-24T08:00:00+08:00"},
                {"id": "O3", "customer_id": "C1", "store": "XX-404", "amount": 12,
                 "ordered_at": "2026-11-24T08:00:00+08:00"},
                {"id": "O4", "customer_id": "C1", "store": "SH-001", "amount": "1.234",
                 "ordered_at": "2026-11-24T08:00:00+08:00"},
                {"id": "O5", "customer_id": "C3", "store": "SH-001", "amount": 9,
                 "ordered_at": "2026-11-24T08:00:00+08:00", "coupon_code": "BACK-RETRY01"},
            ])),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["accepted"], 2);
    let at: Vec<(u64, Value)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].clone()))
        .collect();
    assert_eq!(
        at,
        vec![
            (1, json!("customer_id")),
            (2, json!("store")),
            (3, json!("amount"))
        ]
    );
    assert_eq!(body["coupons"]["redeemed"], 1, "{body}");
    assert_eq!(
        body["coupon_refusals"][0]["index"], 4,
        "another customer's coupon"
    );
    let coupons = db.store.coupons_for("winback").await.unwrap();
    assert_eq!(coupons[0].redeemed_order_id.as_deref(), Some("O1"));
    // Re-posting the same order changes nothing and is still accepted.
    let (status, body) = server
        .post(
            "/api/orders",
            Some(
                &json!({"id": "O1", "customer_id": "C2", "store": "SH-001", "amount": "38.50",
                         "ordered_at": "2026-11-24 08:00:00", "coupon_code": "BACK-RETRY01"}),
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["unchanged"].as_u64(),
            body["coupons"]["already_held"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

/// One `sqlite` and one `postgres` test per listed async fn taking a `&TestStore`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::sqlite().await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::postgres().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

both_backends!(
    every_endpoint_needs_the_token_when_one_is_set,
    the_send_log_is_filtered_paged_and_masked,
    one_message_and_its_audited_retry,
    campaigns_in_force_with_figures_and_file_errors,
    customers_and_orders_are_checked_like_import_rows,
);
