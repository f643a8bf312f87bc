//! A year and a half in a small hand-made shop, walked day by day with a fake
//! clock: every simulated day runs the segments job and every campaign at its
//! schedule, applies the orders and opt-outs the script says happen that day,
//! and at the end the whole send log is compared with the ledger of who got
//! what, when, how, and why not. Each test runs on SQLite, and on PostgreSQL
//! when OUTREACH_TEST_DATABASE_URL is set.
//!
//! The shop: 人民广场店 (SH-001, Asia/Shanghai) and Flushing (NY-001,
//! America/New_York). The customers, each there for a reason:
//!
//! | id    | name    | store | birthday | reachable by      | orders, tags, script                              | there to show                                                      |
//! |-------|---------|-------|----------|-------------------|---------------------------------------------------|--------------------------------------------------------------------|
//! | C0001 | 林闰    | SH    | 02-29    | WeChat (and SMS)  |                                                   | Feb 29: gift on Feb 25 2027 (celebrated Feb 28), Feb 26 2028        |
//! | C0002 | 陈二八  | SH    | 02-28    | SMS               |                                                   | Feb 28: Feb 25 in both years                                        |
//! | C0003 | 孙三月  | SH    | 03-01    | SMS               |                                                   | Mar 1: Feb 26 2027, Feb 27 2028 (the leap day in between)           |
//! | C0004 | 周备选  | SH    | 01-20    | SMS, e-mail       | opts out of SMS 2028-01-16 20:00                  | opt-out the evening before the gift: the gift goes by e-mail        |
//! | C0005 | 吴只短  | SH    | 12-15    | SMS only          | opts out of SMS 2027-12-11 21:30                  | opt-out the evening before the gift: suppressed, no coupon          |
//! | C0006 | 郑回头  | SH    |          | SMS               | orders 2026-11-15, 11-25, then 2027-01-05         | one win-back per lapse: lapses, comes back, lapses again; no third  |
//! | C0007 | 钱常客  | SH    |          | SMS               | 5 orders, the last 2026-12-03                     | a regular drifting away: win-back, then at-risk the next day        |
//! | C0008 | 冯忙    | SH    | 01-10    | SMS               | member; orders 2026-11-20, 12-10                  | member day every month; the third message in 7 days is capped       |
//! | C0009 | 卫满    | SH    | 01-24    | SMS               | 5 orders, the last 2026-12-20                     | a birthday capped by earlier days' messages (no same-day victim)    |
//! | C0010 | 李同日  | SH    | 03-15    | SMS               |                                                   | the Shanghai twin of C0011                                          |
//! | C0011 | Amy 王  | NY    | 03-15    | e-mail            |                                                   | another zone: gift at 10:00 New York time, on New York's date       |
//! | C0012 | Tom 赵  | NY    |          | e-mail            | member                                            | member day at 08:00 New York time                                   |
//! | C0013 | 何静    | SH    |          | SMS               |                                                   | nobody writes to a customer without a reason                        |
//!
//! The campaigns (cap: 2 marketing messages per customer per 7 days; send
//! window 08:00–21:00 store time):
//!
//! | id         | trigger                            | schedule         | audience                          | priority |
//! |------------|------------------------------------|------------------|-----------------------------------|----------|
//! | birthday   | 3 days before the birthday         | 10:00 daily      | everyone                          | 10       |
//! | member-day | broadcast at every tick            | 08:00 on the 8th | tag `member`                      | 8        |
//! | winback    | no order for 30–180 days           | 07:59 daily      | SH-001, 2+ orders                 | 5        |
//! | at-risk    | entering `at_risk`                 | 11:00 daily      | SH-001, 4+ orders                 | 4        |
//!
//! A campaign runs at every tick of its schedule in the time zone of each
//! store its audience covers; the segments job runs at 03:00 Shanghai time.
//! The win-back runs at 07:59, a minute before the send window opens, so its
//! messages wait (`deferred` until 08:00); the member day runs at 08:00 sharp
//! and is `queued`.
//!
//! A second, shorter walk checks priorities when the cap is full.

