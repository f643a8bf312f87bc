//! Import of customers and orders files through the library, on every store.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use outreach::domain::{Consent, CustomerId, StoreCode, StoreInfo};
use outreach::import::{ImportKind, ImportOptions, ImportReport, ParseContext, import_file};
use outreach::store::SharedStore;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
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
            name: "悉尼店".into(),
            sms_signature: "早安包子铺".into(),
            timezone: chrono_tz::Australia::Sydney,
        },
    ]
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn import(store: &SharedStore, kind: ImportKind, path: &Path) -> ImportReport {
    store.upsert_stores(&stores(), now()).await.unwrap();
    let ctx = ParseContext::new(store.stores().await.unwrap(), chrono_tz::Asia::Shanghai);
    let options = ImportOptions {
        batch_size: 3,
        progress: false,
        print_rejects: false,
    };
    import_file(store.clone(), kind, path, ctx, &options, now())
        .await
        .unwrap()
}

const CUSTOMERS_CSV: &str = "\u{feff}id,name,phone,email,wechat_openid,birthday,store,tags,sms_opt_in,email_opt_in,wechat_opt_in,joined_at\r
C1,王小明,138 0013 8000,xiaoming@163.com,o6_bmjrPTlm6_2sgVt7hMZOPfL2M,02-29,SH-001,vegetarian;student,true,0,,2025-01-02 08:00:00\r
C2,\"李, 雷\",+86 139-0013-9000,,,1990-12-31,SH-001,,1,false,yes,2025-03-04T10:00:00+08:00\r
C3,坏生日,13700137000,,,13-45,SH-001,,,,,\r
C4,\"未闭合,13600136000,,,,SH-001,,,,,\r
C5,少一列,13500135000,,,,SH-001,,,,\r
C6,座机,010-12345678,,,,SH-001,,,,,\r
C7,坏邮箱,13400134000,not-an-email,,,SH-001,,,,,\r
\r
C8,{{x}} <b>,+61 412 345 678,,,,SYD-001,,true,,,\r
C9,未知店,13300133000,,,,BJ-999,,,,,\r
";

