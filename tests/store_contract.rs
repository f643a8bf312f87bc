//! One contract for every `Store` implementation: each test runs on SQLite,
//! and on PostgreSQL when OUTREACH_TEST_DATABASE_URL is set.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use outreach::domain::{
    Birthday, Consent, Customer, CustomerId, Email, Money, Order, OrderId, Phone, StoreCode,
    StoreInfo, Tags, WeChatOpenId,
};
use outreach::store::{Channel, OptOut, SharedStore, UpsertCounts};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn stores() -> Vec<StoreInfo> {
    vec![
        StoreInfo {
            code: StoreCode::parse("SH-001").unwrap(),
            name: "人民广场店".into(),
            sms_signature: "早安包子铺".into(),
            timezone: chrono_tz::Asia::Shanghai,
        },
        StoreInfo {
            code: StoreCode::parse("SYD-001").unwrap(),
            name: "悉尼唐人街店".into(),
            sms_signature: "早安包子铺".into(),
            timezone: chrono_tz::Australia::Sydney,
        },
    ]
}

fn customer(id: &str) -> Customer {
    Customer {
        id: CustomerId::parse(id).unwrap(),
        name: Some("王小明".into()),
        phone: Some(Phone::parse("13800138000").unwrap()),
        email: Some(Email::parse("xiaoming@163.com").unwrap()),
        wechat_openid: Some(WeChatOpenId::parse("o6_bmjrPTlm6_2sgVt7hMZOPfL2M").unwrap()),
        birthday: Some(Birthday::parse("02-29").unwrap()),
        store: Some(StoreCode::parse("SH-001").unwrap()),
        tags: Tags::parse("vegetarian;student").unwrap(),
        sms_opt_in: Consent::Yes,
        email_opt_in: Consent::No,
        wechat_opt_in: Consent::Unknown,
        joined_at: Some(t("2025-01-02T03:04:05.678Z")),
    }
}

fn bare_customer(id: &str) -> Customer {
    Customer {
        id: CustomerId::parse(id).unwrap(),
        name: None,
        phone: None,
        email: None,
        wechat_openid: None,
        birthday: None,
        store: None,
        tags: Tags::default(),
        sms_opt_in: Consent::Unknown,
        email_opt_in: Consent::Unknown,
        wechat_opt_in: Consent::Unknown,
        joined_at: None,
    }
}

fn order(id: &str, customer: &str, store: &StoreInfo, at: &str, yuan: &str) -> Order {
    let ordered_at = t(at);
    Order {
        id: OrderId::parse(id).unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
        store: store.code.clone(),
        amount: Money::parse_yuan(yuan).unwrap(),
        ordered_at,
        local_time: Order::local_time_in(ordered_at, store.timezone),
        coupon_code: None,
    }
}

async fn with_stores(store: &SharedStore) {
    store
        .upsert_stores(&stores(), t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
}

async fn stores_round_trip_and_update(store: SharedStore) {
    with_stores(&store).await;
    let mut expected = stores();
    assert_eq!(store.stores().await.unwrap(), expected);
    expected[0].name = "人民广场旗舰店".into();
    store
        .upsert_stores(&expected[..1], Utc::now())
        .await
        .unwrap();
    assert_eq!(store.stores().await.unwrap(), expected);
    assert_eq!(store.counts().await.unwrap().stores, 2);
}

async fn customers_round_trip_every_field(store: SharedStore) {
    with_stores(&store).await;
    let full = customer("C1");
    let bare = bare_customer("C2");
    let counts = store
        .upsert_customers(&[full.clone(), bare.clone()], Utc::now())
        .await
        .unwrap();
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 2,
            updated: 0,
            unchanged: 0
        }
    );
    assert_eq!(store.customer(&full.id).await.unwrap(), Some(full));
    assert_eq!(store.customer(&bare.id).await.unwrap(), Some(bare));
    assert_eq!(
        store
            .customer(&CustomerId::parse("nobody").unwrap())
            .await
            .unwrap(),
        None
    );
}