mod common;
#[path = "common/shop.rs"]
mod shop;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use outreach::campaigns::{Campaign, Trigger};
use outreach::domain::{Consent, Customer, Order, Phone, Tags, WeChatOpenId};
use outreach::store::{Channel, OptOut, SharedStore};
use outreach::templates::TemplateSet;
use shop::{SHANGHAI, campaign, customer, order, run_at, seed, segments, t, templates};
use sqlx::Connection;

const NEW_YORK: Tz = chrono_tz::America::New_York;
const CAP: Option<(u32, u32)> = Some((2, 7));

const BIRTHDAY: &str = r#"
id: birthday
name: 生日礼
schedule: "0 10 * * *"
trigger: { type: birthday, days_before: 3 }
coupon: { kind: amount_off, value: 10, min_spend: 30, valid_days: 14, code_prefix: BDAY }
channels: [wechat, sms, email]
template: birthday
priority: 10
"#;

const MEMBER_DAY: &str = r#"
id: member-day
name: 会员日
schedule: "0 8 8 * *"
trigger: { type: broadcast }
audience: { where: "tags contains 'member'" }
coupon: { kind: free_item, item: 豆浆, valid_days: 7, code_prefix: VIPDAY }
channels: [wechat, sms, email]
template: member_day
priority: 8
"#;

const WINBACK: &str = r#"
id: winback
name: 沉睡唤醒
schedule: "59 7 * * *"
trigger: { type: lapsed, inactive_days: 30, max_inactive_days: 180 }
audience: { stores: [SH-001], where: "order_count >= 2" }
coupon: { kind: percent_off, value: 20, valid_days: 14, code_prefix: BACK }
channels: [sms, email]
template: winback
priority: 5
"#;

const AT_RISK: &str = r#"
id: at-risk
name: 流失预警
schedule: "0 11 * * *"
trigger: { type: segment_entered, segment: at_risk }
audience: { stores: [SH-001], where: "order_count >= 4" }
coupon: { kind: amount_off, value: 6, min_spend: 25, valid_days: 14, code_prefix: MISS }
channels: [sms]
template: at_risk
priority: 4
"#;

// ---------------------------------------------------------------------------
// The shop

/// A customer of the shop: `contact` lists the channels they consented to
/// and have an address for ('w' WeChat, 's' SMS, 'e' e-mail).
fn shopper(id: &str, name: &str, store: &str, birthday: Option<&str>, contact: &str) -> Customer {
    let mut c = customer(id, store, birthday);
    c.name = Some(name.to_owned());
    c.sms_opt_in = Consent::Unknown;
    c.email_opt_in = Consent::Unknown;
    c.wechat_opt_in = Consent::Unknown;
    if store == "NY-001" {
        c.phone = None;
    }
    for ch in contact.chars() {
        match ch {
            's' => c.sms_opt_in = Consent::Yes,
            'e' => c.email_opt_in = Consent::Yes,
            'w' => {
                c.wechat_openid = Some(
                    WeChatOpenId::parse(&format!("oShop_{}_openid", id.to_lowercase())).unwrap(),
                );
                c.wechat_opt_in = Consent::Yes;
            }
            other => panic!("unknown contact {other}"),
        }
    }
    c
}

fn tagged(mut c: Customer, tags: &str) -> Customer {
    c.tags = Tags::parse(tags).unwrap();
    c
}

fn year_customers() -> Vec<Customer> {
    vec![
        shopper("C0001", "林闰", "SH-001", Some("02-29"), "ws"),
        shopper("C0002", "陈二八", "SH-001", Some("02-28"), "s"),
        shopper("C0003", "孙三月", "SH-001", Some("03-01"), "s"),
        shopper("C0004", "周备选", "SH-001", Some("01-20"), "se"),
        shopper("C0005", "吴只短", "SH-001", Some("12-15"), "s"),
        shopper("C0006", "郑回头", "SH-001", None, "s"),
        shopper("C0007", "钱常客", "SH-001", None, "s"),
        tagged(
            shopper("C0008", "冯忙", "SH-001", Some("01-10"), "s"),
            "member",
        ),
        shopper("C0009", "卫满", "SH-001", Some("01-24"), "s"),
        shopper("C0010", "李同日", "SH-001", Some("03-15"), "s"),
        shopper("C0011", "Amy 王", "NY-001", Some("03-15"), "e"),
        tagged(shopper("C0012", "Tom 赵", "NY-001", None, "e"), "member"),
        shopper("C0013", "何静", "SH-001", None, "s"),
    ]
}

