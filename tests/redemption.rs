//! Coupon redemption at order import, and campaign figures, on every store:
//! an order carrying an issued code redeems it once; every other use is
//! refused with its reason in the import report, and the order is kept.

mod common;
#[path = "common/shop.rs"]
mod shop;

use std::path::{Path, PathBuf};

use outreach::import::{ImportKind, ImportOptions, ImportReport, ParseContext, import_file};
use outreach::store::SharedStore;
use shop::{SHANGHAI, campaign, run_at, stores, t, templates};

const CUSTOMERS: &str = "id,name,phone,email,wechat_openid,birthday,store,tags,sms_opt_in,email_opt_in,wechat_opt_in,joined_at
C1,王小明,13800138000,,,03-05,SH-001,,true,,,2025-01-02 08:00:00
C2,李雷,13900139000,,,03-05,SH-001,,true,,,2025-01-02 08:00:00
";

const BIRTHDAY: &str = "id: bday\nschedule: \"0 10 * * *\"\ntrigger: { type: birthday, days_before: 0 }\n\
    coupon: { kind: amount_off, value: 10, min_spend: 30, valid_days: 7 }\nchannels: [sms]\ntemplate: birthday\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn import(store: &SharedStore, kind: ImportKind, path: &Path) -> ImportReport {
    let ctx = ParseContext::new(store.stores().await.unwrap(), SHANGHAI);
    let options = ImportOptions {
        batch_size: 2,
        progress: false,
        print_rejects: false,
    };
    import_file(
        store.clone(),
        kind,
        path,
        ctx,
        &options,
        t("2027-03-20T00:00:00Z"),
    )
    .await
    .unwrap()
}

/// Two customers with a birthday coupon each (¥10 off from ¥30, issued
/// 2027-03-05 10:00, valid for 7 local days: until 2027-03-12 00:00);
/// returns their codes.
async fn shop_with_coupons(store: &SharedStore, dir: &Path) -> (String, String) {
    store
        .upsert_stores(&stores(), t("2025-01-01T00:00:00Z"))
        .await
        .unwrap();
    let r = import(
        store,
        ImportKind::Customers,
        &write(dir, "c.csv", CUSTOMERS),
    )
    .await;
    assert_eq!(r.rejected, 0, "{:?}", r.errors);
    let tpl = templates();
    let c = campaign(BIRTHDAY, &tpl);
    let report = run_at(store, &c, &tpl, "2027-03-05T10:00:00+08:00", None).await;
    assert_eq!(report.coupons, 2, "{report:?}");
    let coupons = store.coupons_for("bday").await.unwrap();
    let code_of = |cid: &str| {
        coupons
            .iter()
            .find(|c| c.customer_id == cid)
            .map(|c| c.code.clone())
            .unwrap()
    };
    (code_of("C1"), code_of("C2"))
}

fn refusal_of(r: &ImportReport, line: u64) -> &str {
    r.coupon_refusals
        .iter()
        .find(|e| e.line == line)
        .map(|e| e.reason.as_str())
        .unwrap_or_else(|| panic!("no coupon refusal on line {line}: {:?}", r.coupon_refusals))
}

