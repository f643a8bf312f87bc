//! The SMS provider clients (Aliyun, Tencent, Twilio) against wiremock:
//! what they send, that the signature can be recomputed from the request,
//! and how every kind of answer is classified.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use outreach::clock::{FixedClock, SharedClock};
use outreach::dispatch::providers::aliyun::AliyunSms;
use outreach::dispatch::providers::tencent::TencentSms;
use outreach::dispatch::providers::twilio::TwilioSms;
use outreach::dispatch::settings::{
    AliyunSettings, AliyunSignature, TencentSettings, TwilioSettings,
};
use outreach::dispatch::sign::{acs3, rpc, sha256_hex, tc3, twilio as twilio_sig};
use outreach::dispatch::{FailureClass, Outgoing, Provider, RateWait, SendError};
use outreach::templates::{AliyunSms as AliyunTpl, Rendered, SmsKind, TencentSms as TencentTpl};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const NOW: &str = "2024-03-01T08:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn clock_at(s: &str) -> SharedClock {
    Arc::new(FixedClock(at(s)))
}

fn sms(id: i64, phone: &str, code: &str, params: &[(&str, &str)]) -> Outgoing {
    Outgoing {
        message_id: id,
        dedupe_key: format!("test:{id}"),
        address: phone.to_owned(),
        sign_name: Some("小馆咖啡".to_owned()),
        store_name: None,
        unsubscribe_url: None,
        rendered: Rendered::Sms {
            kind: SmsKind::Marketing,
            text: "会员日八折，拒收请回复R".to_owned(),
            aliyun: Some(AliyunTpl {
                template_code: code.to_owned(),
                params: params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            }),
            tencent: Some(TencentTpl {
                template_id: code.to_owned(),
                params: params.iter().map(|(_, v)| (*v).to_owned()).collect(),
            }),
        },
        attempt: 1,
    }
}

fn one(id: i64) -> Outgoing {
    sms(
        id,
        "+8613800138000",
        "SMS_123456789",
        &[("name", "张三 *VIP~")],
    )
}

fn permanent(suppress_address: bool) -> FailureClass {
    FailureClass::Permanent { suppress_address }
}

fn transient(outcome_unknown: bool) -> FailureClass {
    FailureClass::Transient { outcome_unknown }
}

fn query_map(r: &Request) -> BTreeMap<String, String> {
    r.url.query_pairs().into_owned().collect()
}

fn form_map(body: &[u8]) -> BTreeMap<String, String> {
    form_pairs(body).into_iter().collect()
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    outreach::dispatch::providers::twilio::parse_form(body).unwrap()
}

fn header_str<'a>(r: &'a Request, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn assert_err(
    r: &Result<outreach::dispatch::Accepted, SendError>,
    class: FailureClass,
    code: &str,
) {
    match r {
        Err(e) => {
            assert_eq!(e.class, class, "{e:?}");
            assert_eq!(e.code, code, "{e:?}");
        }
        Ok(a) => panic!("expected {class:?} {code}, got {a:?}"),
    }
}

// ---------------------------------------------------------------- Aliyun

fn aliyun_settings(server: &MockServer) -> AliyunSettings {
    AliyunSettings {
        access_key_id: "testId".to_owned(),
        access_key_secret: SecretString::from("testSecret"),
        base_url: Some(server.uri()),
        batch: false,
        signature: AliyunSignature::Acs3,
        concurrency: None,
        rate_per_second: None,
        timeout_ms: Some(1_000),
    }
}

fn aliyun_ok(biz: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"Code":"OK","Message":"OK","BizId":biz,"RequestId":"F655A8D5"}))
}

fn aliyun_code(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"Code":code,"Message":"错误","RequestId":"F655A8D5"}))
}

