//! The WeChat provider against a mocked API: token caching and renewal,
//! request bodies, and the classification of answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use outreach::clock::{ManualClock, SharedClock};
use outreach::dispatch::providers::wechat::{WechatClient, client_msg_id};
use outreach::dispatch::settings::WechatSettings;
use outreach::dispatch::{FailureClass, Outgoing, Provider, RateWait};
use outreach::templates::{Rendered, WechatKind};

const TOKEN_PATH: &str = "/cgi-bin/stable_token";
const TEMPLATE_PATH: &str = "/cgi-bin/message/template/send";
const SUBSCRIBE_PATH: &str = "/cgi-bin/message/subscribe/send";
const OPENID: &str = "oia2TjuEGTNoeX76QEjQNrcURxG8";
const SECRET: &str = "app-secret-do-not-leak";

fn settings(server: &MockServer) -> WechatSettings {
    WechatSettings {
        app_id: "wx1234567890abcdef".to_owned(),
        app_secret: SecretString::from(SECRET),
        base_url: Some(server.uri()),
        callback_token: None,
        mini_program_app_id: Some("wxminiprogram0001".to_owned()),
        mini_program_state: Some("trial".to_owned()),
        concurrency: None,
        rate_per_second: None,
        timeout_ms: Some(1_000),
    }
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap(),
    ))
}

fn client(server: &MockServer, clock: Arc<ManualClock>) -> WechatClient {
    let clock: SharedClock = clock;
    WechatClient::new(&settings(server), clock).unwrap()
}

fn message(kind: WechatKind) -> Outgoing {
    let data = BTreeMap::from([
        ("thing1".to_owned(), "老王川菜馆".to_owned()),
        ("time2".to_owned(), "2026年3月8日 18:00".to_owned()),
    ]);
    Outgoing {
        message_id: 9,
        dedupe_key: "reservation/2026-03-08/customer-42/wechat".to_owned(),
        address: OPENID.to_owned(),
        sign_name: None,
        store_name: Some("老王川菜馆".to_owned()),
        unsubscribe_url: None,
        rendered: Rendered::Wechat {
            kind,
            template_id: "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY".to_owned(),
            page: Some("pages/booking/detail?id=42".to_owned()),
            url: match kind {
                WechatKind::Template => Some("https://m.example.cn/booking/42".to_owned()),
                WechatKind::Subscribe => None,
            },
            data,
        },
        attempt: 1,
    }
}

fn token_reply(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"access_token": token, "expires_in": 7200}))
}

fn ok_reply() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"errcode": 0, "errmsg": "ok", "msgid": 200228332}))
}

fn err_reply(code: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"errcode": code, "errmsg": "error"}))
}

async fn mount_token(server: &MockServer, token: &str) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_reply(token))
        .mount(server)
        .await;
}

async fn hits(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn json_body(r: &wiremock::Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn the_token_is_fetched_once_and_shared() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({
            "grant_type": "client_credential",
            "appid": "wx1234567890abcdef",
            "secret": SECRET,
            "force_refresh": false
        })))
        .respond_with(token_reply("TOKEN-A").set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .and(query_param("access_token", "TOKEN-A"))
        .respond_with(ok_reply())
        .expect(6)
        .mount(&server)
        .await;
    let wechat = client(&server, manual_clock());

    // Five at once while the token is being fetched, then one more.
    let msg = message(WechatKind::Template);
    let results = futures::future::join_all((0..5).map(|_| wechat.send(&msg))).await;
    for r in results {
        assert_eq!(r.unwrap().provider_message_id.as_deref(), Some("200228332"));
    }
    wechat.send(&msg).await.unwrap();

    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 1);
}

#[tokio::test]
async fn an_expiring_token_is_fetched_again() {
    let server = MockServer::start().await;
    mount_token(&server, "TOKEN-A").await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(ok_reply())
        .mount(&server)
        .await;
    let clock = manual_clock();
    let wechat = client(&server, clock.clone());
    let msg = message(WechatKind::Template);

    wechat.send(&msg).await.unwrap();
    clock.advance(chrono::Duration::hours(1));
    wechat.send(&msg).await.unwrap();
    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 1);

    // Within the last minute of its 7200 s, the token is renewed.
    clock.advance(chrono::Duration::seconds(3600 - 30));
    wechat.send(&msg).await.unwrap();
    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 2);
}