/// A Shanghai order at 08:00 local time on `day`.
fn sh_order(id: &str, customer: &str, day: &str) -> Order {
    order(id, customer, &format!("{day}T08:00:00+08:00"))
}

/// Orders placed before the walk starts.
fn history() -> Vec<Order> {
    [
        ("O0601", "C0006", "2026-11-15"),
        ("O0602", "C0006", "2026-11-25"),
        ("O0701", "C0007", "2026-10-01"),
        ("O0702", "C0007", "2026-10-15"),
        ("O0703", "C0007", "2026-11-01"),
        ("O0704", "C0007", "2026-11-20"),
        ("O0801", "C0008", "2026-11-20"),
        ("O0901", "C0009", "2026-10-05"),
        ("O0902", "C0009", "2026-10-25"),
        ("O0903", "C0009", "2026-11-15"),
    ]
    .iter()
    .map(|(id, c, day)| sh_order(id, c, day))
    .collect()
}

/// What happens during the walk, besides the jobs.
enum Happening {
    Order(Order),
    OptOut(OptOut),
}

fn opt_out_sms(phone_of: &str, at: &str) -> (DateTime<Utc>, Happening) {
    let phone = Phone::parse(&format!("1380013{}", &phone_of[1..])).unwrap();
    (
        t(at),
        Happening::OptOut(OptOut {
            channel: Channel::Sms,
            address: phone.as_str().to_owned(),
            source: "sms-reply".into(),
            at: t(at),
        }),
    )
}

fn placed(o: Order) -> (DateTime<Utc>, Happening) {
    (o.ordered_at, Happening::Order(o))
}

fn year_script() -> Vec<(DateTime<Utc>, Happening)> {
    vec![
        placed(sh_order("O0904", "C0009", "2026-12-01")),
        placed(sh_order("O0705", "C0007", "2026-12-03")),
        placed(sh_order("O0802", "C0008", "2026-12-10")),
        placed(sh_order("O0905", "C0009", "2026-12-20")),
        placed(order("O0603", "C0006", "2027-01-05T12:00:00+08:00")),
        opt_out_sms("C0005", "2027-12-11T21:30:00+08:00"),
        opt_out_sms("C0004", "2028-01-16T20:00:00+08:00"),
    ]
}

// ---------------------------------------------------------------------------
// The walk

/// A campaign and the time zones in which its schedule ticks.
struct Scheduled {
    campaign: Campaign,
    zones: Vec<Tz>,
}

/// The instant a local date and time happens in `tz` (never in a DST gap here).
fn local(tz: Tz, at: NaiveDateTime) -> DateTime<Utc> {
    tz.from_local_datetime(&at)
        .earliest()
        .expect("a local time that exists")
        .with_timezone(&Utc)
}