/// Recompute the ACS3 `Authorization` from what the server received.
fn assert_acs3_signed(r: &Request) {
    let mut signed = BTreeMap::new();
    for (name, value) in &r.headers {
        let name = name.as_str().to_ascii_lowercase();
        if name == "host" || name.starts_with("x-acs-") || name == "content-type" {
            signed.insert(name, value.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(signed["x-acs-content-sha256"], sha256_hex(&r.body));
    let canonical = acs3::canonical_request("POST", &query_map(r), &signed, &sha256_hex(&r.body));
    let expected = acs3::authorization(
        "testId",
        &acs3::signed_header_names(&signed),
        &acs3::signature("testSecret", &canonical),
    );
    assert_eq!(header_str(r, "authorization"), expected);
}

#[tokio::test]
async fn aliyun_sendsms_is_signed_and_carries_the_message_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(aliyun_ok("900619746936498440^0"))
        .expect(1)
        .mount(&server)
        .await;
    let client = AliyunSms::new(&aliyun_settings(&server), clock_at(NOW)).unwrap();
    assert_eq!(client.name(), "aliyun");
    assert_eq!(client.max_batch(), 1);

    let accepted = client.send(&one(42)).await.unwrap();

    assert_eq!(
        accepted.provider_message_id.as_deref(),
        Some("900619746936498440^0")
    );
    let reqs = requests(&server).await;
    let r = &reqs[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/");
    let q = query_map(r);
    assert_eq!(q["PhoneNumbers"], "13800138000");
    assert_eq!(q["SignName"], "小馆咖啡");
    assert_eq!(q["TemplateCode"], "SMS_123456789");
    assert_eq!(q["TemplateParam"], r#"{"name":"张三 *VIP~"}"#);
    assert_eq!(q["OutId"], "42");
    assert!(r.body.is_empty());
    assert_eq!(header_str(r, "x-acs-action"), "SendSms");
    assert_eq!(header_str(r, "x-acs-version"), "2017-05-25");
    assert_eq!(header_str(r, "x-acs-date"), "2024-03-01T08:00:00Z");
    assert_eq!(header_str(r, "accept"), "application/json");
    // RFC 3986 in the query itself: %20 and %2A, `~` as is.
    assert!(r.url.query().unwrap().contains("%20%2AVIP~"), "{}", r.url);
    assert_acs3_signed(r);
}

#[tokio::test]
async fn aliyun_rpc_signature_is_a_real_code_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(aliyun_ok("1^0"))
        .mount(&server)
        .await;
    let mut settings = aliyun_settings(&server);
    settings.signature = AliyunSignature::Rpc;
    let client = AliyunSms::new(&settings, clock_at(NOW)).unwrap();

    client.send(&one(7)).await.unwrap();

    let reqs = requests(&server).await;
    let mut form = form_map(&reqs[0].body);
    assert_eq!(form["Action"], "SendSms");
    assert_eq!(form["OutId"], "7");
    assert_eq!(form["Timestamp"], "2024-03-01T08:00:00Z");
    assert_eq!(form["TemplateParam"], r#"{"name":"张三 *VIP~"}"#);
    let sig = form.remove("Signature").unwrap();
    assert_eq!(sig, rpc::signature("testSecret", "POST", &form));
}

#[tokio::test]
async fn aliyun_codes_are_classified() {
    let server = MockServer::start().await;
    let client = AliyunSms::new(&aliyun_settings(&server), clock_at(NOW)).unwrap();
    let cases: Vec<(ResponseTemplate, FailureClass, &str)> = vec![
        (
            aliyun_code("isv.MOBILE_NUMBER_ILLEGAL"),
            permanent(true),
            "isv.MOBILE_NUMBER_ILLEGAL",
        ),
        (
            aliyun_code("isv.BLACK_KEY_CONTROL_LIMIT"),
            permanent(false),
            "isv.BLACK_KEY_CONTROL_LIMIT",
        ),
        (
            aliyun_code("isv.TEMPLATE_MISSING_PARAMETERS"),
            permanent(false),
            "isv.TEMPLATE_MISSING_PARAMETERS",
        ),
        (
            aliyun_code("isv.BUSINESS_LIMIT_CONTROL"),
            FailureClass::RateLimited(RateWait::NextDay),
            "isv.BUSINESS_LIMIT_CONTROL",
        ),
        (
            aliyun_code("isv.DAY_LIMIT_CONTROL"),
            FailureClass::RateLimited(RateWait::NextDay),
            "isv.DAY_LIMIT_CONTROL",
        ),
        (
            aliyun_code("isv.MONTH_LIMIT_CONTROL"),
            FailureClass::ProviderDown,
            "isv.MONTH_LIMIT_CONTROL",
        ),
        (
            aliyun_code("isv.SMS_TEMPLATE_ILLEGAL"),
            FailureClass::ProviderDown,
            "isv.SMS_TEMPLATE_ILLEGAL",
        ),
        (
            aliyun_code("isv.AMOUNT_NOT_ENOUGH"),
            FailureClass::ProviderDown,
            "isv.AMOUNT_NOT_ENOUGH",
        ),
        (
            aliyun_code("isp.SYSTEM_ERROR"),
            transient(false),
            "isp.SYSTEM_ERROR",
        ),
        (
            ResponseTemplate::new(400)
                .insert_header("Retry-After", "7")
                .set_body_json(json!({"Code":"Throttling.User","Message":"Request was denied due to user flow control."})),
            FailureClass::RateLimited(RateWait::For(Duration::from_secs(7))),
            "Throttling.User",
        ),
        (
            ResponseTemplate::new(404)
                .set_body_json(json!({"Code":"InvalidAccessKeyId.NotFound","Message":"x"})),
            FailureClass::ProviderDown,
            "InvalidAccessKeyId.NotFound",
        ),
        (
            ResponseTemplate::new(400)
                .set_body_json(json!({"Code":"SignatureDoesNotMatch","Message":"x"})),
            FailureClass::ProviderDown,
            "SignatureDoesNotMatch",
        ),
        (
            ResponseTemplate::new(503).set_body_string("<html>busy</html>"),
            transient(false),
            "http 503",
        ),
        (
            aliyun_code("isv.NEVER_SEEN_BEFORE"),
            permanent(false),
            "isv.NEVER_SEEN_BEFORE",
        ),
    ];
    for (response, class, code) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&server)
            .await;
        assert_err(&client.send(&one(1)).await, class, code);
    }
}

#[tokio::test]
async fn aliyun_refuses_messages_it_cannot_send_without_calling() {
    let server = MockServer::start().await;
    let client = AliyunSms::new(&aliyun_settings(&server), clock_at(NOW)).unwrap();
    let mut no_sign = one(1);
    no_sign.sign_name = None;
    assert_err(
        &client.send(&no_sign).await,
        permanent(false),
        "no_sign_name",
    );
    let mut no_section = one(2);
    if let Rendered::Sms { aliyun, .. } = &mut no_section.rendered {
        *aliyun = None;
    }
    let r = client.send(&no_section).await;
    assert_err(&r, permanent(false), "no_template");
    assert_eq!(r.unwrap_err().message, "the template has no aliyun section");
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn aliyun_sendbatchsms_takes_three_messages_in_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-acs-action", "SendBatchSms"))
        .respond_with(aliyun_ok("77^0"))
        .expect(1)
        .mount(&server)
        .await;
    let mut settings = aliyun_settings(&server);
    settings.batch = true;
    let client = AliyunSms::new(&settings, clock_at(NOW)).unwrap();
    assert_eq!(client.max_batch(), 100);
    let msgs = [
        sms(1, "+8613800138000", "SMS_1", &[("name", "张三")]),
        sms(2, "+8613900139000", "SMS_1", &[("name", "李四")]),
        sms(3, "+8613700137000", "SMS_1", &[("name", "王五")]),
    ];

    let results = client.send_batch(&msgs).await;

    let ids: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap().provider_message_id.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "77^0/+8613800138000",
            "77^0/+8613900139000",
            "77^0/+8613700137000"
        ]
    );
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(query_map(r)["TemplateCode"], "SMS_1");
    assert!(!query_map(r).contains_key("OutId"));
    assert_eq!(
        header_str(r, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let form = form_map(&r.body);
    assert_eq!(
        form["PhoneNumberJson"],
        r#"["13800138000","13900139000","13700137000"]"#
    );
    assert_eq!(
        form["SignNameJson"],
        r#"["小馆咖啡","小馆咖啡","小馆咖啡"]"#
    );
    assert_eq!(
        form["TemplateParamJson"],
        r#"[{"name":"张三"},{"name":"李四"},{"name":"王五"}]"#
    );
    assert_acs3_signed(r);
}

#[tokio::test]
async fn aliyun_batch_refused_for_one_number_is_resent_one_by_one() {
    let server = MockServer::start().await;
    Mock::given(header("x-acs-action", "SendBatchSms"))
        .respond_with(aliyun_code("isv.MOBILE_NUMBER_ILLEGAL"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(header("x-acs-action", "SendSms"))
        .and(wiremock::matchers::query_param("PhoneNumbers", "12345"))
        .respond_with(aliyun_code("isv.MOBILE_NUMBER_ILLEGAL"))
        .mount(&server)
        .await;
    Mock::given(header("x-acs-action", "SendSms"))
        .respond_with(aliyun_ok("88^0"))
        .mount(&server)
        .await;
    let mut settings = aliyun_settings(&server);
    settings.batch = true;
    let client = AliyunSms::new(&settings, clock_at(NOW)).unwrap();
    let mut no_sign = sms(4, "+8613600136000", "SMS_1", &[]);
    no_sign.sign_name = None;
    let msgs = [
        sms(1, "+8613800138000", "SMS_1", &[]),
        sms(2, "+12345", "SMS_1", &[]),
        sms(3, "+8613700137000", "SMS_1", &[]),
        no_sign,
    ];

    let results = client.send_batch(&msgs).await;

    assert_eq!(results.len(), 4);
    assert_eq!(
        results[0].as_ref().unwrap().provider_message_id.as_deref(),
        Some("88^0")
    );
    assert_err(&results[1], permanent(true), "isv.MOBILE_NUMBER_ILLEGAL");
    assert!(results[2].is_ok());
    assert_err(&results[3], permanent(false), "no_sign_name");
    // One batch call, then three singles with their own OutId.
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 4);
    let out_ids: Vec<_> = reqs[1..]
        .iter()
        .map(|r| query_map(r)["OutId"].clone())
        .collect();
    assert_eq!(out_ids, ["1", "2", "3"]);
}

#[tokio::test]
async fn aliyun_recovers_after_a_503_storm() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(aliyun_ok("5^0"))
        .mount(&server)
        .await;
    let client = AliyunSms::new(&aliyun_settings(&server), clock_at(NOW)).unwrap();
    for _ in 0..3 {
        assert_err(&client.send(&one(1)).await, transient(false), "http 503");
    }
    assert!(client.send(&one(1)).await.is_ok());
}

#[tokio::test]
async fn aliyun_slow_answer_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(aliyun_ok("1^0").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut settings = aliyun_settings(&server);
    settings.timeout_ms = Some(300);
    let client = AliyunSms::new(&settings, clock_at(NOW)).unwrap();
    assert_err(&client.send(&one(1)).await, transient(true), "timeout");
}

#[tokio::test]
async fn aliyun_refused_connection_is_retried_and_does_not_leak_the_number() {
    let server = MockServer::start().await;
    let mut settings = aliyun_settings(&server);
    // A port nobody listens on (wiremock pools and reuses its servers).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    settings.base_url = Some(format!("http://{}", closed.local_addr().unwrap()));
    drop(closed);
    settings.timeout_ms = Some(500);
    let client = AliyunSms::new(&settings, clock_at(NOW)).unwrap();
    let r = client.send(&one(1)).await;
    assert_err(&r, transient(false), "connect");
    // The ACS3 query carries the number; the error text must not.
    assert!(!r.unwrap_err().message.contains("13800138000"));
}

// ---------------------------------------------------------------- Tencent

fn tencent_settings(server: &MockServer) -> TencentSettings {
    TencentSettings {
        secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE".to_owned(),
        secret_key: SecretString::from("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
        sdk_app_id: "1400006666".to_owned(),
        region: None,
        base_url: Some(server.uri()),
        concurrency: None,
        rate_per_second: None,
        timeout_ms: Some(1_000),
    }
}

/// A `SendSms` answer with one status per number of the request: `Ok`, or
/// the code `codes` gives that number.
fn tencent_echo(
    codes: HashMap<&'static str, &'static str>,
) -> impl Fn(&Request) -> ResponseTemplate {
    move |r: &Request| {
        let body: Value = r.body_json().unwrap();
        let set: Vec<Value> = body["PhoneNumberSet"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let phone = p.as_str().unwrap();
                let code = codes.get(phone).copied().unwrap_or("Ok");
                json!({"SerialNo": format!("5000:{i}{}", &phone[phone.len() - 4..]),
                       "PhoneNumber": phone, "Fee": 1, "Code": code, "Message": "m", "IsoCode": "CN"})
            })
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"Response":{"SendStatusSet": set, "RequestId":"r"}}))
    }
}

