//! The segments job on hand-made shops where the right answer is known. Each
//! test runs on SQLite, and on PostgreSQL when OUTREACH_TEST_DATABASE_URL is set.

mod common;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use outreach::domain::{
    Birthday, Consent, Customer, CustomerId, Money, Order, OrderId, StoreCode, StoreInfo, Tags,
};
use outreach::segments::attributes::{CustomerAttributes, SegmentKind, Transition};
use outreach::segments::{CustomerProfile, RecomputeMode, SegmentRunReport, job, plan};
use outreach::store::{Backend, SharedStore};

const SHANGHAI: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn store_info(code: &str, tz: chrono_tz::Tz) -> StoreInfo {
    StoreInfo {
        code: StoreCode::parse(code).unwrap(),
        name: format!("{code} 店"),
        sms_signature: "早安包子铺".into(),
        timezone: tz,
    }
}

fn customer(id: &str, store: &str, joined: &str) -> Customer {
    Customer {
        id: CustomerId::parse(id).unwrap(),
        name: None,
        phone: None,
        email: None,
        wechat_openid: None,
        birthday: None,
        store: Some(StoreCode::parse(store).unwrap()),
        tags: Tags::default(),
        sms_opt_in: Consent::Unknown,
        email_opt_in: Consent::Unknown,
        wechat_opt_in: Consent::Unknown,
        joined_at: Some(t(joined)),
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

/// A campaigns folder whose `segments.yaml` is `yaml`.
fn segments_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_segments(dir.path(), yaml);
    dir
}

/// Write `yaml` as the `segments.yaml` of the campaigns folder `dir`.
fn write_segments(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("segments.yaml"), yaml).unwrap();
}

/// The custom segments a profile lists, by name.
fn members(p: &CustomerProfile) -> Vec<String> {
    p.memberships.iter().map(|m| m.segment.clone()).collect()
}

async fn try_run_in(
    store: &SharedStore,
    dir: &Path,
    now: &str,
    mode: RecomputeMode,
) -> Result<SegmentRunReport, job::JobError> {
    job::run(store.as_ref(), dir, SHANGHAI, t(now), mode).await
}

async fn run_in(
    store: &SharedStore,
    dir: &Path,
    now: &str,
    mode: RecomputeMode,
) -> SegmentRunReport {
    try_run_in(store, dir, now, mode)
        .await
        .expect("segments job")
}

async fn run(store: &SharedStore, now: &str, mode: RecomputeMode) -> SegmentRunReport {
    run_in(store, Path::new("/nonexistent-campaigns"), now, mode).await
}

/// A full run at `now` that is meant to fail; panics with `why` if it ran.
async fn full_run_fails(store: &SharedStore, now: &str, why: &str) {
    let ran = try_run_in(
        store,
        Path::new("/nonexistent-campaigns"),
        now,
        RecomputeMode::Full,
    )
    .await;
    assert!(ran.is_err(), "{why}");
}

/// A full run's plan at `now` (the default rules), in batches of two
/// customers.
async fn full_plan_in_pairs(store: &SharedStore, now: &str) -> outreach::segments::SegmentPlan {
    let file = job::load_file(store.as_ref(), Path::new("/nonexistent-campaigns"))
        .await
        .unwrap();
    let mut plan = job::plan(store.as_ref(), &file, SHANGHAI, t(now), RecomputeMode::Full)
        .await
        .unwrap();
    plan.batch_size = 2;
    plan.scattered_batch_size = 2;
    plan
}

async fn profile(store: &SharedStore, id: &str, now: &str) -> CustomerProfile {
    profile_in(store, Path::new("/nonexistent-campaigns"), id, now).await
}

async fn profile_in(store: &SharedStore, dir: &Path, id: &str, now: &str) -> CustomerProfile {
    let file = job::load_file(store.as_ref(), dir).await.unwrap();
    let plan = job::plan(store.as_ref(), &file, SHANGHAI, t(now), RecomputeMode::Full)
        .await
        .unwrap();
    store
        .customer_profile(&CustomerId::parse(id).unwrap(), &plan)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no profile for {id}"))
}

async fn attrs(store: &SharedStore, id: &str, now: &str) -> CustomerAttributes {
    profile(store, id, now).await.attributes
}