async fn customers_with_bad_rows_keep_the_good_ones(store: SharedStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "customers.csv", CUSTOMERS_CSV);
    let r = import(&store, ImportKind::Customers, &path).await;
    assert_eq!(r.rows, 9);
    assert_eq!((r.inserted, r.rejected), (3, 6), "{r:#?}");
    assert_eq!(r.exit_code(), 1);
    let found: Vec<(u64, Option<usize>, Option<&str>)> = r
        .errors
        .iter()
        .map(|e| (e.line, e.column, e.field))
        .collect();
    assert_eq!(
        found,
        vec![
            (4, Some(6), Some("birthday")),
            (5, Some(4), None),
            (6, None, None),
            (7, Some(3), Some("phone")),
            (8, Some(4), Some("email")),
            (11, Some(7), Some("store")),
        ]
    );
    assert!(
        r.errors[0].reason.contains("13-45"),
        "{}",
        r.errors[0].reason
    );
    assert!(r.errors[1].reason.contains("broken quote"));
    assert!(r.errors[2].reason.contains("expected 12"));
    assert!(r.errors[3].reason.contains("landline") || r.errors[3].reason.contains("mobile"));
    assert!(r.errors[5].reason.contains("BJ-999"));
    assert!(
        r.errors[0]
            .display_in("customers.csv")
            .starts_with("customers.csv:4:6: birthday: ")
    );

    let c1 = store
        .customer(&CustomerId::parse("C1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c1.phone.unwrap().as_str(), "+8613800138000");
    assert_eq!(c1.birthday.unwrap().to_string(), "02-29");
    assert_eq!(
        (c1.sms_opt_in, c1.email_opt_in, c1.wechat_opt_in),
        (Consent::Yes, Consent::No, Consent::Unknown)
    );
    // joined_at without offset is the store's local time.
    assert_eq!(
        c1.joined_at.unwrap().to_rfc3339(),
        "2025-01-02T00:00:00+00:00"
    );
    let c2 = store
        .customer(&CustomerId::parse("C2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2.name.as_deref(), Some("李, 雷"));
    let c8 = store
        .customer(&CustomerId::parse("C8").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c8.name.as_deref(), Some("{{x}} <b>"));
    assert_eq!(c8.phone.unwrap().as_str(), "+61412345678");

    // Re-importing the same file changes and duplicates nothing.
    let again = import(&store, ImportKind::Customers, &path).await;
    assert_eq!(
        (
            again.inserted,
            again.updated,
            again.unchanged,
            again.rejected
        ),
        (0, 0, 3, 6)
    );
    assert_eq!(store.counts().await.unwrap().customers, 3);
}

async fn orders_with_bad_rows_keep_the_good_ones(store: SharedStore) {
    let dir = tempfile::tempdir().unwrap();
    let customers = write(dir.path(), "c.csv", "id,store\nC1,SH-001\nC2,SYD-001\n");
    assert_eq!(
        import(&store, ImportKind::Customers, &customers)
            .await
            .inserted,
        2
    );
    let orders = write(
        dir.path(),
        "orders.csv",
        "id,customer_id,store,amount,ordered_at,coupon_code\n\
         O1,C1,SH-001,12.50,2026-03-01 07:45:00,\n\
         O2,C1,SH-001,12.505,2026-03-01 07:46:00,\n\
         O3,GHOST,SH-001,9,2026-03-01 07:47:00,\n\
         O4,C2,SYD-001,18,2026-10-04 02:30:00,\n\
         O5,C2,SYD-001,18,2026-10-04T03:30:00+11:00,BDAY-7KQ2X\n\
         O6,C1,SH-001,abc,2026-03-01 07:48:00,\n\
         O7,C1,SH-001,-3.20,2026-03-02T08:00:00Z,\n\
         O1,C1,SH-001,13.00,2026-03-01 07:45:00,\n",
    );
    let r = import(&store, ImportKind::Orders, &orders).await;
    assert_eq!(r.rows, 8);
    // The repeated O1 is either superseded in its batch or an update of the
    // earlier batch, depending on batch size; every row is accounted for.
    assert_eq!(
        (r.inserted, r.rejected, r.updated + r.superseded),
        (3, 4, 1),
        "{r:#?}"
    );
    assert_eq!(
        r.inserted + r.updated + r.unchanged + r.rejected + r.superseded,
        r.rows
    );
    let found: Vec<(u64, Option<&str>)> = r.errors.iter().map(|e| (e.line, e.field)).collect();
    assert_eq!(
        found,
        vec![
            (3, Some("amount")),
            (4, Some("customer_id")),
            (5, Some("ordered_at")),
            (7, Some("amount"))
        ]
    );
    assert!(
        r.errors[0].reason.contains("3 decimal"),
        "{}",
        r.errors[0].reason
    );
    assert!(r.errors[1].reason.contains("GHOST"));
    assert!(r.errors[2].reason.contains("does not exist"));
    let c1 = store
        .orders_of(&CustomerId::parse("C1").unwrap())
        .await
        .unwrap();
    assert_eq!(c1.len(), 2);
    // The later row with the same id wins.
    assert_eq!(c1[0].amount.fen(), 1300);
    assert_eq!(c1[1].amount.fen(), -320);
    let c2 = store
        .orders_of(&CustomerId::parse("C2").unwrap())
        .await
        .unwrap();
    assert_eq!(c2[0].coupon_code.as_deref(), Some("BDAY-7KQ2X"));
    assert_eq!(c2[0].local_time.to_string(), "2026-10-04 03:30:00");

    // Re-importing adds nothing; the final state is the same. (O1 appears twice
    // in different batches, so both of its rows are written again in order.)
    let again = import(&store, ImportKind::Orders, &orders).await;
    assert_eq!(again.inserted, 0);
    assert_eq!(store.counts().await.unwrap().orders, 3);
    let c1_again = store
        .orders_of(&CustomerId::parse("C1").unwrap())
        .await
        .unwrap();
    assert_eq!(c1_again, c1);
}

async fn json_lines_import_like_csv(store: SharedStore) {
    let dir = tempfile::tempdir().unwrap();
    let customers = write(
        dir.path(),
        "customers.jsonl",
        r#"{"id":"C1","name":"王小明","phone":"13800138000","tags":["vegetarian","spicy"],"sms_opt_in":true,"birthday":"02-29","store":"SH-001"}
{"id":"C2","phone":"12345678901"}
not json
["an","array"]
{"id":"C3","birthdy":"01-01"}
{"id":"C4","email_opt_in":null,"gender":"f","joined_at":"2026-01-01"}
"#,
    );
    let r = import(&store, ImportKind::Customers, &customers).await;
    assert_eq!((r.inserted, r.rejected), (2, 4), "{r:#?}");
    assert_eq!(r.ignored_columns, vec!["gender".to_string()]);
    let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 5]);
    assert!(r.errors[3].reason.contains("did you mean \"birthday\""));
    let c1 = store
        .customer(&CustomerId::parse("C1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c1.tags.to_db(), "vegetarian;spicy");

    let orders = write(
        dir.path(),
        "orders.jsonl",
        r#"{"id":"O1","customer_id":"C1","store":"SH-001","amount":12.5,"ordered_at":"2026-03-01 07:45:00"}
{"id":"O2","customer_id":"C1","store":"SH-001","amount":12.505,"ordered_at":"2026-03-01 07:45:00"}
"#,
    );
    let r = import(&store, ImportKind::Orders, &orders).await;
    assert_eq!((r.inserted, r.rejected), (1, 1), "{r:#?}");
    assert_eq!(
        store
            .orders_of(&CustomerId::parse("C1").unwrap())
            .await
            .unwrap()[0]
            .amount
            .fen(),
        1250
    );
}

store_contract!(
    customers_with_bad_rows_keep_the_good_ones,
    orders_with_bad_rows_keep_the_good_ones,
    json_lines_import_like_csv,
);

/// `reltuples` and `relallvisible` of `orders`: what the last VACUUM or
/// ANALYZE counted (-1 rows: never), and the pages it marked all-visible.
async fn orders_upkeep(url: &str) -> (f32, i32) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_as("SELECT reltuples, relallvisible FROM pg_class WHERE oid = 'orders'::regclass")
        .fetch_one(&mut c)
        .await
        .unwrap()
}

fn orders_csv(dir: &Path, name: &str, ids: std::ops::Range<u32>) -> PathBuf {
    let rows: String = ids
        .map(|i| format!("B{i:04},C1,SH-001,12.50,2026-03-01 07:45:00,\n"))
        .collect();
    write(
        dir,
        name,
        &format!("id,customer_id,store,amount,ordered_at,coupon_code\n{rows}"),
    )
}

/// A load of at least a fifth of a table's rows is followed by VACUUM
/// ANALYZE on PostgreSQL (statistics, pages marked all-visible), as
/// autovacuum would do, if it runs; a smaller one is left to autovacuum.
#[tokio::test]
async fn postgres_a_large_load_is_vacuumed_and_analyzed() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let customers = write(dir.path(), "c.csv", "id,store\nC1,SH-001\n");
    import(&db.store, ImportKind::Customers, &customers).await;
    assert_eq!(orders_upkeep(&db.url).await.0, -1.0, "never counted");
    let first = orders_csv(dir.path(), "first.csv", 0..500);
    assert_eq!(
        import(&db.store, ImportKind::Orders, &first).await.inserted,
        500
    );
    let (rows, visible) = orders_upkeep(&db.url).await;
    assert_eq!(rows, 500.0);
    assert!(visible > 0, "no page marked all-visible");
    // 99 new rows are less than a fifth of 500: no upkeep.
    import(
        &db.store,
        ImportKind::Orders,
        &orders_csv(dir.path(), "few.csv", 500..599),
    )
    .await;
    assert_eq!(orders_upkeep(&db.url).await.0, 500.0);
    // 121 more are over a fifth of the 500 last counted.
    import(
        &db.store,
        ImportKind::Orders,
        &orders_csv(dir.path(), "more.csv", 599..720),
    )
    .await;
    assert_eq!(orders_upkeep(&db.url).await.0, 720.0);
    db.cleanup().await;
}

/// The demo shop is loaded like an import: VACUUM ANALYZE afterwards.
#[tokio::test]
async fn postgres_the_demo_shop_is_vacuumed_and_analyzed() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let stores = outreach::demo::demo_stores();
    db.store.upsert_stores(&stores, now()).await.unwrap();
    let generator = outreach::demo::Generator::new(7, 50, now(), stores);
    let (_, orders) = outreach::import::write_records(&db.store, generator, 20, now(), |_, _| {})
        .await
        .unwrap();
    let (rows, visible) = orders_upkeep(&db.url).await;
    assert_eq!(rows, orders as f32);
    assert!(visible > 0, "no page marked all-visible");
    db.cleanup().await;
}