fn tencent_error(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"Response":{"Error":{"Code":code,"Message":"m"},"RequestId":"r"}}))
}

fn tencent_status(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"Response":{"SendStatusSet":[
        {"SerialNo":"","PhoneNumber":"+8613800138000","Fee":0,"Code":code,"Message":"m","IsoCode":"CN"}
    ],"RequestId":"r"}}))
}

#[tokio::test]
async fn tencent_sendsms_is_signed_and_carries_the_message_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(tencent_echo(HashMap::new()))
        .expect(1)
        .mount(&server)
        .await;
    // 00:30 Beijing: the credential date must be the previous (UTC) day.
    let now = at("2024-03-01T16:30:00Z");
    let client =
        TencentSms::new(&tencent_settings(&server), clock_at("2024-03-01T16:30:00Z")).unwrap();
    assert_eq!(client.name(), "tencent");
    assert_eq!(client.max_batch(), 200);

    let accepted = client.send(&one(42)).await.unwrap();

    assert_eq!(accepted.provider_message_id.as_deref(), Some("5000:08000"));
    let reqs = requests(&server).await;
    let r = &reqs[0];
    assert_eq!(header_str(r, "x-tc-action"), "SendSms");
    assert_eq!(header_str(r, "x-tc-version"), "2021-01-11");
    assert_eq!(header_str(r, "x-tc-region"), "ap-guangzhou");
    assert_eq!(header_str(r, "x-tc-timestamp"), now.timestamp().to_string());
    assert_eq!(
        header_str(r, "content-type"),
        "application/json; charset=utf-8"
    );
    let body: Value = r.body_json().unwrap();
    assert_eq!(body["PhoneNumberSet"], json!(["+8613800138000"]));
    assert_eq!(body["SmsSdkAppId"], "1400006666");
    assert_eq!(body["SignName"], "小馆咖啡");
    assert_eq!(body["TemplateId"], "SMS_123456789");
    assert_eq!(body["TemplateParamSet"], json!(["张三 *VIP~"]));
    assert_eq!(body["SessionContext"], "42");
    let expected = tc3::authorization(
        &tc3::Tc3Request {
            service: "sms",
            host: header_str(r, "host"),
            content_type: header_str(r, "content-type"),
            timestamp: now,
            body: &r.body,
        },
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
    );
    assert_eq!(header_str(r, "authorization"), expected);
    assert!(expected.contains("/2024-03-01/sms/tc3_request"));
}