#[tokio::test]
async fn a_rejected_token_is_forced_fresh_and_the_send_retried_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({"force_refresh": false})))
        .respond_with(token_reply("TOKEN-OLD"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({"force_refresh": true})))
        .respond_with(token_reply("TOKEN-NEW"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .and(query_param("access_token", "TOKEN-OLD"))
        .respond_with(err_reply(40001))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .and(query_param("access_token", "TOKEN-NEW"))
        .respond_with(ok_reply())
        .expect(2)
        .mount(&server)
        .await;
    let wechat = client(&server, manual_clock());
    let msg = message(WechatKind::Template);

    let accepted = wechat.send(&msg).await.unwrap();
    assert_eq!(accepted.provider_message_id.as_deref(), Some("200228332"));
    // The retry carries the same client_msg_id, so WeChat cannot deliver twice.
    let sends = hits(&server, TEMPLATE_PATH).await;
    assert_eq!(
        json_body(&sends[0])["client_msg_id"],
        json_body(&sends[1])["client_msg_id"]
    );
    // The fresh token is kept.
    wechat.send(&msg).await.unwrap();
}

#[tokio::test]
async fn a_newer_token_held_by_the_platform_is_used_without_forcing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({"force_refresh": false})))
        .respond_with(token_reply("TOKEN-OLD"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({"force_refresh": false})))
        .respond_with(token_reply("TOKEN-NEW"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({"force_refresh": true})))
        .respond_with(token_reply("TOKEN-FORCED"))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .and(query_param("access_token", "TOKEN-OLD"))
        .respond_with(err_reply(42001))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .and(query_param("access_token", "TOKEN-NEW"))
        .respond_with(ok_reply())
        .mount(&server)
        .await;
    let wechat = client(&server, manual_clock());
    wechat.send(&message(WechatKind::Template)).await.unwrap();
}