async fn upserting_again_changes_nothing_and_updates_what_changed(store: SharedStore) {
    with_stores(&store).await;
    let batch = vec![customer("C1"), customer("C2"), bare_customer("C3")];
    store.upsert_customers(&batch, Utc::now()).await.unwrap();
    let again = store.upsert_customers(&batch, Utc::now()).await.unwrap();
    assert_eq!(
        again,
        UpsertCounts {
            inserted: 0,
            updated: 0,
            unchanged: 3
        }
    );

    let mut changed = batch.clone();
    changed[1].sms_opt_in = Consent::No;
    changed[2].birthday = Some(Birthday::parse("1990-12-31").unwrap());
    changed.push(bare_customer("C4"));
    let c = store.upsert_customers(&changed, Utc::now()).await.unwrap();
    assert_eq!(
        c,
        UpsertCounts {
            inserted: 1,
            updated: 2,
            unchanged: 1
        }
    );
    assert_eq!(
        store
            .customer(&changed[1].id)
            .await
            .unwrap()
            .unwrap()
            .sms_opt_in,
        Consent::No
    );
    assert_eq!(store.counts().await.unwrap().customers, 4);
}

/// An import batch looks up its distinct customers: every order of an
/// unknown customer is refused, wherever it stands in the batch.
async fn every_order_of_an_unknown_customer_is_refused(store: SharedStore) {
    with_stores(&store).await;
    let s = stores();
    store
        .upsert_customers(&[customer("C1"), customer("C2")], Utc::now())
        .await
        .unwrap();
    let batch = vec![
        order("O1", "GHOST", &s[0], "2026-03-01T07:45:00+08:00", "12.50"),
        order("O2", "C1", &s[0], "2026-03-01T08:00:00+08:00", "8"),
        order("O3", "GHOST", &s[0], "2026-03-02T08:00:00+08:00", "9"),
        order("O4", "C2", &s[0], "2026-03-02T09:00:00+08:00", "10"),
        order("O5", "SPECTRE", &s[0], "2026-03-03T08:00:00+08:00", "11"),
    ];
    let outcome = store.upsert_orders(&batch, Utc::now()).await.unwrap();
    assert_eq!(outcome.unknown_customers, vec![0, 2, 4]);
    assert_eq!(outcome.counts.inserted, 2);
}

/// A batch of new orders is written in bulk, a batch with stored orders is
/// upserted; whichever way a batch goes, new orders behind stored ones are
/// inserted, changed ones updated, and the batches after it are whole.
async fn batches_mixing_new_and_stored_orders_lose_nothing(store: SharedStore) {
    with_stores(&store).await;
    let s = stores();
    store
        .upsert_customers(&[customer("C1"), customer("C2")], Utc::now())
        .await
        .unwrap();
    let first = vec![
        order("O1", "C1", &s[0], "2026-03-01T07:45:00+08:00", "12.50"),
        order("O2", "C2", &s[0], "2026-03-01T08:00:00+08:00", "8"),
    ];
    let c = store
        .upsert_orders(&first, Utc::now())
        .await
        .unwrap()
        .counts;
    assert_eq!((c.inserted, c.updated, c.unchanged), (2, 0, 0));
    let mixed = vec![
        first[0].clone(),
        order("O2", "C2", &s[0], "2026-03-01T08:00:00+08:00", "9"),
        order("O3", "C1", &s[0], "2026-03-02T08:00:00+08:00", "10"),
    ];
    let c = store
        .upsert_orders(&mixed, Utc::now())
        .await
        .unwrap()
        .counts;
    assert_eq!((c.inserted, c.updated, c.unchanged), (1, 1, 1));
    for n in 0..20 {
        let batch = vec![
            order(
                &format!("N{n}-1"),
                "C1",
                &s[0],
                "2026-03-03T08:00:00+08:00",
                "5",
            ),
            order(
                &format!("N{n}-2"),
                "C2",
                &s[0],
                "2026-03-03T09:00:00+08:00",
                "6",
            ),
        ];
        let c = store
            .upsert_orders(&batch, Utc::now())
            .await
            .unwrap()
            .counts;
        assert_eq!((c.inserted, c.updated, c.unchanged), (2, 0, 0), "batch {n}");
    }
    assert_eq!(store.counts().await.unwrap().orders, 43);
    let c2 = store
        .orders_of(&CustomerId::parse("C2").unwrap())
        .await
        .unwrap();
    let o2 = c2.iter().find(|o| o.id.as_str() == "O2").unwrap();
    assert_eq!(o2.amount.fen(), 900);
}