/// Ten customers with 1..=10 orders of ¥10 each, two with no orders.
async fn ten_buyers(store: &SharedStore) -> StoreInfo {
    let sh = store_info("SH-001", SHANGHAI);
    store
        .upsert_stores(std::slice::from_ref(&sh), t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    let mut customers: Vec<Customer> = (1..=10)
        .map(|i| customer(&format!("C{i:02}"), "SH-001", "2025-01-01T00:00:00+08:00"))
        .collect();
    customers.push(customer("N1", "SH-001", "2025-01-01T00:00:00+08:00"));
    customers.push(customer("N2", "SH-001", "2026-11-20T09:00:00+08:00"));
    store
        .upsert_customers(&customers, t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    let mut orders = Vec::new();
    for i in 1..=10u32 {
        for k in 0..i {
            // Customer i's last order is i days before 2026-11-23, at 08:00.
            let day = 23 - i64::from(i) - i64::from(k) * 3;
            let at = (t("2026-11-23T08:00:00+08:00") - Duration::days(23 - day)).to_rfc3339();
            orders.push(order(
                &format!("O{i:02}-{k:02}"),
                &format!("C{i:02}"),
                &sh,
                &at,
                "10",
            ));
        }
    }
    store
        .upsert_orders(&orders, t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    sh
}

const NOW: &str = "2026-11-23T12:00:00+08:00";

async fn quintiles_follow_rank_and_ties_share_a_score(store: SharedStore) {
    ten_buyers(&store).await;
    run(&store, NOW, RecomputeMode::Full).await;
    // F: ten buyers ranked by order count; rank r (1 = fewest) scores 1 + 5(r-1)/10.
    for i in 1..=10i64 {
        let a = attrs(&store, &format!("C{i:02}"), NOW).await;
        assert_eq!(a.order_count, i);
        assert_eq!(a.total_spent_fen, i * 1000);
        assert_eq!(a.f_score, Some(1 + (i - 1) / 2), "C{i:02} f");
        assert_eq!(a.m_score, a.f_score, "C{i:02} m");
        // R: C01 ordered most recently (1 day ago) and scores best.
        assert_eq!(a.recency_days, Some(i));
        assert_eq!(a.r_score, Some(1 + (10 - i) / 2), "C{i:02} r");
        assert_eq!(
            a.rfm.as_deref(),
            Some(
                format!(
                    "{}{}{}",
                    a.r_score.unwrap(),
                    a.f_score.unwrap(),
                    a.m_score.unwrap()
                )
                .as_str()
            )
        );
        assert_eq!(a.favorite_daypart.as_deref(), Some("morning"));
        assert_eq!(a.lifecycle, "active");
    }
    // Ties: give C03 a fourth ¥10 order (now tied with C04 on count and spend).
    let sh = store_info("SH-001", SHANGHAI);
    store
        .upsert_orders(
            &[order(
                "O03-extra",
                "C03",
                &sh,
                "2026-10-01T08:00:00+08:00",
                "10",
            )],
            t("2026-11-23T00:00:00Z"),
        )
        .await
        .unwrap();
    run(&store, NOW, RecomputeMode::Full).await;
    let c3 = attrs(&store, "C03", NOW).await;
    let c4 = attrs(&store, "C04", NOW).await;
    assert_eq!(c3.order_count, 4);
    assert_eq!(c3.f_score, c4.f_score, "tied counts share a score");
    assert_eq!(c3.m_score, c4.m_score, "tied spend shares a score");
    // Ranks 3 and 4 tie at rank 3: score 1 + 5*2/10 = 2.
    assert_eq!(c4.f_score, Some(2));
}

/// Customers of SH-001 who joined on 2025-01-01, each with orders given as
/// (local time, yuan): the k-th on 2026-11-(10 + k).
async fn customers_with_orders(
    store: &SharedStore,
    sh: &StoreInfo,
    cases: &[(&str, &[(&str, &str)])],
) {
    let customers: Vec<Customer> = cases
        .iter()
        .map(|(id, _)| customer(id, "SH-001", "2025-01-01T00:00:00+08:00"))
        .collect();
    store
        .upsert_customers(&customers, t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    let mut orders = Vec::new();
    for (id, times) in cases {
        for (k, (hhmm, yuan)) in times.iter().enumerate() {
            let at = format!("2026-11-{:02}T{hhmm}:00+08:00", 10 + k);
            orders.push(order(&format!("{id}-{k}"), id, sh, &at, yuan));
        }
    }
    store
        .upsert_orders(&orders, t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
}

/// A customer's favourite daypart counts visits by their local minute in
/// half-open dayparts (05:00 morning, 11:00 noon, 14:00 afternoon, 17:00
/// evening, which runs past midnight until 05:00); a tie goes to the earlier
/// daypart; refunds and future-dated orders do not count.
async fn dayparts_count_visits_within_their_edges(store: SharedStore) {
    let sh = store_info("SH-001", SHANGHAI);
    store
        .upsert_stores(std::slice::from_ref(&sh), t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    // (customer, [(local time, yuan)], favourite daypart)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 5] = [
        (
            "D1",
            &[("11:00", "10"), ("13:59", "10"), ("05:00", "10")],
            "noon",
        ),
        (
            "D2",
            &[("04:59", "10"), ("23:00", "10"), ("10:59", "10")],
            "evening",
        ),
        (
            "D3",
            &[
                ("14:00", "10"),
                ("16:59", "10"),
                ("05:00", "-10"),
                ("06:00", "-10"),
                ("07:00", "-10"),
            ],
            "afternoon",
        ),
        ("D4", &[("17:00", "10"), ("05:00", "10")], "morning"),
        ("D5", &[("17:00", "10"), ("16:59", "10")], "afternoon"),
    ];
    let shop: Vec<_> = cases.iter().map(|(id, o, _)| (*id, *o)).collect();
    customers_with_orders(&store, &sh, &shop).await;
    let mut orders = Vec::new();
    // D5's two morning orders are dated after today: not yet visits.
    for k in 0..2 {
        let at = format!("2026-11-{:02}T05:00:00+08:00", 25 + k);
        orders.push(order(&format!("D5-future-{k}"), "D5", &sh, &at, "10"));
    }
    store
        .upsert_orders(&orders, t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    run(&store, NOW, RecomputeMode::Full).await;
    for (id, _, daypart) in &cases {
        let a = attrs(&store, id, NOW).await;
        assert_eq!(a.favorite_daypart.as_deref(), Some(*daypart), "{id}");
    }
    assert_eq!(attrs(&store, "D3", NOW).await.order_count, 2);
    assert_eq!(attrs(&store, "D5", NOW).await.order_count, 2);
}

async fn customers_without_orders_have_no_scores(store: SharedStore) {
    ten_buyers(&store).await;
    run(&store, NOW, RecomputeMode::Full).await;
    let n1 = attrs(&store, "N1", NOW).await;
    assert_eq!(n1.order_count, 0);
    assert_eq!(n1.total_spent_fen, 0);
    assert_eq!(n1.recency_days, None);
    assert_eq!(
        (n1.r_score, n1.f_score, n1.m_score, n1.rfm.clone()),
        (None, None, None, None)
    );
    assert_eq!(n1.favorite_daypart, None);
    assert_eq!(n1.avg_order_value_fen, None);
    assert_eq!(n1.value_tier, "regular");
    // Joined nearly two years ago and never ordered: churned.
    assert_eq!(n1.lifecycle, "churned");
    // Joined three days ago: new.
    assert_eq!(attrs(&store, "N2", NOW).await.lifecycle, "new");
}

async fn value_tiers_rank_the_last_365_days(store: SharedStore) {
    ten_buyers(&store).await;
    run(&store, NOW, RecomputeMode::Full).await;
    // 12 customers in the store: VIP = ranks with (r-1)*100 < 10*12, i.e. r <= 2;
    // core: (r-1)*100 < 40*12, i.e. r <= 5.
    let tier = |a: CustomerAttributes| a.value_tier;
    assert_eq!(tier(attrs(&store, "C10", NOW).await), "vip");
    assert_eq!(tier(attrs(&store, "C09", NOW).await), "vip");
    assert_eq!(tier(attrs(&store, "C08", NOW).await), "core");
    assert_eq!(tier(attrs(&store, "C06", NOW).await), "core");
    assert_eq!(tier(attrs(&store, "C05", NOW).await), "regular");
    let sizes = store.segment_sizes().await.unwrap();
    let size = |name: &str| sizes.iter().find(|s| s.segment == name).unwrap().customers;
    assert_eq!(size("vip"), 2);
    assert_eq!(size("core"), 3);
    assert_eq!(size("regular"), 7);
    assert_eq!(size("active"), 10);
    assert_eq!(size("new"), 1);
    assert_eq!(size("churned"), 1);
    assert_eq!(size("lapsed"), 0);
    assert!(
        sizes
            .iter()
            .filter(|s| s.kind == SegmentKind::Lifecycle)
            .count()
            == 5
    );
}

async fn refunds_reduce_spend_but_are_not_visits(store: SharedStore) {
    let sh = store_info("SH-001", SHANGHAI);
    store
        .upsert_stores(std::slice::from_ref(&sh), t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    store
        .upsert_customers(
            &[customer("R1", "SH-001", "2025-01-01T00:00:00+08:00")],
            t("2026-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    store
        .upsert_orders(
            &[
                order("A", "R1", &sh, "2026-09-01T12:00:00+08:00", "30.50"),
                order("B", "R1", &sh, "2026-11-20T19:00:00+08:00", "-10.25"),
            ],
            t("2026-11-21T00:00:00Z"),
        )
        .await
        .unwrap();
    run(&store, NOW, RecomputeMode::Full).await;
    let a = attrs(&store, "R1", NOW).await;
    assert_eq!(a.order_count, 1);
    assert_eq!(a.total_spent_fen, 2025);
    assert_eq!(a.avg_order_value_fen, Some(2025));
    assert_eq!(a.last_order_at, Some(t("2026-09-01T12:00:00+08:00")));
    assert_eq!(a.favorite_daypart.as_deref(), Some("noon"));
    assert_eq!(a.recency_days, Some(83));
    assert_eq!(a.lifecycle, "lapsed");
}

async fn thirty_days_ago_at_2359_local_is_still_active(store: SharedStore) {
    let sh = store_info("SH-001", SHANGHAI);
    let syd = store_info("SYD-001", chrono_tz::Australia::Sydney);
    store
        .upsert_stores(&[sh.clone(), syd.clone()], t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    store
        .upsert_customers(
            &[
                customer("A30", "SH-001", "2025-01-01T00:00:00+08:00"),
                customer("A31", "SH-001", "2025-01-01T00:00:00+08:00"),
                customer("S30", "SYD-001", "2025-01-01T00:00:00+11:00"),
            ],
            t("2026-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    store
        .upsert_orders(
            &[
                // Exactly 30 local days before 2026-11-23, a minute before midnight.
                order("a30", "A30", &sh, "2026-10-24T23:59:00+08:00", "12"),
                // A minute later it is 30 days before the 24th: 31 days ago today.
                order("a31", "A31", &sh, "2026-10-23T23:59:00+08:00", "12"),
                // Sydney: 30 local days before Sydney's today.
                order("s30", "S30", &syd, "2026-10-25T23:59:00+11:00", "12"),
            ],
            t("2026-11-01T00:00:00Z"),
        )
        .await
        .unwrap();
    // 2026-11-23 23:30 Shanghai = 2026-11-24 02:30 Sydney (UTC+11).
    let now = "2026-11-23T23:30:00+08:00";
    run(&store, now, RecomputeMode::Full).await;
    let a30 = attrs(&store, "A30", now).await;
    assert_eq!(a30.recency_days, Some(30));
    assert_eq!(a30.lifecycle, "active");
    assert_eq!(a30.favorite_daypart.as_deref(), Some("evening"));
    let a31 = attrs(&store, "A31", now).await;
    assert_eq!(a31.recency_days, Some(31));
    assert_eq!(a31.lifecycle, "at_risk");
    // In Sydney it is already the 24th: the order of the 25th (local) is 30 days ago.
    let s30 = attrs(&store, "S30", now).await;
    assert_eq!(s30.recency_days, Some(30));
    assert_eq!(s30.lifecycle, "active");
    // A minute after Sydney's midnight plus one day, it is 31 days.
    let later = "2026-11-24T21:01:00+08:00";
    run(&store, later, RecomputeMode::Full).await;
    assert_eq!(attrs(&store, "S30", later).await.lifecycle, "at_risk");
    assert_eq!(attrs(&store, "A30", later).await.lifecycle, "at_risk");
}

/// The day a customer joined is the local date in the offset of that day,
/// not of today: Sydney's winter (UTC+10) join seen in summer (UTC+11) and
/// the other way round, half an hour from midnight. Expressions read the
/// stored day; the profile works it out from the instant. Runs building on
/// the previous one date again a customer whose join or store changed.
async fn the_day_joined_is_dated_in_the_offset_of_that_day(store: SharedStore) {
    let syd = store_info("SYD-001", chrono_tz::Australia::Sydney);
    let sh = store_info("SH-001", SHANGHAI);
    store
        .upsert_stores(&[syd, sh], t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    let winter_join = customer("WINTER", "SYD-001", "2026-06-30T23:30:00+10:00");
    let summer_join = customer("SUMMER", "SYD-001", "2026-01-15T00:30:00+11:00");
    store
        .upsert_customers(
            &[winter_join.clone(), summer_join.clone()],
            t("2026-07-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let segments: String = [146, 306, 307, 312, 473, 474]
        .iter()
        .map(|d| format!("  joined_{d}_days_ago: \"days_since_joined == {d}\"\n"))
        .collect();
    let dir = segments_dir(&format!("segments:\n{segments}"));
    let check = async |now: &str, id: &str, days: i64| {
        let p = profile_in(&store, dir.path(), id, now).await;
        assert_eq!(p.attributes.days_since_joined, days, "{id} at {now}");
        assert_eq!(
            members(&p),
            [format!("joined_{days}_days_ago")],
            "{id} at {now}"
        );
    };
    // Sydney's summer: 2026-11-23 15:00 local (UTC+11).
    let summer = "2026-11-23T12:00:00+08:00";
    run_in(&store, dir.path(), summer, RecomputeMode::Full).await;
    check(summer, "WINTER", 146).await;
    check(summer, "SUMMER", 312).await;
    // Sydney's winter: 2027-05-03 14:00 local (UTC+10).
    let winter = "2027-05-03T12:00:00+08:00";
    for mode in [RecomputeMode::Incremental, RecomputeMode::Full] {
        run_in(&store, dir.path(), winter, mode).await;
        check(winter, "WINTER", 307).await;
        check(winter, "SUMMER", 473).await;
    }
    // WINTER joined a day later after all; SUMMER moves to Shanghai, where
    // her join was still the 14th. Then both are put back.
    let mut later_join = winter_join.clone();
    later_join.joined_at = Some(t("2026-07-01T23:30:00+10:00"));
    let mut moved = summer_join.clone();
    moved.store = Some(StoreCode::parse("SH-001").unwrap());
    for (customers, mode, days) in [
        ([later_join, moved], RecomputeMode::Incremental, (306, 474)),
        ([winter_join, summer_join], RecomputeMode::Full, (307, 473)),
    ] {
        store
            .upsert_customers(&customers, t("2027-05-01T00:00:00Z"))
            .await
            .unwrap();
        let report = run_in(&store, dir.path(), winter, mode).await;
        assert_eq!(report.mode, mode);
        check(winter, "WINTER", days.0).await;
        check(winter, "SUMMER", days.1).await;
    }
    // The Sydney store's zone was wrong: it is in Shanghai's. Every day
    // joined there is dated again (SUMMER's was the 14th in Shanghai).
    store
        .upsert_stores(
            &[store_info("SYD-001", SHANGHAI)],
            t("2027-05-02T00:00:00Z"),
        )
        .await
        .unwrap();
    let report = run_in(&store, dir.path(), winter, RecomputeMode::Incremental).await;
    assert_eq!(report.mode, RecomputeMode::Full, "{:?}", report.full_reason);
    check(winter, "WINTER", 307).await;
    check(winter, "SUMMER", 474).await;
}

async fn stage_changes_are_recorded_as_transitions(store: SharedStore) {
    ten_buyers(&store).await;
    run(&store, NOW, RecomputeMode::Full).await;
    let p = profile(&store, "C10", NOW).await;
    assert!(
        p.transitions
            .iter()
            .any(|t| t.segment == "lifecycle:active" && t.change == "entered")
    );
    // Running again at the same time changes nothing and records nothing.
    let again = run(&store, NOW, RecomputeMode::Full).await;
    assert_eq!((again.outcome.changed, again.outcome.transitions), (0, 0));
    // 25 days later C10 (last order 10 days before NOW) is 35 days out: at risk.
    let later = "2026-12-18T12:00:00+08:00";
    run(&store, later, RecomputeMode::Incremental).await;
    let p = profile(&store, "C10", later).await;
    assert_eq!(p.attributes.lifecycle, "at_risk");
    let newest: Vec<(String, String)> = p
        .transitions
        .iter()
        .filter(|t| t.at == chrono::DateTime::parse_from_rfc3339(later).unwrap())
        .map(|t| (t.segment.clone(), t.change.clone()))
        .collect();
    assert!(
        newest.contains(&("lifecycle:active".into(), "left".into())),
        "{newest:?}"
    );
    assert!(
        newest.contains(&("lifecycle:at_risk".into(), "entered".into())),
        "{newest:?}"
    );
}

/// A full run at `now` that ranks and evaluates everyone (the previous
/// run's state is forgotten first) changes nothing: no row, no transition,
/// and the customers `ids` as in `before`.
async fn full_run_changes_nothing(
    store: &SharedStore,
    dir: &Path,
    ids: &[String],
    now: &str,
    before: &[String],
    what: &str,
) {
    store.set_meta(plan::STATE_KEY, "").await.unwrap();
    let full = run_in(store, dir, now, RecomputeMode::Full).await;
    assert_eq!(
        (full.outcome.changed, full.outcome.transitions),
        (0, 0),
        "{what}: a full run changed something"
    );
    assert_eq!(before, snapshot_in(store, dir, ids, now).await, "{what}");
}

/// Every customer's attributes and memberships, for comparing runs.
async fn snapshot_in(store: &SharedStore, dir: &Path, ids: &[String], now: &str) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let mut p = profile_in(store, dir, id, now).await;
        p.attributes.computed_at = DateTime::<Utc>::MIN_UTC;
        out.push(format!(
            "{:?} {:?}",
            p.attributes,
            p.memberships.iter().map(|m| &m.segment).collect::<Vec<_>>()
        ));
    }
    out
}

async fn incremental_and_full_give_identical_results(store: SharedStore) {
    runs_follow_every_change(store, RecomputeMode::Incremental).await;
}

/// A full run building on the previous one ranks and evaluates only the
/// customers whose figures or record changed and those a threshold or the
/// date moved past: it gives what a run ranking everyone gives.
async fn a_full_run_that_builds_on_the_previous_one_misses_nothing(store: SharedStore) {
    runs_follow_every_change(store, RecomputeMode::Full).await;
}

/// New orders, refunds, future-dated orders, new customers, tag and
/// birthday changes and the passing of time, each followed by a run in
/// `mode` and then by a full run ranking everyone, which must change
/// nothing.
async fn runs_follow_every_change(store: SharedStore, mode: RecomputeMode) {
    let sh = ten_buyers(&store).await;
    let mut ids: Vec<String> = (1..=10).map(|i| format!("C{i:02}")).collect();
    ids.extend(["N1".into(), "N2".into(), "L1".into(), "N3".into()]);
    store
        .upsert_customers(
            &[customer("L1", "SH-001", "2024-01-01T00:00:00+08:00")],
            t("2026-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    // L1: an order 80 days ago (inside the 90-day window, which it leaves later),
    // and one dated in the future (it becomes current later).
    store
        .upsert_orders(
            &[
                order("l1-a", "L1", &sh, "2026-09-04T07:30:00+08:00", "25"),
                order("l1-b", "L1", &sh, "2026-12-30T15:00:00+08:00", "18"),
            ],
            t("2026-11-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let dir = segments_dir(
        "segments:\n  soon: \"recency_days <= 3\"\n  veg: \"tags contains 'vegetarian'\"\n  \
         big: \"total_spent >= 50\"\n  champ: \"r_score >= 4 and f_score >= 4\"\n  \
         party: \"days_to_birthday <= 10\"\n  rich: \"m_score == 5\"\n  \
         recent: \"order_count_90d >= 1\"\n",
    );
    let dir = dir.path();
    run_in(&store, dir, NOW, RecomputeMode::Full).await;
    let in_rich = |p: CustomerProfile| p.memberships.iter().any(|m| m.segment == "rich");
    assert!(in_rich(profile_in(&store, dir, "C09", NOW).await));
    let mut step = 0;
    for (now, new_orders) in [
        (
            "2026-11-24T12:00:00+08:00",
            // C05 overtakes C09, whose money score drops from 5 to 4
            // without an order of her own.
            vec![
                ("C05", "2026-11-24T09:00:00+08:00", "16"),
                ("C05", "2026-11-24T10:00:00+08:00", "100"),
            ],
        ),
        (
            "2026-12-05T12:00:00+08:00",
            vec![("N1", "2026-12-01T10:00:00+08:00", "40")],
        ),
        ("2027-01-02T12:00:00+08:00", vec![]),
        (
            "2027-03-01T12:00:00+08:00",
            vec![("C01", "2027-02-28T18:00:00+08:00", "-5")],
        ),
        ("2027-12-01T12:00:00+08:00", vec![]),
    ] {
        step += 1;
        let orders: Vec<Order> = new_orders
            .iter()
            .enumerate()
            .map(|(k, (c, at, y))| order(&format!("new-{step}-{k}"), c, &sh, at, y))
            .collect();
        store.upsert_orders(&orders, t(now)).await.unwrap();
        if step == 1 {
            // A new customer without orders: the incremental run must find her.
            store
                .upsert_customers(
                    &[customer("N3", "SH-001", "2026-11-24T08:00:00+08:00")],
                    t(now),
                )
                .await
                .unwrap();
        }
        if step == 2 {
            // A tag and a birthday change: custom segments must follow.
            let mut n2 = customer("N2", "SH-001", "2026-11-20T09:00:00+08:00");
            n2.tags = Tags::parse("vegetarian").unwrap();
            n2.birthday = Some(Birthday::parse("12-10").unwrap());
            store.upsert_customers(&[n2], t(now)).await.unwrap();
        }
        let ran = run_in(&store, dir, now, mode).await;
        assert_eq!(ran.mode, mode, "step {step}: {:?}", ran.full_reason);
        if step == 1 && mode == RecomputeMode::Incremental {
            assert_eq!(
                ran.outcome.recomputed, 2,
                "only C05 has a new order, and N3 is new"
            );
        }
        if step == 1 {
            assert!(
                !in_rich(profile_in(&store, dir, "C09", now).await),
                "a custom segment follows a score that moved with the others' orders"
            );
        }
        let after = snapshot_in(&store, dir, &ids, now).await;
        let what = format!("step {step}, after the {mode} run");
        full_run_changes_nothing(&store, dir, &ids, now, &after, &what).await;
    }
    let sizes = store.segment_sizes().await.unwrap();
    assert!(
        sizes.iter().any(|s| s.segment == "veg" && s.customers == 1),
        "{sizes:?}"
    );
    // The windows really moved: L1's September order left the 90-day window.
    // L1 left `recent` with her September order, on no order of her own.
    let l1 = profile_in(&store, dir, "L1", "2026-12-05T12:00:00+08:00").await;
    assert!(
        l1.transitions
            .iter()
            .any(|x| x.segment == "recent" && x.change == "left"),
        "{:?}",
        l1.transitions
    );
    let l1 = attrs(&store, "L1", "2027-12-01T12:00:00+08:00").await;
    assert_eq!(l1.order_count, 2);
    assert_eq!(l1.order_count_90d, 0);
    assert_eq!(l1.spent_365d_fen, 1800);
}

/// A custom segment reading a score follows a threshold that moved on
/// another customer's order, though nothing stored about the member
/// changed: C05's old order (more than a year ago: no spend of the last
/// 365 days, no visit of late) lifts her total spend past C09's, whose
/// money score drops from 5 to 4 while her figures, stage and tier stay.
async fn a_segment_reading_scores_follows_a_moved_threshold(
    store: SharedStore,
    mode: RecomputeMode,
) {
    let sh = ten_buyers(&store).await;
    let dir = segments_dir("segments:\n  rich: \"m_score == 5\"\n  code: \"rfm == '155'\"\n");
    let dir = dir.path();
    let ids: Vec<String> = (1..=10).map(|i| format!("C{i:02}")).collect();
    run_in(&store, dir, NOW, RecomputeMode::Full).await;
    let before = profile_in(&store, dir, "C09", NOW).await;
    assert_eq!(before.attributes.m_score, Some(5));
    assert_eq!(members(&before), ["code", "rich"]);

    store
        .upsert_orders(
            &[order(
                "old-1",
                "C05",
                &sh,
                "2025-06-01T09:00:00+08:00",
                "100",
            )],
            t("2026-11-23T04:10:00Z"),
        )
        .await
        .unwrap();
    let later = "2026-11-23T12:30:00+08:00";
    let ran = run_in(&store, dir, later, mode).await;
    assert_eq!(ran.mode, mode, "{:?}", ran.full_reason);
    let after = profile_in(&store, dir, "C09", later).await;
    let mut unchanged = before.attributes.clone();
    unchanged.m_score = Some(4);
    unchanged.rfm = Some(format!(
        "{}{}4",
        before.attributes.r_score.unwrap(),
        before.attributes.f_score.unwrap()
    ));
    unchanged.computed_at = after.attributes.computed_at;
    assert_eq!(after.attributes, unchanged, "only C09's money score moved");
    assert!(members(&after).is_empty(), "{:?}", after.memberships);
    for segment in ["rich", "code"] {
        assert!(
            after
                .transitions
                .iter()
                .any(|x| x.segment == segment && x.change == "left" && x.at == t(later)),
            "C09 left {segment}: {:?}",
            after.transitions
        );
    }
    let snapshot = snapshot_in(&store, dir, &ids, later).await;
    let what = format!("after the {mode} run");
    full_run_changes_nothing(&store, dir, &ids, later, &snapshot, &what).await;
}

async fn an_incremental_run_follows_scores_into_segments(store: SharedStore) {
    a_segment_reading_scores_follows_a_moved_threshold(store, RecomputeMode::Incremental).await;
}

async fn a_full_run_building_on_the_previous_follows_scores_into_segments(store: SharedStore) {
    a_segment_reading_scores_follows_a_moved_threshold(store, RecomputeMode::Full).await;
}

/// A full run in batches of two customers (spread over several connections
/// where the backend has them) writes what a run in one batch writes: every
/// customer once, with each stage and tier entered once. The first run
/// fills the empty table (each row written once, ranked) and the one after
/// it compares with the stored rows: the two ways agree.
async fn a_full_run_in_small_batches_gives_what_one_batch_gives(store: SharedStore) {
    let sh = ten_buyers(&store).await;
    let mut ids: Vec<String> = (1..=10).map(|i| format!("C{i:02}")).collect();
    ids.extend(["N1".into(), "N2".into()]);
    let dir = Path::new("/nonexistent-campaigns");
    let plan = full_plan_in_pairs(&store, NOW).await;
    let small = store.recompute_segments(&plan).await.unwrap();
    assert_eq!(small.recomputed, 12);
    assert_eq!(
        small.transitions, 24,
        "each customer enters one stage and one tier, once"
    );
    let after_small = snapshot_in(&store, dir, &ids, NOW).await;
    full_run_changes_nothing(&store, dir, &ids, NOW, &after_small, "after small batches").await;

    // A full run building on that one, in batches of two over every
    // connection: each batch notes its changed customers and histogram
    // changes, which must add up to what a run ranking everyone finds.
    let later = "2026-11-24T12:00:00+08:00";
    let orders = orders_at(
        &sh,
        "later",
        "2026-11-24T09:00:00+08:00",
        &[("C01", "60"), ("C01", "70"), ("C06", "5"), ("N1", "30")],
    );
    store.upsert_orders(&orders, t(later)).await.unwrap();
    // N1 ordered: she is no longer churned.
    noted_run_in_pairs(&store, &ids, later, None, "after small noted batches").await;

    // More changed customers than a run notes: it ranks everyone instead
    // of the customers it noted before it gave up.
    let latest = "2026-11-25T12:00:00+08:00";
    let orders = orders_at(
        &sh,
        "latest",
        "2026-11-25T09:00:00+08:00",
        &[("N2", "45"), ("C03", "300"), ("C07", "80"), ("C10", "2")],
    );
    store.upsert_orders(&orders, t(latest)).await.unwrap();
    noted_run_in_pairs(
        &store,
        &ids,
        latest,
        Some(1),
        "after a run with more changes than it notes",
    )
    .await;
}

/// A full run at `now` building on the previous one, in batches of two,
/// noting at most `noted_at_most` customers if given, which records some
/// transitions and leaves nothing for a run ranking everyone to change.
async fn noted_run_in_pairs(
    store: &SharedStore,
    ids: &[String],
    now: &str,
    noted_at_most: Option<usize>,
    what: &str,
) {
    let mut plan = full_plan_in_pairs(store, now).await;
    assert!(plan.notes_changes(), "{:?}", plan.full_reason);
    if let Some(n) = noted_at_most {
        plan.noted_at_most = n;
    }
    let noted = store.recompute_segments(&plan).await.unwrap();
    assert_eq!(noted.recomputed, 12, "{what}");
    assert!(noted.transitions > 0, "{what}: new orders move stages");
    let dir = Path::new("/nonexistent-campaigns");
    let after = snapshot_in(store, dir, ids, now).await;
    full_run_changes_nothing(store, dir, ids, now, &after, what).await;
}

/// Orders at `at` in store `sh`, one per (customer, yuan) pair, with ids
/// `{prefix}-0`, `{prefix}-1`, …
fn orders_at(sh: &StoreInfo, prefix: &str, at: &str, orders: &[(&str, &str)]) -> Vec<Order> {
    orders
        .iter()
        .enumerate()
        .map(|(k, (c, y))| order(&format!("{prefix}-{k}"), c, sh, at, y))
        .collect()
}

async fn birthdays_count_down_in_local_days(store: SharedStore) {
    let sh = store_info("SH-001", SHANGHAI);
    store
        .upsert_stores(std::slice::from_ref(&sh), t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    let mut leap = customer("B29", "SH-001", "2025-01-01T00:00:00+08:00");
    leap.birthday = Some(Birthday::parse("02-29").unwrap());
    let mut today = customer("B23", "SH-001", "2025-01-01T00:00:00+08:00");
    today.birthday = Some(Birthday::parse("1990-11-23").unwrap());
    store
        .upsert_customers(&[leap, today], t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    run(&store, NOW, RecomputeMode::Full).await;
    assert_eq!(attrs(&store, "B23", NOW).await.days_to_birthday, Some(0));
    // 2027 is common: Feb 29 is celebrated on 2027-02-28, 97 days after 2026-11-23.
    assert_eq!(attrs(&store, "B29", NOW).await.days_to_birthday, Some(97));
}

async fn custom_segments_track_entries_and_exits(store: SharedStore) {
    ten_buyers(&store).await;
    let mut veg = customer("V1", "SH-001", "2025-01-01T00:00:00+08:00");
    veg.tags = Tags::parse("vegetarian;student").unwrap();
    store
        .upsert_customers(&[veg], t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    let dir = segments_dir(
        "segments:\n  frequent: \"order_count >= 8 and favorite_daypart == 'morning'\"\n  \
         veggies: \"tags contains 'vegetarian'\"\n  big: \"total_spent >= 90 and store in ['SH-001']\"\n  \
         soon: \"recency_days <= 3\"\n",
    );
    let first = run_in(&store, dir.path(), NOW, RecomputeMode::Full).await;
    assert!(first.outcome.transitions > 0);
    let sizes = store.segment_sizes().await.unwrap();
    let size = |name: &str| {
        sizes
            .iter()
            .find(|s| s.segment == name)
            .map_or(0, |s| s.customers)
    };
    assert_eq!(size("frequent"), 3, "C08, C09, C10");
    assert_eq!(size("veggies"), 1);
    assert_eq!(size("big"), 2, "¥90 and ¥100");
    assert_eq!(size("soon"), 3, "C01..C03");
    let p = profile_in(&store, dir.path(), "C10", NOW).await;
    assert_eq!(members(&p), ["big", "frequent"]);
    // Two days later C02 and C03 are no longer within 3 days: they leave "soon".
    let later = "2026-11-25T12:00:00+08:00";
    run_in(&store, dir.path(), later, RecomputeMode::Incremental).await;
    let p = profile_in(&store, dir.path(), "C03", later).await;
    assert!(
        p.transitions
            .iter()
            .any(|t| t.segment == "soon" && t.change == "left"),
        "{:?}",
        p.transitions
    );
    assert!(p.memberships.is_empty());
    // A segment removed from the file: its members leave it.
    write_segments(
        dir.path(),
        "segments:\n  veggies: \"tags contains 'vegetarian'\"\n",
    );
    let again = run_in(&store, dir.path(), later, RecomputeMode::Full).await;
    assert_eq!(
        again.outcome.transitions,
        3 + 2 + 1,
        "frequent, big and soon emptied"
    );
    let sizes = store.segment_sizes().await.unwrap();
    assert!(
        sizes
            .iter()
            .all(|s| s.segment != "frequent" && s.segment != "big")
    );
}

async fn a_broken_segments_file_changes_nothing(store: SharedStore) {
    ten_buyers(&store).await;
    let dir = segments_dir("segments:\n  x: \"order_cnt >= 1\"\n");
    let err = try_run_in(&store, dir.path(), NOW, RecomputeMode::Full)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("segments.yaml:2:7"), "{text}");
    assert!(text.contains("did you mean 'order_count'"), "{text}");
    assert!(
        store
            .segment_sizes()
            .await
            .unwrap()
            .iter()
            .all(|s| s.customers == 0)
    );
}

/// Run `sql` on the test database outside the store.
async fn raw_sql(db: &common::TestStore, sql: &'static str) {
    use sqlx::Connection;
    match db.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
    }
}

/// The one integer `sql` selects, on either backend.
async fn raw_count(db: &common::TestStore, sql: &'static str) -> i64 {
    use sqlx::Connection;
    match db.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
    }
}

/// A full run at `now` that fails once phase A has committed its batches:
/// the histogram the thresholds come from cannot be rebuilt.
async fn fail_after_the_figures(db: &common::TestStore, now: &str) {
    raw_sql(
        db,
        "ALTER TABLE segment_histogram RENAME TO segment_histogram_away",
    )
    .await;
    full_run_fails(&db.store, now, "the full run was meant to fail").await;
    raw_sql(
        db,
        "ALTER TABLE segment_histogram_away RENAME TO segment_histogram",
    )
    .await;
}

/// Makes the history refuse every entry of customer C08, on either backend:
/// a statement writing several customers' transitions stops half-way.
async fn history_refuses_c08(db: &common::TestStore) {
    match db.store.backend() {
        // FAIL, not ABORT: SQLite stops the statement without undoing the
        // rows it has already written, as under the job's `OR FAIL`.
        Backend::Sqlite => {
            raw_sql(
                db,
                "CREATE TRIGGER refuse_c08 BEFORE INSERT ON segment_transitions \
                 WHEN NEW.customer_id = 'C08' BEGIN SELECT RAISE(FAIL, 'refused by the test'); END",
            )
            .await
        }
        Backend::Postgres => {
            raw_sql(
                db,
                "CREATE FUNCTION refuse_c08() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.customer_id = 'C08' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER refuse_c08 BEFORE INSERT ON segment_transitions \
                 FOR EACH ROW EXECUTE FUNCTION refuse_c08()",
            )
            .await
        }
    }
}

/// Undoes [`history_refuses_c08`].
async fn history_accepts_c08(db: &common::TestStore) {
    match db.store.backend() {
        Backend::Sqlite => raw_sql(db, "DROP TRIGGER refuse_c08").await,
        Backend::Postgres => raw_sql(db, "DROP TRIGGER refuse_c08 ON segment_transitions").await,
    }
}

/// `newest`, a customer's latest transitions, hold the move from stage
/// `from` to stage `to`.
fn assert_moved(newest: &[Transition], from: &str, to: &str, who: &str) {
    let newest: Vec<(&str, &str)> = newest
        .iter()
        .map(|x| (x.segment.as_str(), x.change.as_str()))
        .collect();
    for step in [
        (format!("lifecycle:{from}"), "left"),
        (format!("lifecycle:{to}"), "entered"),
    ] {
        assert!(
            newest.contains(&(step.0.as_str(), step.1)),
            "{who}: no {step:?} in {newest:?}"
        );
    }
}

/// Each customer's stored ranking and the size of its history.
async fn rankings(store: &SharedStore, ids: &[String], now: &str) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let p = profile(store, id, now).await;
        let a = &p.attributes;
        out.push(format!(
            "{id} {} {} {:?} {:?} {:?} {}",
            a.lifecycle,
            a.value_tier,
            a.r_score,
            a.f_score,
            a.m_score,
            p.transitions.len()
        ));
    }
    out
}

/// A batch of stage, tier and score changes that fails half-way keeps
/// nothing of itself: not the history entries written before the failing
/// one (SQLite writes them `OR FAIL`, which does not undo the statement;
/// the batch's transaction must), not a new stage or score. The next run
/// records every change.
async fn a_failed_batch_of_changes_keeps_nothing(db: &common::TestStore) {
    let store = &db.store;
    ten_buyers(store).await;
    run(store, NOW, RecomputeMode::Full).await;
    let ids: Vec<String> = (1..=10).map(|i| format!("C{i:02}")).collect();
    // 25 days on, C06..C10 (last orders 6..10 days before NOW) are at risk:
    // C06 and C07 are written before C08 is refused.
    let later = "2026-12-18T12:00:00+08:00";
    let before = rankings(store, &ids, later).await;
    history_refuses_c08(db).await;
    full_run_fails(store, later, "the history was meant to refuse C08").await;
    assert_eq!(before, rankings(store, &ids, later).await);

    history_accepts_c08(db).await;
    run(store, later, RecomputeMode::Full).await;
    for id in ["C06", "C07", "C08"] {
        let p = profile(store, id, later).await;
        assert_eq!(p.attributes.lifecycle, "at_risk", "{id}");
        let newest: Vec<Transition> = p
            .transitions
            .into_iter()
            .filter(|x| x.at == t(later))
            .collect();
        assert_moved(&newest, "active", "at_risk", id);
    }
}

/// A first run that stops half-way through writing its ranked rows (in
/// batches of two, the history refuses C08) is followed by a full run that
/// writes the others: every customer ends with one row and one entry into
/// a stage and a tier, and the stopped run's figures are not kept.
async fn a_first_run_stopped_during_its_fill_is_completed_by_the_next(db: &common::TestStore) {
    let store = &db.store;
    ten_buyers(store).await;
    history_refuses_c08(db).await;
    let dir = Path::new("/nonexistent-campaigns");
    let plan = full_plan_in_pairs(store, NOW).await;
    assert!(
        store.recompute_segments(&plan).await.is_err(),
        "the history was meant to refuse C08"
    );
    // SQLite writes C01..C06; on PostgreSQL, the lanes' batches that had
    // not finished when C08's failed are not kept.
    let written = raw_count(db, "SELECT count(*) FROM customer_attributes").await;
    assert!((1..12).contains(&written), "{written} rows written");
    history_accepts_c08(db).await;
    let next = run(store, NOW, RecomputeMode::Full).await;
    assert_eq!(next.outcome.recomputed, 12);
    assert_eq!(
        next.outcome.transitions,
        2 * (12 - written.unsigned_abs()),
        "the customers not written enter a stage and a tier"
    );
    assert_eq!(raw_count(db, "SELECT count(*) FROM segment_fill").await, 0);
    let mut ids: Vec<String> = (1..=10).map(|i| format!("C{i:02}")).collect();
    ids.extend(["N1".into(), "N2".into()]);
    for id in &ids {
        let entered: Vec<String> = profile(store, id, NOW)
            .await
            .transitions
            .iter()
            .map(|x| format!("{} {}", x.change, x.segment.split(':').next().unwrap_or("")))
            .collect();
        assert_eq!(entered, ["entered tier", "entered lifecycle"], "{id}");
    }
    let after = snapshot_in(store, dir, &ids, NOW).await;
    full_run_changes_nothing(store, dir, &ids, NOW, &after, "after the stopped fill").await;
}

/// Stages, tiers and memberships edited in the database by hand
/// stay through a full run building on the previous one (no figure
/// changed, so it re-ranks and re-evaluates no one), and a rebuild puts
/// them right, recording each change.
async fn a_rebuild_puts_right_what_was_edited_by_hand(db: &common::TestStore) {
    let store = &db.store;
    ten_buyers(store).await;
    let campaigns = segments_dir("segments:\n  regulars: \"order_count >= 5\"\n");
    let dir = campaigns.path();
    run_in(store, dir, NOW, RecomputeMode::Full).await;
    let right = profile_in(store, dir, "C10", NOW).await;
    assert_eq!(right.attributes.lifecycle, "active");
    assert_eq!(members(&right), ["regulars"]);
    raw_sql(
        db,
        "UPDATE customer_attributes SET lifecycle = 'churned' \
         WHERE customer_id = 'C10'; DELETE FROM segment_memberships WHERE customer_id = 'C10'",
    )
    .await;
    let full = run_in(store, dir, NOW, RecomputeMode::Full).await;
    assert_eq!(full.outcome.transitions, 0);
    let edited = profile_in(store, dir, "C10", NOW).await;
    assert_eq!(edited.attributes.lifecycle, "churned");
    assert!(edited.memberships.is_empty());

    let rebuild = || job::run(store.as_ref(), dir, SHANGHAI, t(NOW), job::Request::Rebuild);
    let rebuilt = rebuild().await.unwrap();
    assert_eq!(rebuilt.mode, RecomputeMode::Full);
    assert_eq!(
        (rebuilt.outcome.changed, rebuilt.outcome.transitions),
        (1, 3),
        "C10 left churned, entered active and entered regulars"
    );
    let after = profile_in(store, dir, "C10", NOW).await;
    assert_eq!(
        (
            &after.attributes.lifecycle,
            after.attributes.r_score,
            &after.attributes.rfm
        ),
        (
            &right.attributes.lifecycle,
            right.attributes.r_score,
            &right.attributes.rfm
        )
    );
    assert_eq!(members(&after), ["regulars"]);
    assert_moved(&after.transitions[..3], "churned", "active", "C10");
    assert!(
        after.transitions[..3]
            .iter()
            .any(|x| x.segment == "regulars" && x.change == "entered"),
        "{:?}",
        after.transitions
    );
    let again = rebuild().await.unwrap();
    assert_eq!((again.outcome.changed, again.outcome.transitions), (0, 0));
}

/// A full run that stops after writing some figures but before rebuilding
/// the histogram the thresholds come from leaves nothing an incremental run
/// could build on: the next run is a full one, even when asked for an
/// incremental one.
async fn an_interrupted_full_run_is_followed_by_a_full_one(db: &common::TestStore) {
    let store = &db.store;
    ten_buyers(store).await;
    run(store, NOW, RecomputeMode::Full).await;
    fail_after_the_figures(db, "2026-11-24T12:00:00+08:00").await;
    let next = run(
        store,
        "2026-11-24T12:30:00+08:00",
        RecomputeMode::Incremental,
    )
    .await;
    ran_full_because(&next, "the full run started at");
    the_next_run_is_incremental(store, "2026-11-24T13:00:00+08:00").await;
}

/// `report` is of a full run, for a previous one that did not finish:
/// `started`, its mode and start, begins the reason given.
fn ran_full_because(report: &SegmentRunReport, started: &str) {
    assert_eq!(report.mode, RecomputeMode::Full, "{:?}", report.full_reason);
    assert!(
        report
            .full_reason
            .as_deref()
            .is_some_and(|r| r.starts_with(started) && r.ends_with("did not finish")),
        "{:?}",
        report.full_reason
    );
}

/// A run that finished lets the next one at `now` be incremental again.
async fn the_next_run_is_incremental(store: &SharedStore, now: &str) {
    let after = run(store, now, RecomputeMode::Incremental).await;
    assert_eq!(
        after.mode,
        RecomputeMode::Incremental,
        "{:?}",
        after.full_reason
    );
}

/// A first run that stops after its order figures, before any row of
/// attributes is written, is followed by a full run that writes every
/// customer once, each entering one stage and one tier.
async fn an_interrupted_first_run_is_followed_by_a_full_one(db: &common::TestStore) {
    let store = &db.store;
    ten_buyers(store).await;
    fail_after_the_figures(db, NOW).await;
    let next = run(
        store,
        "2026-11-23T12:30:00+08:00",
        RecomputeMode::Incremental,
    )
    .await;
    assert_eq!(next.mode, RecomputeMode::Full, "{:?}", next.full_reason);
    assert_eq!(next.outcome.recomputed, 12);
    assert_eq!(
        next.outcome.transitions, 24,
        "each customer enters one stage and one tier, once"
    );
    assert_eq!(
        (
            next.outcome.changed,
            raw_count(db, "SELECT count(*) FROM segment_fill").await
        ),
        (12, 0),
        "each row written once; the figures the fill wrote from are gone"
    );
    let ids: Vec<String> = ["C01", "C05", "C10", "N1", "N2"]
        .into_iter()
        .map(String::from)
        .collect();
    let dir = Path::new("/nonexistent-campaigns");
    let after = snapshot_in(store, dir, &ids, "2026-11-23T12:30:00+08:00").await;
    full_run_changes_nothing(
        store,
        dir,
        &ids,
        "2026-11-23T12:30:00+08:00",
        &after,
        "after the interrupted first run",
    )
    .await;
}

/// The job's session settings (asynchronous commits among them) must not
/// reach the pool's other users, even when the job fails half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_run_leaves_no_session_settings_in_the_pool() {
    let Some(db) = common::postgres().await else {
        return;
    };
    // One connection: the job's, if it went back to the pool.
    let store = outreach::store::PgStore::open(&db.url, 1).await.unwrap();
    ten_buyers(&db.store).await;
    raw_sql(
        &db,
        "ALTER TABLE segment_histogram RENAME TO segment_histogram_away",
    )
    .await;
    let failed = job::run(
        &store,
        Path::new("/nonexistent-campaigns"),
        SHANGHAI,
        t(NOW),
        RecomputeMode::Full,
    )
    .await;
    assert!(failed.is_err(), "the run was meant to fail");
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(setting, "on");
    drop(store);
    db.cleanup().await;
}

/// The job's temporary tables go to a file for its run alone: the pool's
/// other users keep theirs in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_run_leaves_no_session_settings_in_the_pool() {
    let db = common::sqlite().await;
    // One connection: the job's, if it went back to the pool.
    let store = outreach::store::SqliteStore::open(&db.url, 1)
        .await
        .unwrap();
    ten_buyers(&db.store).await;
    job::run(
        &store,
        Path::new("/nonexistent-campaigns"),
        SHANGHAI,
        t(NOW),
        RecomputeMode::Full,
    )
    .await
    .unwrap();
    // 2 is MEMORY, the pool's setting; 1 would be the job's FILE.
    let setting: i64 = sqlx::query_scalar("PRAGMA temp_store")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(setting, 2);
    drop(store);
    db.cleanup().await;
}

/// A full run asks for an extra connection per core; a daemon whose other
/// jobs hold the rest of the pool gets its run done on fewer, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_full_run_without_a_spare_connection_runs_on_one() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let store = outreach::store::PgStore::open(&db.url, 2).await.unwrap();
    ten_buyers(&db.store).await;
    // Another job holds one of the two connections throughout.
    let held = store.pool().acquire().await.unwrap();
    let report = job::run(
        &store,
        Path::new("/nonexistent-campaigns"),
        SHANGHAI,
        t(NOW),
        RecomputeMode::Full,
    )
    .await
    .expect("the run waits a moment for a second connection, then runs on one");
    assert_eq!(report.outcome.recomputed, 12);
    assert_eq!(report.outcome.transitions, 24);
    drop(held);
    drop(store);
    db.cleanup().await;
}

/// Two runs at once (the daemon's and a command's, from two processes) take
/// turns: each change is recorded once.
async fn runs_at_the_same_time_take_turns(db: &common::TestStore) {
    ten_buyers(&db.store).await;
    let (a, b) = (db.reopen().await, db.reopen().await);
    let dir = Path::new("/nonexistent-campaigns");
    let (first, second) = tokio::join!(
        job::run(a.as_ref(), dir, SHANGHAI, t(NOW), RecomputeMode::Full),
        job::run(b.as_ref(), dir, SHANGHAI, t(NOW), RecomputeMode::Full),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        first.outcome.transitions + second.outcome.transitions,
        24,
        "each customer enters one stage and one tier, once: {first:?} {second:?}"
    );
    let history = profile(&db.store, "C01", NOW).await.transitions;
    assert_eq!(history.len(), 2, "{history:?}");
}

/// A run finding the lease of another (a process that died, say) waits
/// until it runs out or is released, then runs.
async fn a_run_waits_for_the_lease_of_another(store: SharedStore) {
    ten_buyers(&store).await;
    // As a live run renews it: a minute ahead.
    let until = t(NOW) + Duration::seconds(60);
    let held = store.take_run_lease("segments", "elsewhere:1:dead", t(NOW), until);
    assert_eq!(held.await.unwrap(), None);
    let running = store.clone();
    let run = tokio::spawn(async move { run(&running, NOW, RecomputeMode::Full).await });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!run.is_finished(), "the run waits for the lease");
    let sized: u64 = store
        .segment_sizes()
        .await
        .unwrap()
        .iter()
        .map(|s| s.customers)
        .sum();
    assert_eq!(sized, 0, "nothing was computed while waiting");
    store
        .release_run_lease("segments", "elsewhere:1:dead")
        .await
        .unwrap();
    let report = run.await.unwrap();
    assert_eq!(report.outcome.transitions, 24);
    // The run gave its own lease back.
    assert_eq!(
        store
            .take_run_lease("segments", "next", t(NOW), until)
            .await
            .unwrap(),
        None
    );
}

/// The definitions of the indexes of the tables a first run fills, and
/// their primary keys, on PostgreSQL.
async fn deferred_indexes(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT def FROM (
             SELECT indexdef::text AS def FROM pg_indexes
             WHERE tablename IN ('segment_transitions', 'customer_attributes')
             UNION ALL
             SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid IN ('segment_transitions'::regclass, 'customer_attributes'::regclass)
               AND contype = 'p'
         ) d ORDER BY def COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A first run writes the history and the attributes without their
/// indexes and keys and builds them afterwards, as the migrations define
/// them; a run after one that stopped during the fill builds them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_indexes_a_first_run_builds_are_as_migrated() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let migrated = deferred_indexes(&pool).await;
    let names: Vec<&str> = migrated
        .iter()
        .map(|def| {
            def.split_once(" ON ")
                .map_or(def.as_str(), |(head, _)| head)
        })
        .collect();
    assert_eq!(
        names,
        [
            "CREATE INDEX customer_attributes_due",
            "CREATE INDEX customer_attributes_recency",
            "CREATE INDEX segment_transitions_by_customer",
            "CREATE INDEX segment_transitions_by_segment",
            "CREATE UNIQUE INDEX customer_attributes_pkey",
            "CREATE UNIQUE INDEX segment_transitions_pkey",
            "customer_attributes_pkey PRIMARY KEY (customer_id)",
            "segment_transitions_pkey PRIMARY KEY (id)",
        ]
    );
    ten_buyers(&db.store).await;
    let first = run(&db.store, NOW, RecomputeMode::Full).await;
    assert_eq!(first.outcome.transitions, 24);
    assert_eq!(
        deferred_indexes(&pool).await,
        migrated,
        "after the first run"
    );
    // As a run that stopped during its fill leaves them, but for the key
    // of the history: built, not yet the table's key.
    sqlx::raw_sql(
        "DROP INDEX segment_transitions_by_customer; DROP INDEX segment_transitions_by_segment; \
         DROP INDEX customer_attributes_due; DROP INDEX customer_attributes_recency; \
         ALTER TABLE customer_attributes DROP CONSTRAINT customer_attributes_pkey; \
         ALTER TABLE segment_transitions DROP CONSTRAINT segment_transitions_pkey; \
         CREATE UNIQUE INDEX segment_transitions_pkey ON segment_transitions (id)",
    )
    .execute(&pool)
    .await
    .unwrap();
    run(&db.store, NOW, RecomputeMode::Incremental).await;
    assert_eq!(
        deferred_indexes(&pool).await,
        migrated,
        "after the next run"
    );
    let history = profile(&db.store, "C01", NOW).await.transitions;
    assert_eq!(history.len(), 2, "{history:?}");
    drop(pool);
    db.cleanup().await;
}

/// A lease running out far beyond the run's clock was left by a run with
/// `--now` in the future: the run takes it over instead of waiting days.
async fn a_lease_from_a_clock_ahead_is_taken_over(store: SharedStore) {
    ten_buyers(&store).await;
    let ahead = t(NOW) + Duration::days(3);
    let held = store.take_run_lease(
        "segments",
        "ahead:1:dead",
        ahead,
        ahead + Duration::seconds(60),
    );
    assert_eq!(held.await.unwrap(), None);
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        run(&store, NOW, RecomputeMode::Full),
    )
    .await
    .expect("the run does not wait for a lease from days ahead");
    assert_eq!(report.outcome.transitions, 24);
}

/// Wait until `n` of the test database's lock requests are waiting, or
/// `run` has finished (it was not held up).
async fn until_waiting(pool: &sqlx::PgPool, n: i64, run: &tokio::task::JoinHandle<()>) {
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted AND a.datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= n || run.is_finished() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("nothing came to wait for a lock");
}

/// A customer already marked for the segments job, marked again by a writer
/// whose transaction is still open while a segments batch unmarks them:
/// either the batch sees the writer's orders or the mark stays, for each way
/// orders are written (a new order, a re-imported one, an UPDATE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_customer_marked_during_a_run_is_not_lost() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let sh = ten_buyers(&db.store).await;
    run(&db.store, NOW, RecomputeMode::Full).await;
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Writers of orders pause when they commit, all their statements done,
    // for as long as the test holds advisory lock 7.
    sqlx::raw_sql(
        "CREATE FUNCTION pause_marks() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_advisory_lock_shared(7); PERFORM pg_advisory_unlock_shared(7); RETURN NULL; END $$;",
    )
    .execute(&admin)
    .await
    .unwrap();
    // How the writer writes, what it adds to C03's spend (fen), and the run
    // it meets.
    let writes = [
        ("a new order", 100_000, RecomputeMode::Incremental),
        (
            "a new order in a batch with a stored one",
            200_000,
            RecomputeMode::Incremental,
        ),
        ("an UPDATE", 300_000, RecomputeMode::Incremental),
        ("an UPDATE during a full run", 100_000, RecomputeMode::Full),
    ];
    let mut expected = 3_000; // C03: three orders of ¥10
    for (round, (how, adds, mode)) in writes.into_iter().enumerate() {
        // C03 is marked, and committed, before the writer comes.
        let marking = order(
            &format!("O03-m{round}"),
            "C03",
            &sh,
            "2026-11-22T09:00:00+08:00",
            "0",
        );
        db.store.upsert_orders(&[marking], t(NOW)).await.unwrap();
        let mut holder = admin.acquire().await.unwrap();
        sqlx::query("SELECT pg_advisory_lock(7)")
            .execute(&mut *holder)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE CONSTRAINT TRIGGER pause_at_commit AFTER INSERT OR UPDATE ON orders
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pause_marks()",
        )
        .execute(&admin)
        .await
        .unwrap();
        let (store, write_sh, pool) = (db.store.clone(), sh.clone(), admin.clone());
        let writer = tokio::spawn(async move {
            let at = "2026-11-22T10:00:00+08:00";
            match round {
                // Copied in, then marked.
                0 => store
                    .upsert_orders(&[order("O03-w", "C03", &write_sh, at, "1000")], t(NOW))
                    .await
                    .map(drop),
                // The copy meets O03-m0: the upsert inserts O03-x and marks.
                1 => {
                    let batch = [
                        order("O03-m0", "C03", &write_sh, "2026-11-22T09:00:00+08:00", "0"),
                        order("O03-x", "C03", &write_sh, at, "2000"),
                    ];
                    store.upsert_orders(&batch, t(NOW)).await.map(drop)
                }
                // Marked by the UPDATE trigger: ¥1000 becomes ¥4000, then ¥5000.
                _ => {
                    sqlx::query(
                        "UPDATE orders SET amount_fen = amount_fen + $1 WHERE id = 'O03-w'",
                    )
                    .bind(adds)
                    .execute(&pool)
                    .await
                    .unwrap();
                    Ok(())
                }
            }
            .unwrap();
        });
        until_waiting(&admin, 1, &writer).await;
        assert!(!writer.is_finished(), "{how}: the writer did not pause");
        let store = db.store.clone();
        let segments = tokio::spawn(async move {
            run(&store, NOW, mode).await;
        });
        until_waiting(&admin, 2, &segments).await;
        sqlx::query("SELECT pg_advisory_unlock(7)")
            .execute(&mut *holder)
            .await
            .unwrap();
        drop(holder);
        writer.await.unwrap();
        segments.await.unwrap();
        sqlx::raw_sql("DROP TRIGGER pause_at_commit ON orders")
            .execute(&admin)
            .await
            .unwrap();
        expected += adds;
        run(&db.store, NOW, RecomputeMode::Incremental).await;
        assert_eq!(
            attrs(&db.store, "C03", NOW).await.total_spent_fen,
            expected,
            "{how}: the customer's change was recomputed"
        );
    }
    drop(admin);
    db.cleanup().await;
}

/// An incremental run that stops after writing its figures, before ranking
/// the customers they belong to, is followed by a full run: no later
/// incremental run would rank them (their marks are cleared, and their new
/// figures move no threshold).
async fn an_interrupted_incremental_run_is_followed_by_a_full_one(db: &common::TestStore) {
    let store = &db.store;
    let sh = ten_buyers(store).await;
    run(store, NOW, RecomputeMode::Full).await;
    assert_eq!(attrs(store, "N1", NOW).await.lifecycle, "churned");
    // N1, who never ordered, orders today.
    store
        .upsert_orders(
            &[order("ON1", "N1", &sh, "2026-11-23T12:10:00+08:00", "10")],
            t("2026-11-23T04:10:00Z"),
        )
        .await
        .unwrap();
    // Phase B records N1's move into `active` (phase A writes no transition).
    raw_sql(
        db,
        "ALTER TABLE segment_transitions RENAME TO segment_transitions_away",
    )
    .await;
    let failed = try_run_in(
        store,
        Path::new("/nonexistent-campaigns"),
        "2026-11-23T12:30:00+08:00",
        RecomputeMode::Incremental,
    )
    .await;
    assert!(failed.is_err(), "the incremental run was meant to fail");
    raw_sql(
        db,
        "ALTER TABLE segment_transitions_away RENAME TO segment_transitions",
    )
    .await;
    assert_eq!(
        attrs(store, "N1", NOW).await.order_count,
        1,
        "the failed run wrote the new figures"
    );

    let later = "2026-11-23T12:40:00+08:00";
    let next = run(store, later, RecomputeMode::Incremental).await;
    ran_full_because(&next, "the incremental run started at");
    let n1 = profile(store, "N1", later).await;
    assert_eq!(n1.attributes.lifecycle, "active");
    assert!(
        n1.transitions
            .iter()
            .any(|x| x.segment == "lifecycle:active" && x.change == "entered" && x.at == t(later)),
        "{:?}",
        n1.transitions
    );
    the_next_run_is_incremental(store, "2026-11-23T13:00:00+08:00").await;
}

/// The average order is the money (refunds included) over the visits,
/// rounded half away from zero, on both stores alike.
async fn the_average_order_rounds_half_away_from_zero(store: SharedStore) {
    let sh = store_info("SH-001", SHANGHAI);
    store
        .upsert_stores(std::slice::from_ref(&sh), t("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    // (customer, amounts in yuan, average in fen)
    type Case = (&'static str, &'static [(&'static str, &'static str)], i64);
    const NOON: &str = "12:00";
    let cases: [Case; 4] = [
        ("V1", &[(NOON, "10.00"), (NOON, "10.01")], 1001),
        (
            "V2",
            &[(NOON, "10.00"), (NOON, "10.00"), (NOON, "10.01")],
            1000,
        ),
        (
            "V3",
            &[(NOON, "10.00"), (NOON, "10.00"), (NOON, "-30.01")],
            -501,
        ),
        ("V4", &[(NOON, "0.01"), (NOON, "0.01"), (NOON, "-0.05")], -2),
    ];
    let shop: Vec<_> = cases.iter().map(|(id, o, _)| (*id, *o)).collect();
    customers_with_orders(&store, &sh, &shop).await;
    run(&store, NOW, RecomputeMode::Full).await;
    for (id, _, average) in &cases {
        let a = attrs(&store, id, NOW).await;
        assert_eq!(a.avg_order_value_fen, Some(*average), "{id}");
    }
}

store_contract!(
    custom_segments_track_entries_and_exits,
    a_broken_segments_file_changes_nothing,
    quintiles_follow_rank_and_ties_share_a_score,
    customers_without_orders_have_no_scores,
    value_tiers_rank_the_last_365_days,
    refunds_reduce_spend_but_are_not_visits,
    thirty_days_ago_at_2359_local_is_still_active,
    the_day_joined_is_dated_in_the_offset_of_that_day,
    stage_changes_are_recorded_as_transitions,
    incremental_and_full_give_identical_results,
    a_full_run_that_builds_on_the_previous_one_misses_nothing,
    an_incremental_run_follows_scores_into_segments,
    a_full_run_building_on_the_previous_follows_scores_into_segments,
    birthdays_count_down_in_local_days,
    a_full_run_in_small_batches_gives_what_one_batch_gives,
    dayparts_count_visits_within_their_edges,
    the_average_order_rounds_half_away_from_zero,
    a_run_waits_for_the_lease_of_another,
    a_lease_from_a_clock_ahead_is_taken_over;
    an_interrupted_full_run_is_followed_by_a_full_one,
    an_interrupted_first_run_is_followed_by_a_full_one,
    a_first_run_stopped_during_its_fill_is_completed_by_the_next,
    a_rebuild_puts_right_what_was_edited_by_hand,
    a_failed_batch_of_changes_keeps_nothing,
    an_interrupted_incremental_run_is_followed_by_a_full_one,
    runs_at_the_same_time_take_turns,
);