#[tokio::test]
async fn a_token_rejected_twice_takes_the_provider_down() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({"force_refresh": false})))
        .respond_with(token_reply("TOKEN-OLD"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(json!({"force_refresh": true})))
        .respond_with(token_reply("TOKEN-NEW"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(err_reply(40001))
        .mount(&server)
        .await;
    let clock = manual_clock();
    let wechat = client(&server, clock.clone());
    let msg = message(WechatKind::Template);

    let e = wechat.send(&msg).await.unwrap_err();
    assert_eq!(e.class, FailureClass::ProviderDown);
    assert_eq!(e.code, "40001");
    assert_eq!(
        hits(&server, TEMPLATE_PATH).await.len(),
        2,
        "exactly one retry"
    );

    // 10 s later: no second forced refresh within WeChat's 30 s spacing.
    clock.advance(chrono::Duration::seconds(10));
    let e = wechat.send(&msg).await.unwrap_err();
    assert_eq!(e.class, FailureClass::ProviderDown);
}

#[tokio::test]
async fn template_message_body() {
    let server = MockServer::start().await;
    mount_token(&server, "TOKEN-A").await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(ok_reply())
        .mount(&server)
        .await;
    let wechat = client(&server, manual_clock());
    let msg = message(WechatKind::Template);
    wechat.send(&msg).await.unwrap();

    let body = json_body(&hits(&server, TEMPLATE_PATH).await[0]);
    let id = client_msg_id(&msg.dedupe_key);
    assert_eq!(id.len(), 32);
    assert_eq!(
        body,
        json!({
            "touser": OPENID,
            "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
            "url": "https://m.example.cn/booking/42",
            "miniprogram": {"appid": "wxminiprogram0001", "pagepath": "pages/booking/detail?id=42"},
            "client_msg_id": id,
            "data": {
                "thing1": {"value": "老王川菜馆"},
                "time2": {"value": "2026年3月8日 18:00"}
            }
        })
    );
}

#[tokio::test]
async fn template_message_without_mini_program() {
    let server = MockServer::start().await;
    mount_token(&server, "TOKEN-A").await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(ok_reply())
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.mini_program_app_id = None;
    let wechat = WechatClient::new(&s, manual_clock()).unwrap();
    wechat.send(&message(WechatKind::Template)).await.unwrap();
    let body = json_body(&hits(&server, TEMPLATE_PATH).await[0]);
    assert!(body.get("miniprogram").is_none());
    assert_eq!(body["url"], "https://m.example.cn/booking/42");
}

#[tokio::test]
async fn subscribe_message_body() {
    let server = MockServer::start().await;
    mount_token(&server, "TOKEN-A").await;
    Mock::given(method("POST"))
        .and(path(SUBSCRIBE_PATH))
        .and(query_param("access_token", "TOKEN-A"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
        )
        .mount(&server)
        .await;
    let wechat = client(&server, manual_clock());
    let accepted = wechat.send(&message(WechatKind::Subscribe)).await.unwrap();
    assert_eq!(accepted.provider_message_id, None);

    let body = json_body(&hits(&server, SUBSCRIBE_PATH).await[0]);
    assert_eq!(
        body,
        json!({
            "touser": OPENID,
            "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
            "page": "pages/booking/detail?id=42",
            "miniprogram_state": "trial",
            "lang": "zh_CN",
            "data": {
                "thing1": {"value": "老王川菜馆"},
                "time2": {"value": "2026年3月8日 18:00"}
            }
        })
    );
}

async fn class_of(reply: ResponseTemplate) -> (FailureClass, String) {
    let server = MockServer::start().await;
    mount_token(&server, "TOKEN-A").await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(reply)
        .mount(&server)
        .await;
    let e = client(&server, manual_clock())
        .send(&message(WechatKind::Template))
        .await
        .unwrap_err();
    (e.class, e.code)
}

#[tokio::test]
async fn not_following_is_permanent_with_suppression() {
    assert_eq!(
        class_of(err_reply(43004)).await,
        (
            FailureClass::Permanent {
                suppress_address: true
            },
            "43004".to_owned()
        )
    );
}

#[tokio::test]
async fn invalid_openid_is_permanent_without_suppression() {
    assert_eq!(
        class_of(err_reply(40003)).await.0,
        FailureClass::Permanent {
            suppress_address: false
        }
    );
}

#[tokio::test]
async fn daily_quota_waits_for_the_next_day() {
    assert_eq!(
        class_of(err_reply(45009)).await,
        (
            FailureClass::RateLimited(RateWait::NextDay),
            "45009".to_owned()
        )
    );
}

#[tokio::test]
async fn system_busy_is_transient() {
    assert_eq!(
        class_of(err_reply(-1)).await,
        (
            FailureClass::Transient {
                outcome_unknown: false
            },
            "-1".to_owned()
        )
    );
}

#[tokio::test]
async fn an_unreadable_answer_is_an_unknown_outcome() {
    assert_eq!(
        class_of(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
            .await
            .0,
        FailureClass::Transient {
            outcome_unknown: true
        }
    );
}

#[tokio::test]
async fn http_429_waits_as_told() {
    assert_eq!(
        class_of(ResponseTemplate::new(429).insert_header("retry-after", "7"))
            .await
            .0,
        FailureClass::RateLimited(RateWait::For(Duration::from_secs(7)))
    );
}

#[tokio::test]
async fn a_503_storm_then_success() {
    let server = MockServer::start().await;
    mount_token(&server, "TOKEN-A").await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(ok_reply())
        .mount(&server)
        .await;
    let wechat = client(&server, manual_clock());
    let msg = message(WechatKind::Template);
    for _ in 0..3 {
        let e = wechat.send(&msg).await.unwrap_err();
        assert_eq!(
            e.class,
            FailureClass::Transient {
                outcome_unknown: false
            }
        );
        assert_eq!(e.code, "http 503");
    }
    wechat.send(&msg).await.unwrap();
    assert_eq!(hits(&server, TOKEN_PATH).await.len(), 1);
}

#[tokio::test]
async fn a_slow_answer_is_an_unknown_outcome_and_the_token_stays_secret() {
    let server = MockServer::start().await;
    mount_token(&server, "TOKEN-SECRET-VALUE").await;
    Mock::given(method("POST"))
        .and(path(TEMPLATE_PATH))
        .respond_with(ok_reply().set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let wechat = client(&server, manual_clock());
    let e = wechat
        .send(&message(WechatKind::Template))
        .await
        .unwrap_err();
    assert_eq!(
        e.class,
        FailureClass::Transient {
            outcome_unknown: true
        }
    );
    assert_eq!(e.code, "timeout");
    assert!(!e.message.contains("TOKEN-SECRET-VALUE"));
    let debug = format!("{wechat:?}");
    assert!(!debug.contains("TOKEN-SECRET-VALUE") && !debug.contains(SECRET));
}

#[tokio::test]
async fn token_errors_take_the_provider_down() {
    for (code, class) in [
        (40013, FailureClass::ProviderDown),
        (40164, FailureClass::ProviderDown),
        (89503, FailureClass::ProviderDown),
        (
            -1,
            FailureClass::Transient {
                outcome_unknown: false,
            },
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(err_reply(code))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(TEMPLATE_PATH))
            .respond_with(ok_reply())
            .expect(0)
            .mount(&server)
            .await;
        let e = client(&server, manual_clock())
            .send(&message(WechatKind::Template))
            .await
            .unwrap_err();
        assert_eq!(e.class, class, "token errcode {code}");
        assert_eq!(e.code, code.to_string());
    }
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let server = MockServer::start().await;
    let mut s = settings(&server);
    s.mini_program_state = Some("production".to_owned());
    assert!(WechatClient::new(&s, manual_clock()).is_err());
    let mut s = settings(&server);
    s.base_url = Some("api.weixin.qq.com".to_owned());
    assert!(WechatClient::new(&s, manual_clock()).is_err());
}