#[tokio::test]
async fn tencent_codes_are_classified() {
    let server = MockServer::start().await;
    // 23:00 Beijing time: the marketing window opens in 9 hours.
    let client =
        TencentSms::new(&tencent_settings(&server), clock_at("2024-03-01T15:00:00Z")).unwrap();
    let cases: Vec<(ResponseTemplate, FailureClass, &str)> = vec![
        (
            tencent_status("FailedOperation.PhoneNumberInBlacklist"),
            permanent(true),
            "FailedOperation.PhoneNumberInBlacklist",
        ),
        (
            tencent_status("InvalidParameterValue.IncorrectPhoneNumber"),
            permanent(true),
            "InvalidParameterValue.IncorrectPhoneNumber",
        ),
        (
            tencent_status("FailedOperation.ContainSensitiveWord"),
            permanent(false),
            "FailedOperation.ContainSensitiveWord",
        ),
        (
            tencent_status("LimitExceeded.PhoneNumberDailyLimit"),
            FailureClass::RateLimited(RateWait::NextDay),
            "LimitExceeded.PhoneNumberDailyLimit",
        ),
        (
            tencent_status("FailedOperation.MarketingSendTimeConstraint"),
            FailureClass::RateLimited(RateWait::For(Duration::from_secs(9 * 3600))),
            "FailedOperation.MarketingSendTimeConstraint",
        ),
        (
            tencent_error("RequestLimitExceeded"),
            FailureClass::RateLimited(RateWait::Unspecified),
            "RequestLimitExceeded",
        ),
        (
            tencent_error("AuthFailure.SignatureFailure"),
            FailureClass::ProviderDown,
            "AuthFailure.SignatureFailure",
        ),
        (
            tencent_error("UnauthorizedOperation.ServiceSuspendDueToArrears"),
            FailureClass::ProviderDown,
            "UnauthorizedOperation.ServiceSuspendDueToArrears",
        ),
        (
            tencent_error("FailedOperation.TemplateIncorrectOrUnapproved"),
            FailureClass::ProviderDown,
            "FailedOperation.TemplateIncorrectOrUnapproved",
        ),
        (
            tencent_error("InternalError.OtherError"),
            transient(false),
            "InternalError.OtherError",
        ),
        (
            tencent_error("InternalError.Timeout"),
            transient(true),
            "InternalError.Timeout",
        ),
        (
            ResponseTemplate::new(429).insert_header("Retry-After", "3"),
            FailureClass::RateLimited(RateWait::For(Duration::from_secs(3))),
            "http 429",
        ),
        (ResponseTemplate::new(502), transient(false), "http 502"),
    ];
    for (response, class, code) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&server)
            .await;
        assert_err(&client.send(&one(1)).await, class, code);
    }
}