async fn orders_of_unknown_customers_are_refused_and_reported(store: SharedStore) {
    with_stores(&store).await;
    let s = stores();
    store
        .upsert_customers(&[customer("C1")], Utc::now())
        .await
        .unwrap();
    let batch = vec![
        order("O1", "C1", &s[0], "2026-03-01T07:45:00+08:00", "12.50"),
        order("O2", "GHOST", &s[0], "2026-03-01T08:00:00+08:00", "8"),
        order("O3", "C1", &s[1], "2026-04-04T15:30:00Z", "-3.20"),
    ];
    let outcome = store.upsert_orders(&batch, Utc::now()).await.unwrap();
    assert_eq!(outcome.unknown_customers, vec![1]);
    assert_eq!(
        outcome.counts,
        UpsertCounts {
            inserted: 2,
            updated: 0,
            unchanged: 0
        }
    );
    let back = store
        .orders_of(&CustomerId::parse("C1").unwrap())
        .await
        .unwrap();
    assert_eq!(back, vec![batch[0].clone(), batch[2].clone()]);
    // Store-local wall time survives the round trip, in each store's zone.
    assert_eq!(back[0].local_time.to_string(), "2026-03-01 07:45:00");
    assert_eq!(back[1].local_time.to_string(), "2026-04-05 02:30:00");

    let again = store.upsert_orders(&batch, Utc::now()).await.unwrap();
    assert_eq!(
        again.counts,
        UpsertCounts {
            inserted: 0,
            updated: 0,
            unchanged: 2
        }
    );
    let mut changed = batch.clone();
    changed[0].amount = Money::parse_yuan("13").unwrap();
    changed[2].coupon_code = Some("BDAY-7KQ2X".into());
    let c = store.upsert_orders(&changed, Utc::now()).await.unwrap();
    assert_eq!(
        c.counts,
        UpsertCounts {
            inserted: 0,
            updated: 2,
            unchanged: 0
        }
    );
    assert_eq!(store.counts().await.unwrap().orders, 2);
}

async fn large_batches_span_many_statements(store: SharedStore) {
    with_stores(&store).await;
    let s = stores();
    let customers: Vec<Customer> = (0..1_000).map(|i| customer(&format!("C{i:05}"))).collect();
    let c = store
        .upsert_customers(&customers, Utc::now())
        .await
        .unwrap();
    assert_eq!(c.inserted, 1_000);
    let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let orders: Vec<Order> = (0..5_000)
        .map(|i| {
            let at = (base + chrono::Duration::minutes(i * 37)).to_rfc3339();
            order(
                &format!("O{i:06}"),
                &format!("C{:05}", i % 1_000),
                &s[(i % 2) as usize],
                &at,
                "18.5",
            )
        })
        .collect();
    let o = store.upsert_orders(&orders, Utc::now()).await.unwrap();
    assert_eq!(o.counts.inserted, 5_000);
    assert!(o.unknown_customers.is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.customers, counts.orders), (1_000, 5_000));
    let mine = store
        .orders_of(&CustomerId::parse("C00007").unwrap())
        .await
        .unwrap();
    assert_eq!(mine.len(), 5);
    assert!(mine.windows(2).all(|w| w[0].ordered_at <= w[1].ordered_at));
}