/// The ticks of `c` on the local date `day` in `tz`.
fn ticks_on(c: &Campaign, tz: Tz, day: NaiveDate) -> Vec<DateTime<Utc>> {
    let start = local(tz, day.and_hms_opt(0, 0, 0).unwrap());
    let end = local(tz, (day + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap());
    let mut out = Vec::new();
    match (&c.schedule, &c.trigger) {
        (Some(s), _) => {
            let mut after = start - Duration::milliseconds(1);
            while let Some(tick) = s.next_after(tz, after).filter(|t| *t < end) {
                out.push(tick);
                after = tick;
            }
        }
        (None, Trigger::Broadcast { at: Some(at), .. }) if at.date() == day => {
            out.push(local(tz, *at));
        }
        _ => {}
    }
    out
}

enum Act {
    Happen(Happening),
    Segments,
    Run(usize),
}

/// Walk from `from` to `to` (local dates, both included) day by day: the
/// script's happenings, then the segments job at 03:00 Shanghai time (when
/// `segments_daily`), then every campaign tick, in the order they happen.
/// Returns the number of campaign runs.
async fn walk(
    store: &SharedStore,
    tpl: &TemplateSet,
    plan: &[Scheduled],
    script: Vec<(DateTime<Utc>, Happening)>,
    (from, to): (&str, &str),
    segments_daily: bool,
) -> usize {
    let from: NaiveDate = from.parse().unwrap();
    let to: NaiveDate = to.parse().unwrap();
    let mut events: Vec<(DateTime<Utc>, u8, usize, Act)> = Vec::new();
    for (i, (at, h)) in script.into_iter().enumerate() {
        events.push((at, 0, i, Act::Happen(h)));
    }
    let mut day = from;
    while day <= to {
        if segments_daily {
            events.push((
                local(SHANGHAI, day.and_hms_opt(3, 0, 0).unwrap()),
                1,
                0,
                Act::Segments,
            ));
        }
        for (i, s) in plan.iter().enumerate() {
            for tz in &s.zones {
                for tick in ticks_on(&s.campaign, *tz, day) {
                    events.push((tick, 2, i, Act::Run(i)));
                }
            }
        }
        day += Duration::days(1);
    }
    events.sort_by_key(|(at, rank, i, _)| (*at, *rank, *i));
    let mut runs = 0;
    for (at, _, _, act) in events {
        match act {
            Act::Happen(Happening::Order(o)) => {
                let r = store.upsert_orders(&[o], at).await.unwrap();
                assert!(r.unknown_customers.is_empty());
            }
            Act::Happen(Happening::OptOut(o)) => {
                assert!(store.record_opt_out(&o).await.unwrap().recorded);
            }
            Act::Segments => segments(store, &at.to_rfc3339()).await,
            Act::Run(i) => {
                let c = &plan[i].campaign;
                let r = run_at(store, c, tpl, &at.to_rfc3339(), CAP).await;
                // Runs follow one another: a candidate is never someone the
                // campaign already wrote to for the occurrence.
                assert_eq!(r.already, 0, "{} at {at}: {r:?}", c.id);
                runs += 1;
            }
        }
    }
    runs
}

// ---------------------------------------------------------------------------
// The ledger

/// One line per message: local time of planning (store zone), campaign,
/// customer, occurrence, channel, status[:reason], whether a coupon was
/// issued with it, and for a deferred message the local time it waits for.
async fn ledger(store: &SharedStore, customers: &[Customer], campaigns: &[&str]) -> Vec<String> {
    let zone: HashMap<String, Tz> = customers
        .iter()
        .map(|c| {
            let tz = match c.store.as_ref().map(|s| s.as_str()) {
                Some("NY-001") => NEW_YORK,
                _ => SHANGHAI,
            };
            (c.id.as_str().to_owned(), tz)
        })
        .collect();
    let mut with_coupon = BTreeSet::new();
    for id in campaigns {
        for c in store.coupons_for(id).await.unwrap() {
            with_coupon.insert(c.message_id);
        }
    }
    let messages = store.messages_for(None, None).await.unwrap();
    let mut lines = Vec::new();
    for m in &messages {
        let tz = zone[&m.customer_id];
        let occurrence = if m.occurrence.starts_with("entered:") {
            "entered".to_owned()
        } else {
            m.occurrence.clone()
        };
        let status = match &m.reason {
            Some(r) => format!("{}:{r}", m.status),
            None => m.status.clone(),
        };
        let mut line = format!(
            "{} {} {} {} {} {} {}",
            m.created_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            m.campaign_id,
            m.customer_id,
            occurrence,
            m.channel.as_deref().unwrap_or("-"),
            status,
            if with_coupon.contains(&m.id) {
                "coupon"
            } else {
                "-"
            },
        );
        if m.status == "deferred" {
            let next = m
                .next_attempt_at
                .expect("a deferred message waits for a time");
            line += &format!(
                " until {}",
                next.with_timezone(&tz).format("%Y-%m-%d %H:%M")
            );
        }
        lines.push(line);
    }
    lines.sort();
    lines
}

/// Every coupon belongs to its message and every message with a code has
/// exactly that coupon; suppressed messages carry none; at most one message
/// per (campaign, customer, occurrence).
async fn check_coupons_and_keys(store: &SharedStore, campaigns: &[&str]) {
    let messages = store.messages_for(None, None).await.unwrap();
    let mut keys = BTreeSet::new();
    for m in &messages {
        assert!(
            keys.insert((&m.campaign_id, &m.customer_id, &m.occurrence)),
            "two messages for {} {} {}",
            m.campaign_id,
            m.customer_id,
            m.occurrence
        );
    }
    for id in campaigns {
        let coupons = store.coupons_for(id).await.unwrap();
        let with_code: Vec<_> = messages
            .iter()
            .filter(|m| m.campaign_id == *id && m.coupon_code.is_some())
            .collect();
        assert_eq!(coupons.len(), with_code.len(), "{id}: coupons vs messages");
        for m in with_code {
            let c = coupons
                .iter()
                .find(|c| Some(&c.code) == m.coupon_code.as_ref())
                .unwrap_or_else(|| panic!("{id}: no coupon for message {}", m.id));
            assert_eq!(
                (c.message_id, c.customer_id.as_str(), c.campaign_id.as_str()),
                (m.id, m.customer_id.as_str(), *id)
            );
        }
    }
}

fn assert_ledger(actual: &[String], expected: &[String]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let missing: Vec<_> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let unexpected: Vec<_> = actual.iter().filter(|l| !expected.contains(l)).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty() && actual.len() == expected.len(),
        "ledger differs\nmissing:\n  {}\nunexpected:\n  {}\n",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        unexpected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// The member day's lines for `customer` on the 8th of every month of the walk.
fn member_days(customer: &str, channel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut month = NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
    while month <= NaiveDate::from_ymd_opt(2028, 3, 31).unwrap() {
        let day = month.format("%Y-%m-%d");
        out.push(format!(
            "{day} 08:00 member-day {customer} broadcast:{day}T08:00 {channel} queued coupon"
        ));
        month = month.checked_add_months(chrono::Months::new(1)).unwrap();
    }
    out
}

fn year_ledger() -> Vec<String> {
    let mut l: Vec<String> = [
        // Feb 29, Feb 28 and Mar 1, three days ahead.
        "2027-02-25 10:00 birthday C0001 birthday:2027 wechat queued coupon",
        "2028-02-26 10:00 birthday C0001 birthday:2028 wechat queued coupon",
        "2027-02-25 10:00 birthday C0002 birthday:2027 sms queued coupon",
        "2028-02-25 10:00 birthday C0002 birthday:2028 sms queued coupon",
        "2027-02-26 10:00 birthday C0003 birthday:2027 sms queued coupon",
        "2028-02-27 10:00 birthday C0003 birthday:2028 sms queued coupon",
        // SMS in 2027; after the opt-out the evening before, e-mail. The
        // walk dispatches nothing, so the 2027 SMS is still queued a year
        // later when the number opts out, and the opt-out withdraws it.
        "2027-01-17 10:00 birthday C0004 birthday:2027 sms suppressed:opted_out coupon",
        "2028-01-17 10:00 birthday C0004 birthday:2028 email queued coupon",
        // SMS in 2026 (withdrawn, unsent, by the opt-out a year later);
        // after the opt-out nothing is left: no coupon.
        "2026-12-12 10:00 birthday C0005 birthday:2026 sms suppressed:opted_out coupon",
        "2027-12-12 10:00 birthday C0005 birthday:2027 - suppressed:opted_out -",
        // Lapse, back on Jan 5, lapse again: two win-backs, each waiting
        // from 07:59 for the window to open at 08:00.
        "2026-12-25 07:59 winback C0006 lapse:2026-11-25 sms deferred:send_window coupon until 2026-12-25 08:00",
        "2027-02-04 07:59 winback C0006 lapse:2027-01-05 sms deferred:send_window coupon until 2027-02-04 08:00",
        // 30 days: win-back; 31 days: at risk.
        "2027-01-02 07:59 winback C0007 lapse:2026-12-03 sms deferred:send_window coupon until 2027-01-02 08:00",
        "2027-01-03 11:00 at-risk C0007 entered sms queued coupon",
        // Birthday (Jan 7) and member day (Jan 8) fill the cap: the win-back
        // of Jan 9, of lower priority than both, is capped.
        "2027-01-07 10:00 birthday C0008 birthday:2027 sms queued coupon",
        "2027-01-09 07:59 winback C0008 lapse:2026-12-10 sms suppressed:capped -",
        "2028-01-07 10:00 birthday C0008 birthday:2028 sms queued coupon",
        // Win-back (Jan 19) and at-risk (Jan 20) fill the cap: the birthday
        // of Jan 21 finds no message of the same day to take the place of.
        "2027-01-19 07:59 winback C0009 lapse:2026-12-20 sms deferred:send_window coupon until 2027-01-19 08:00",
        "2027-01-20 11:00 at-risk C0009 entered sms queued coupon",
        "2027-01-21 10:00 birthday C0009 birthday:2027 sms suppressed:capped -",
        "2028-01-21 10:00 birthday C0009 birthday:2028 sms queued coupon",
        // The same birthday in two zones: each at 10:00 of its own date
        // (New York's 2028 one on the day clocks go forward).
        "2027-03-12 10:00 birthday C0010 birthday:2027 sms queued coupon",
        "2028-03-12 10:00 birthday C0010 birthday:2028 sms queued coupon",
        "2027-03-12 10:00 birthday C0011 birthday:2027 email queued coupon",
        "2028-03-12 10:00 birthday C0011 birthday:2028 email queued coupon",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    l.extend(member_days("C0008", "sms"));
    l.extend(member_days("C0012", "email"));
    l
}

async fn a_year_day_by_day(store: &SharedStore) {
    let customers = year_customers();
    seed(store, &customers).await;
    store
        .upsert_orders(&history(), t("2026-11-30T00:00:00Z"))
        .await
        .unwrap();
    // The shop has been running: its segments were last computed on Nov 30.
    segments(store, "2026-11-30T03:00:00+08:00").await;
    let tpl = templates();
    let both = vec![SHANGHAI, NEW_YORK];
    let plan = [
        Scheduled {
            campaign: campaign(BIRTHDAY, &tpl),
            zones: both.clone(),
        },
        Scheduled {
            campaign: campaign(MEMBER_DAY, &tpl),
            zones: both,
        },
        Scheduled {
            campaign: campaign(WINBACK, &tpl),
            zones: vec![SHANGHAI],
        },
        Scheduled {
            campaign: campaign(AT_RISK, &tpl),
            zones: vec![SHANGHAI],
        },
    ];
    let started = std::time::Instant::now();
    let runs = walk(
        store,
        &tpl,
        &plan,
        year_script(),
        ("2026-12-01", "2028-03-31"),
        true,
    )
    .await;
    eprintln!(
        "{}: 487 days, 487 segments runs and {runs} campaign runs in {:.1} s",
        store.backend(),
        started.elapsed().as_secs_f64()
    );
    let ids = ["birthday", "member-day", "winback", "at-risk"];
    assert_ledger(&ledger(store, &customers, &ids).await, &year_ledger());
    check_coupons_and_keys(store, &ids).await;

    // Reasons in words, where they matter.
    let c5 = store
        .messages_for(Some("birthday"), Some("C0005"))
        .await
        .unwrap();
    assert_eq!(
        c5[1].detail.as_deref(),
        Some("wechat: no_address; sms: opted_out; email: no_consent")
    );
    let c8 = store
        .messages_for(Some("winback"), Some("C0008"))
        .await
        .unwrap();
    assert_eq!(
        c8[0].detail.as_deref(),
        Some("2 marketing message(s) in the last 7 day(s); the cap is 2")
    );
    // A coupon is valid for its days through the end of the last local day.
    let c11 = store
        .messages_for(Some("birthday"), Some("C0011"))
        .await
        .unwrap();
    assert_eq!(c11[0].occurrence, "birthday:2027");
    let code = c11[0].coupon_code.clone().unwrap();
    let coupon = store
        .coupons_for("birthday")
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.code == code)
        .unwrap();
    assert!(code.starts_with("BDAY-"), "{code}");
    assert_eq!(coupon.expires_at, t("2027-03-26T00:00:00-04:00"));
}

// ---------------------------------------------------------------------------
// Priorities when the cap is full

fn with_tags(id: &str, store: &str, birthday: Option<&str>, tags: &str) -> Customer {
    tagged(
        shopper(
            id,
            &format!("顾客{id}"),
            store,
            birthday,
            if store == "NY-001" { "e" } else { "s" },
        ),
        tags,
    )
}

/// A one-off broadcast to the customers tagged `id`, at a local time.
fn one_off(id: &str, at: &str, priority: i32) -> String {
    format!(
        "id: {id}\ntrigger: {{ type: broadcast, at: \"{at}\" }}\naudience: {{ where: \"tags contains '{id}'\" }}\n\
         coupon: {{ kind: amount_off, value: 3 }}\nchannels: [sms, email]\ntemplate: member_day\npriority: {priority}\n"
    )
}

/// The codes of voided coupons, read from the database.
async fn voided_codes(url: &str) -> Result<Vec<String>, sqlx::Error> {
    const SQL: &str = "SELECT code FROM coupons WHERE voided_at IS NOT NULL ORDER BY code";
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query_scalar(SQL).fetch_all(&mut conn).await
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query_scalar(SQL).fetch_all(&mut conn).await
    }
}

async fn a_higher_priority_takes_a_same_day_place(store: &SharedStore, url: &str) {
    let customers = vec![
        // early (2, deferred) + flash (3): the birthday takes early's place.
        with_tags("C0101", "SH-001", Some("05-20"), "early;flash"),
        // flash (3) + points (3): the most recent of the weakest goes.
        with_tags("C0102", "SH-001", Some("05-20"), "flash;points"),
        // eve (1, the day before) + flash (3): only today's flash can go.
        with_tags("C0103", "SH-001", Some("05-20"), "eve;flash"),
        // dawn + eve, both of earlier days: the birthday is capped.
        with_tags("C0104", "SH-001", Some("05-20"), "dawn;eve"),
        // dawn + flash, then points of flash's priority: first come, first served.
        with_tags("C0105", "SH-001", None, "dawn;flash;points"),
        // New York: eve at 20:00 on May 19 is May 20 in Shanghai and in UTC,
        // but the day before in the store's zone; flash is the one to go.
        with_tags("C0106", "NY-001", Some("05-20"), "eve;flash"),
    ];
    seed(store, &customers).await;
    let tpl = templates();
    let both = vec![SHANGHAI, NEW_YORK];
    let bday = "id: birthday\nschedule: \"0 10 * * *\"\ntrigger: { type: birthday, days_before: 0 }\n\
                coupon: { kind: amount_off, value: 10 }\nchannels: [sms, email]\ntemplate: birthday\npriority: 10\n";
    let plan: Vec<Scheduled> = [
        one_off("dawn", "2027-05-18T12:00:00", 1),
        one_off("eve", "2027-05-19T20:00:00", 1),
        one_off("early", "2027-05-20T07:30:00", 2),
        one_off("flash", "2027-05-20T09:00:00", 3),
        one_off("points", "2027-05-20T09:30:00", 3),
        bday.to_owned(),
    ]
    .iter()
    .map(|text| Scheduled {
        campaign: campaign(text, &tpl),
        zones: both.clone(),
    })
    .collect();
    walk(
        store,
        &tpl,
        &plan,
        Vec::new(),
        ("2027-05-18", "2027-05-21"),
        false,
    )
    .await;
    let expected: Vec<String> = [
        "2027-05-20 07:30 early C0101 broadcast:2027-05-20T07:30 sms suppressed:capped coupon",
        "2027-05-20 09:00 flash C0101 broadcast:2027-05-20T09:00 sms queued coupon",
        "2027-05-20 10:00 birthday C0101 birthday:2027 sms queued coupon",
        "2027-05-20 09:00 flash C0102 broadcast:2027-05-20T09:00 sms queued coupon",
        "2027-05-20 09:30 points C0102 broadcast:2027-05-20T09:30 sms suppressed:capped coupon",
        "2027-05-20 10:00 birthday C0102 birthday:2027 sms queued coupon",
        "2027-05-19 20:00 eve C0103 broadcast:2027-05-19T20:00 sms queued coupon",
        "2027-05-20 09:00 flash C0103 broadcast:2027-05-20T09:00 sms suppressed:capped coupon",
        "2027-05-20 10:00 birthday C0103 birthday:2027 sms queued coupon",
        "2027-05-18 12:00 dawn C0104 broadcast:2027-05-18T12:00 sms queued coupon",
        "2027-05-19 20:00 eve C0104 broadcast:2027-05-19T20:00 sms queued coupon",
        "2027-05-20 10:00 birthday C0104 birthday:2027 sms suppressed:capped -",
        "2027-05-18 12:00 dawn C0105 broadcast:2027-05-18T12:00 sms queued coupon",
        "2027-05-20 09:00 flash C0105 broadcast:2027-05-20T09:00 sms queued coupon",
        "2027-05-20 09:30 points C0105 broadcast:2027-05-20T09:30 sms suppressed:capped -",
        "2027-05-19 20:00 eve C0106 broadcast:2027-05-19T20:00 email queued coupon",
        "2027-05-20 09:00 flash C0106 broadcast:2027-05-20T09:00 email suppressed:capped coupon",
        "2027-05-20 10:00 birthday C0106 birthday:2027 email queued coupon",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let ids = ["dawn", "eve", "early", "flash", "points", "birthday"];
    assert_ledger(&ledger(store, &customers, &ids).await, &expected);

    // A message that lost its place says which campaign took it, and its
    // coupon is void; every other coupon stays good.
    let messages = store.messages_for(None, None).await.unwrap();
    let mut lost_coupons = Vec::new();
    for id in ids {
        for c in store.coupons_for(id).await.unwrap() {
            let m = messages.iter().find(|m| m.id == c.message_id).unwrap();
            assert_eq!(
                (m.campaign_id.as_str(), m.customer_id.as_str()),
                (id, c.customer_id.as_str())
            );
            if m.status == "suppressed" {
                let detail = m.detail.as_deref().unwrap_or_default();
                assert!(
                    detail.contains("birthday"),
                    "{id} {}: {detail}",
                    m.customer_id
                );
                lost_coupons.push(c.code);
            }
        }
    }
    lost_coupons.sort();
    assert_eq!(lost_coupons.len(), 4, "{lost_coupons:?}");
    let voided = voided_codes(url)
        .await
        .unwrap_or_else(|e| panic!("reading coupons.voided_at: {e}"));
    assert_eq!(voided, lost_coupons);
}

// ---------------------------------------------------------------------------

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_year_day_by_day() {
        let db = crate::common::sqlite().await;
        super::a_year_day_by_day(&db.store).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_higher_priority_takes_a_same_day_place() {
        let db = crate::common::sqlite().await;
        super::a_higher_priority_takes_a_same_day_place(&db.store, &db.url).await;
        db.cleanup().await;
    }
}

mod postgres {
    use std::sync::Arc;

    use outreach::store::{PgStore, SharedStore};
    use sqlx::postgres::PgConnectOptions;

    /// A second store on the test database whose sessions do not wait for
    /// the disk at each commit: the walk commits thousands of short
    /// transactions, and durability is not what it tests.
    async fn without_commit_waits(url: &str) -> SharedStore {
        let options: PgConnectOptions = url.parse().unwrap();
        let options = options.options([("synchronous_commit", "off")]);
        Arc::new(PgStore::open_with(options, 4).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_year_day_by_day() {
        let Some(db) = crate::common::postgres().await else {
            return;
        };
        let store = without_commit_waits(&db.url).await;
        super::a_year_day_by_day(&store).await;
        drop(store);
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_higher_priority_takes_a_same_day_place() {
        let Some(db) = crate::common::postgres().await else {
            return;
        };
        super::a_higher_priority_takes_a_same_day_place(&db.store, &db.url).await;
        db.cleanup().await;
    }
}