#[tokio::test]
async fn tencent_groups_identical_messages_into_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(tencent_echo(HashMap::from([(
            "+8613900139000",
            "FailedOperation.PhoneNumberInBlacklist",
        )])))
        .mount(&server)
        .await;
    let client = TencentSms::new(&tencent_settings(&server), clock_at(NOW)).unwrap();
    let msgs = [
        sms(1, "+8613800138000", "1110", &[("a", "8折")]),
        sms(2, "+8613900139000", "1110", &[("a", "8折")]),
        sms(3, "+8613700137000", "1110", &[("a", "9折")]),
        sms(4, "+8613600136000", "1110", &[("a", "8折")]),
    ];

    let results = client.send_batch(&msgs).await;

    assert_eq!(
        results[0].as_ref().unwrap().provider_message_id.as_deref(),
        Some("5000:08000")
    );
    assert_err(
        &results[1],
        permanent(true),
        "FailedOperation.PhoneNumberInBlacklist",
    );
    assert!(results[2].is_ok());
    assert_eq!(
        results[3].as_ref().unwrap().provider_message_id.as_deref(),
        Some("5000:26000")
    );
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 2);
    let first: Value = reqs[0].body_json().unwrap();
    assert_eq!(
        first["PhoneNumberSet"],
        json!(["+8613800138000", "+8613900139000", "+8613600136000"])
    );
    assert_eq!(first["TemplateParamSet"], json!(["8折"]));
    assert!(first.get("SessionContext").is_none());
    let second: Value = reqs[1].body_json().unwrap();
    assert_eq!(second["PhoneNumberSet"], json!(["+8613700137000"]));
    assert_eq!(second["SessionContext"], "3");
}