async fn a_code_redeems_once_and_every_refusal_says_why(store: SharedStore) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = shop_with_coupons(&store, dir.path()).await;
    let orders = format!(
        "id,customer_id,store,amount,ordered_at,coupon_code
O1,C1,SH-001,25.00,2027-03-06 08:00:00,{a}
O2,C1,SH-001,40.00,2027-03-07 08:00:00,{a}
O3,C2,SH-001,40.00,2027-03-06 09:00:00,{a}
O4,C1,SH-001,12.00,2027-03-06 09:30:00,SHOP-OWN-5
O5,C2,SH-001,19.99,2027-03-06 10:00:00,{b}
O6,C2,SH-001,50.00,2027-03-13 00:00:00,{b}
O7,C2,SH-001,50.00,2027-03-05 09:59:00,{b}
"
    );
    let path = write(dir.path(), "orders.csv", &orders);
    let r = import(&store, ImportKind::Orders, &path).await;
    assert_eq!((r.inserted, r.rejected), (7, 0), "every order is kept");
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.coupons.redeemed, 1, "{r:?}");
    assert_eq!(r.coupons.not_ours, 1);
    assert_eq!(r.coupons.refused, 5, "{:?}", r.coupon_refusals);
    // Line numbers count the header: order On is on line n + 1.
    assert!(
        refusal_of(&r, 3).contains(&format!(
            "coupon {a} was already redeemed by order O1 at 2027-03-06 08:00"
        )),
        "{}",
        refusal_of(&r, 3)
    );
    assert!(refusal_of(&r, 4).contains("was issued to customer C1"));
    assert!(
        refusal_of(&r, 6).contains("at least ¥30.00, this order comes to ¥29.99"),
        "{}",
        refusal_of(&r, 6)
    );
    assert!(refusal_of(&r, 7).contains("expired at 2027-03-12 00:00"));
    assert!(refusal_of(&r, 8).contains("issued at 2027-03-05 10:00"));
    assert!(r.summary().contains("coupons: 1 redeemed, 5 refused"));

    let redeemed: Vec<_> = store
        .coupons_for("bday")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.redeemed_order_id.map(|o| (c.code, o, c.redeemed_at)))
        .collect();
    assert_eq!(
        redeemed,
        vec![(
            a.clone(),
            "O1".to_owned(),
            Some(t("2027-03-06T08:00:00+08:00"))
        )]
    );

    // Importing the same file again changes nothing and redeems nothing twice.
    let again = import(&store, ImportKind::Orders, &path).await;
    assert_eq!((again.unchanged, again.coupons.redeemed), (7, 0));
    assert_eq!(again.coupons.already_held, 1);
    assert_eq!(again.coupons.refused, 5);

    // Figures: 2 issued, 1 redeemed by a ¥25 order.
    let stats = store.campaign_stats(Some("bday")).await.unwrap();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.count("queued") + s.count("deferred"), 2);
    assert_eq!((s.coupons_issued, s.coupons_redeemed), (2, 1));
    assert!((s.redemption_rate - 0.5).abs() < 1e-9);
    assert_eq!(s.revenue_fen, 2500);
    assert!(store.campaign_stats(Some("nope")).await.unwrap().is_empty());
}

async fn a_corrected_order_releases_its_coupon(store: SharedStore) {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = shop_with_coupons(&store, dir.path()).await;
    let first = format!(
        "id,customer_id,store,amount,ordered_at,coupon_code\nO1,C1,SH-001,25.00,2027-03-06 08:00:00,{a}\n"
    );
    let r = import(
        &store,
        ImportKind::Orders,
        &write(dir.path(), "1.csv", &first),
    )
    .await;
    assert_eq!(r.coupons.redeemed, 1);
    // The till corrects O1 (no coupon after all); O2 then uses the code.
    let fixed = format!(
        "id,customer_id,store,amount,ordered_at,coupon_code\n\
         O1,C1,SH-001,35.00,2027-03-06 08:00:00,\n\
         O2,C1,SH-001,30.00,2027-03-07 08:00:00,{a}\n"
    );
    let r = import(
        &store,
        ImportKind::Orders,
        &write(dir.path(), "2.csv", &fixed),
    )
    .await;
    assert_eq!((r.coupons.redeemed, r.coupons.refused), (1, 0), "{r:?}");
    let c = store.coupons_for("bday").await.unwrap();
    let held: Vec<_> = c
        .iter()
        .filter_map(|c| c.redeemed_order_id.clone())
        .collect();
    assert_eq!(held, vec!["O2".to_owned()]);
    let s = &store.campaign_stats(Some("bday")).await.unwrap()[0];
    assert_eq!(s.revenue_fen, 3000);
}

store_contract!(
    a_code_redeems_once_and_every_refusal_says_why,
    a_corrected_order_releases_its_coupon,
);