async fn meta_values_are_kept_and_replaced(store: SharedStore) {
    assert_eq!(store.meta("demo_seeded").await.unwrap(), None);
    store.set_meta("demo_seeded", "{\"seed\":1}").await.unwrap();
    store.set_meta("demo_seeded", "{\"seed\":2}").await.unwrap();
    assert_eq!(
        store.meta("demo_seeded").await.unwrap().as_deref(),
        Some("{\"seed\":2}")
    );
}

async fn opt_outs_are_recorded_once(store: SharedStore) {
    let o = OptOut {
        channel: Channel::Sms,
        address: "+8613800138000".into(),
        source: "cli".into(),
        at: t("2026-05-01T10:00:00Z"),
    };
    assert!(!store.is_opted_out(Channel::Sms, &o.address).await.unwrap());
    assert!(store.record_opt_out(&o).await.unwrap().recorded);
    assert!(!store.record_opt_out(&o).await.unwrap().recorded);
    assert!(store.is_opted_out(Channel::Sms, &o.address).await.unwrap());
    assert!(
        !store
            .is_opted_out(Channel::Email, &o.address)
            .await
            .unwrap()
    );
}

async fn ping_answers(store: SharedStore) {
    store.ping().await.unwrap();
}

/// A run lease excludes other holders until it runs out; its holder may
/// take it again, renew it and release it; another takes it over once it
/// has run out or was released.
async fn run_leases_exclude_until_they_run_out(store: SharedStore) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
    let secs = chrono::Duration::seconds;
    assert_eq!(
        store
            .take_run_lease("segments", "a", t0, t0 + secs(60))
            .await
            .unwrap(),
        None
    );
    let held = store
        .take_run_lease("segments", "b", t0 + secs(30), t0 + secs(90))
        .await
        .unwrap()
        .expect("a holds it");
    assert_eq!((held.holder.as_str(), held.until), ("a", t0 + secs(60)));
    // Its holder takes it again (here to its old length).
    assert_eq!(
        store
            .take_run_lease("segments", "a", t0 + secs(30), t0 + secs(60))
            .await
            .unwrap(),
        None
    );
    // Other names are other leases.
    assert_eq!(
        store
            .take_run_lease("other", "b", t0, t0 + secs(60))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .renew_run_lease("segments", "a", t0 + secs(120))
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_run_lease("segments", "b", t0 + secs(120))
            .await
            .unwrap()
    );
    // At its last instant the lease still holds; just after, it has run out.
    let held = store
        .take_run_lease("segments", "b", t0 + secs(120), t0 + secs(180))
        .await
        .unwrap();
    assert_eq!(held.map(|l| l.holder), Some("a".to_owned()));
    assert_eq!(
        store
            .take_run_lease("segments", "b", t0 + secs(121), t0 + secs(180))
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .renew_run_lease("segments", "a", t0 + secs(200))
            .await
            .unwrap()
    );
    // Releasing someone else's lease does nothing; one's own frees it.
    store.release_run_lease("segments", "a").await.unwrap();
    assert!(
        store
            .take_run_lease("segments", "c", t0, t0 + secs(60))
            .await
            .unwrap()
            .is_some()
    );
    store.release_run_lease("segments", "b").await.unwrap();
    assert_eq!(
        store
            .take_run_lease("segments", "c", t0, t0 + secs(60))
            .await
            .unwrap(),
        None
    );
}

store_contract!(
    run_leases_exclude_until_they_run_out,
    stores_round_trip_and_update,
    customers_round_trip_every_field,
    upserting_again_changes_nothing_and_updates_what_changed,
    orders_of_unknown_customers_are_refused_and_reported,
    every_order_of_an_unknown_customer_is_refused,
    batches_mixing_new_and_stored_orders_lose_nothing,
    large_batches_span_many_statements,
    meta_values_are_kept_and_replaced,
    opt_outs_are_recorded_once,
    ping_answers,
);