#[tokio::test]
async fn tencent_recovers_after_a_503_storm() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(tencent_echo(HashMap::new()))
        .mount(&server)
        .await;
    let client = TencentSms::new(&tencent_settings(&server), clock_at(NOW)).unwrap();
    for _ in 0..3 {
        assert_err(&client.send(&one(1)).await, transient(false), "http 503");
    }
    assert!(client.send(&one(1)).await.is_ok());
}

#[tokio::test]
async fn tencent_slow_answer_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(tencent_status("Ok").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut settings = tencent_settings(&server);
    settings.timeout_ms = Some(300);
    let client = TencentSms::new(&settings, clock_at(NOW)).unwrap();
    assert_err(&client.send(&one(1)).await, transient(true), "timeout");
}

// ---------------------------------------------------------------- Twilio

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

fn twilio_settings(server: &MockServer) -> TwilioSettings {
    TwilioSettings {
        account_sid: SID.to_owned(),
        auth_token: SecretString::from("12345"),
        from: Some("+15017122661".to_owned()),
        messaging_service_sid: None,
        status_callback: Some("https://hooks.example.com/twilio/status?tenant=cafe-42".to_owned()),
        base_url: Some(server.uri()),
        concurrency: None,
        rate_per_second: None,
        timeout_ms: Some(1_000),
    }
}

fn twilio_error(status: u16, code: u32) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": "m", "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status
    }))
}

fn overseas(id: i64) -> Outgoing {
    let mut m = one(id);
    m.address = "+15558675310".to_owned();
    m
}

