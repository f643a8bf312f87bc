//! A hand-made shop for campaign tests: two stores (Shanghai and New York),
//! customers, orders, the repository's templates, campaigns checked from
//! inline YAML, and runs of the campaign and segments jobs at a given time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use outreach::campaigns::file::{CheckEnv, check_source};
use outreach::campaigns::run::{self, Mode, RunInputs, RunReport, RunSettings};
use outreach::campaigns::{Campaign, SendWindow};
use outreach::domain::{
    Birthday, Consent, Customer, CustomerId, Email, Money, Order, OrderId, Phone, StoreCode,
    StoreInfo, Tags,
};
use outreach::segments::{RecomputeMode, job};
use outreach::store::SharedStore;
use outreach::templates::TemplateSet;
use outreach::unsubscribe::LinkSigner;
use outreach::yaml_file::YamlSource;

pub const SHANGHAI: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn stores() -> Vec<StoreInfo> {
    vec![
        StoreInfo {
            code: StoreCode::parse("SH-001").unwrap(),
            name: "人民广场店".into(),
            sms_signature: "老街豆浆".into(),
            timezone: SHANGHAI,
        },
        StoreInfo {
            code: StoreCode::parse("NY-001").unwrap(),
            name: "Flushing".into(),
            sms_signature: "老街豆浆".into(),
            timezone: chrono_tz::America::New_York,
        },
    ]
}

pub fn customer(id: &str, store: &str, birthday: Option<&str>) -> Customer {
    Customer {
        id: CustomerId::parse(id).unwrap(),
        name: Some(format!("顾客{id}")),
        phone: Some(
            Phone::parse(&format!("1380013{:04}", id[1..].parse::<u32>().unwrap())).unwrap(),
        ),
        email: Some(Email::parse(&format!("{}@example.com", id.to_lowercase())).unwrap()),
        wechat_openid: None,
        birthday: birthday.map(|b| Birthday::parse(b).unwrap()),
        store: Some(StoreCode::parse(store).unwrap()),
        tags: Tags::default(),
        sms_opt_in: Consent::Yes,
        email_opt_in: Consent::Unknown,
        wechat_opt_in: Consent::Unknown,
        joined_at: Some(t("2025-01-01T09:00:00+08:00")),
    }
}

pub fn order(id: &str, customer: &str, at: &str) -> Order {
    let ordered_at = t(at);
    Order {
        id: OrderId::parse(id).unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
        store: StoreCode::parse("SH-001").unwrap(),
        amount: Money::parse_yuan("25.00").unwrap(),
        ordered_at,
        local_time: Order::local_time_in(ordered_at, SHANGHAI),
        coupon_code: None,
    }
}

pub fn templates() -> TemplateSet {
    let (set, errors) = TemplateSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"));
    assert!(errors.is_empty(), "{errors:?}");
    set
}

pub fn campaign(text: &str, templates: &TemplateSet) -> Campaign {
    let env = CheckEnv {
        stores: vec!["SH-001".into(), "NY-001".into()],
        custom_segments: vec![],
        templates,
    };
    check_source(
        &YamlSource {
            path: PathBuf::from("campaigns/test.yaml"),
            text: text.into(),
        },
        &env,
    )
    .unwrap_or_else(|e| panic!("{e:#?}"))
}

pub fn settings(cap: Option<(u32, u32)>) -> RunSettings {
    RunSettings {
        default_tz: SHANGHAI,
        default_window: SendWindow::default_hours(),
        cap,
        batch_size: 2,
    }
}

pub async fn seed(store: &SharedStore, customers: &[Customer]) {
    store
        .upsert_stores(&stores(), t("2025-01-01T00:00:00Z"))
        .await
        .unwrap();
    store
        .upsert_customers(customers, t("2025-01-01T00:00:00Z"))
        .await
        .unwrap();
}

pub async fn run_at(
    store: &SharedStore,
    c: &Campaign,
    tpl: &TemplateSet,
    now: &str,
    cap: Option<(u32, u32)>,
) -> RunReport {
    let links = LinkSigner::new(&"k".to_owned().into(), "https://m.example.com");
    let s = stores();
    let rs = settings(cap);
    let inputs = RunInputs {
        campaign: c,
        templates: tpl,
        stores: &s,
        settings: &rs,
        links: &links,
    };
    run::run(store.as_ref(), &inputs, t(now), Mode::Write)
        .await
        .expect("campaign run")
}

pub async fn segments(store: &SharedStore, now: &str) {
    job::run(
        store.as_ref(),
        Path::new("/nonexistent"),
        SHANGHAI,
        t(now),
        RecomputeMode::Full,
    )
    .await
    .unwrap();
}