#[tokio::test]
async fn twilio_send_posts_the_form_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid":"SM1234567890abcdef1234567890abcdef","status":"queued","error_code":null}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = TwilioSms::new(&twilio_settings(&server), clock_at(NOW)).unwrap();

    let accepted = client.send(&overseas(9)).await.unwrap();

    assert_eq!(
        accepted.provider_message_id.as_deref(),
        Some("SM1234567890abcdef1234567890abcdef")
    );
    let reqs = requests(&server).await;
    let r = &reqs[0];
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:12345"));
    assert_eq!(header_str(r, "authorization"), format!("Basic {basic}"));
    let form = form_map(&r.body);
    assert_eq!(form["To"], "+15558675310");
    assert_eq!(form["From"], "+15017122661");
    assert_eq!(form["Body"], "【小馆咖啡】会员日八折，拒收请回复R");
    assert_eq!(
        form["StatusCallback"],
        "https://hooks.example.com/twilio/status?tenant=cafe-42"
    );
}

#[tokio::test]
async fn twilio_codes_are_classified() {
    let server = MockServer::start().await;
    let client = TwilioSms::new(&twilio_settings(&server), clock_at(NOW)).unwrap();
    let cases: Vec<(ResponseTemplate, FailureClass, &str)> = vec![
        (twilio_error(400, 21610), permanent(true), "21610"),
        (twilio_error(400, 21211), permanent(true), "21211"),
        (twilio_error(400, 21617), permanent(false), "21617"),
        (
            twilio_error(401, 20003),
            FailureClass::ProviderDown,
            "20003",
        ),
        (
            twilio_error(429, 20429).insert_header("Retry-After", "5"),
            FailureClass::RateLimited(RateWait::For(Duration::from_secs(5))),
            "20429",
        ),
        (
            ResponseTemplate::new(429),
            FailureClass::RateLimited(RateWait::Unspecified),
            "http 429",
        ),
        (ResponseTemplate::new(500), transient(false), "http 500"),
    ];
    for (response, class, code) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&server)
            .await;
        assert_err(&client.send(&overseas(1)).await, class, code);
    }
}

#[tokio::test]
async fn twilio_recovers_after_a_503_storm() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid":"SM9"})))
        .mount(&server)
        .await;
    let client = TwilioSms::new(&twilio_settings(&server), clock_at(NOW)).unwrap();
    for _ in 0..3 {
        assert_err(
            &client.send(&overseas(1)).await,
            transient(false),
            "http 503",
        );
    }
    assert_eq!(
        client
            .send(&overseas(1))
            .await
            .unwrap()
            .provider_message_id
            .as_deref(),
        Some("SM9")
    );
}

#[tokio::test]
async fn twilio_slow_answer_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid":"SM9"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut settings = twilio_settings(&server);
    settings.timeout_ms = Some(300);
    let client = TwilioSms::new(&settings, clock_at(NOW)).unwrap();
    assert_err(&client.send(&overseas(1)).await, transient(true), "timeout");
}

#[tokio::test]
async fn twilio_webhooks_are_verified_and_read() {
    let server = MockServer::start().await;
    let client = TwilioSms::new(&twilio_settings(&server), clock_at(NOW)).unwrap();
    let url = "https://hooks.example.com/twilio/status?tenant=cafe-42";
    let body = b"AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&ApiVersion=2010-04-01&From=%2B15017122661&MessageSid=SM1234567890abcdef1234567890abcdef&MessageStatus=delivered&SmsSid=SM1234567890abcdef1234567890abcdef&SmsStatus=delivered&To=%2B15558675310";
    let params = form_pairs(body);
    // TW2, computed by the SDK.
    assert!(client.verify_webhook(url, &params, "v6wly/RajvIvfh/iap9I/uiKbzQ="));
    assert!(client.verify_webhook(
        "https://hooks.example.com:443/twilio/status?tenant=cafe-42",
        &params,
        "v6wly/RajvIvfh/iap9I/uiKbzQ="
    ));
    assert!(!client.verify_webhook(url, &params[1..], "v6wly/RajvIvfh/iap9I/uiKbzQ="));
    assert_eq!(
        twilio_sig::signature("12345", url, &params),
        "v6wly/RajvIvfh/iap9I/uiKbzQ="
    );
    let receipt = outreach::dispatch::providers::twilio::parse_status_callback(body)
        .unwrap()
        .unwrap();
    assert!(receipt.delivered);
    assert_eq!(
        receipt.key,
        outreach::dispatch::ReceiptKey::ProviderMessageId(
            "SM1234567890abcdef1234567890abcdef".to_owned()
        )
    );
}
