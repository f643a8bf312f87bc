//! The send log's store methods on both backends: pages filtered by every
//! combination of filters and walked with the cursor, audited retries, and
//! the queue's depth. Messages are written with SQL so that each test picks
//! their statuses, channels and creation times. Each test runs on SQLite,
//! and on PostgreSQL when OUTREACH_TEST_DATABASE_URL is set.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use common::TestStore;
use outreach::campaigns::outbox::MessageStatus;
use outreach::dispatch::claim::Claim;
use outreach::domain::{Consent, Customer, CustomerId, Phone, StoreCode, StoreInfo, Tags};
use outreach::store::{
    Channel, CouponBlock, LogCursor, OptOut, QueueDepth, RetryOutcome, SendLogQuery, SendLogRow,
};
use raw::{Msg, Raw};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
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

const CUSTOMERS: [&str; 4] = ["C1", "C2", "C3", "C4"];

async fn seed_customers(db: &TestStore) {
    let now = t("2026-01-01T00:00:00Z");
    db.store.upsert_stores(&stores(), now).await.unwrap();
    let cs: Vec<Customer> = CUSTOMERS
        .iter()
        .enumerate()
        .map(|(i, id)| customer(id, &format!("1380013800{i}")))
        .collect();
    db.store.upsert_customers(&cs, now).await.unwrap();
}

/// A mixed send log: 4 campaigns × 4 customers, every status and channel,
/// many rows sharing one creation instant (as a campaign run writes them).
fn mixed_log() -> Vec<Msg> {
    let base = t("2026-11-20T02:00:00Z");
    let campaigns = ["bday", "winback", "xmas", "new"];
    let mut out = Vec::new();
    for i in 0..96usize {
        let mut m = Msg::new(
            campaigns[i % 4],
            CUSTOMERS[(i / 4) % 4],
            // Groups of five share an instant; groups are minutes apart.
            base + Duration::minutes((i / 5) as i64 * 37),
        );
        m.channel = match i % 7 {
            0 | 3 => Some(Channel::Email),
            5 => Some(Channel::Wechat),
            6 => None,
            _ => Some(Channel::Sms),
        };
        m.status = MessageStatus::ALL[(i * 5) % 8];
        if m.status == MessageStatus::Suppressed {
            m.reason = Some(if m.channel.is_none() {
                "no_address"
            } else {
                "no_consent"
            });
        }
        out.push(m);
    }
    out
}

/// What a query should return, in order: the model of the store method.
fn expected(log: &[(i64, Msg)], q: &SendLogQuery) -> Vec<i64> {
    let mut hits: Vec<&(i64, Msg)> = log
        .iter()
        .filter(|(_, m)| q.campaign.as_deref().is_none_or(|c| c == m.campaign))
        .filter(|(_, m)| q.customer.as_deref().is_none_or(|c| c == m.customer))
        .filter(|(_, m)| q.channel.is_none_or(|c| m.channel == Some(c)))
        .filter(|(_, m)| q.status.is_none_or(|s| s == m.status))
        .filter(|(_, m)| q.since.is_none_or(|s| m.created_at >= s))
        .filter(|(_, m)| q.until.is_none_or(|u| m.created_at < u))
        .collect();
    hits.sort_by_key(|(id, m)| std::cmp::Reverse((m.created_at, *id)));
    hits.iter().map(|(id, _)| *id).collect()
}

/// Every page of `q`, following `next`; checks each page's size.
async fn walk(db: &TestStore, q: &SendLogQuery) -> Vec<SendLogRow> {
    let mut all = Vec::new();
    let mut q = q.clone();
    for _ in 0..1000 {
        let page = db.store.send_log(&q).await.unwrap();
        assert!(page.rows.len() <= q.page_size() as usize);
        all.extend(page.rows.iter().cloned());
        match page.next {
            Some(next) => {
                assert_eq!(
                    page.rows.len(),
                    q.page_size() as usize,
                    "a short page has no next"
                );
                // The cursor goes through its text form, as on the command line.
                q.before = Some(next.to_string().parse().unwrap());
            }
            None => return all,
        }
    }
    panic!("the pages never ended");
}

async fn write_log(db: &TestStore, log: &[Msg]) -> Vec<(i64, Msg)> {
    let mut raw = Raw::open(db).await;
    let mut out = Vec::new();
    for (i, m) in log.iter().enumerate() {
        out.push((raw.insert(i, m).await, m.clone()));
    }
    out
}

async fn every_filter_alone_and_combined_pages_like_the_model(db: &TestStore) {
    seed_customers(db).await;
    let log = write_log(db, &mixed_log()).await;
    let since = t("2026-11-20T05:00:00Z");
    let until = t("2026-11-20T12:24:00Z");
    let mut checked = 0;
    // Every subset of the six filters, with page sizes that split the ties.
    for mask in 0u32..64 {
        for limit in [3u32, 50] {
            let q = SendLogQuery {
                campaign: (mask & 1 != 0).then(|| "winback".to_owned()),
                channel: (mask & 2 != 0).then_some(Channel::Sms),
                status: (mask & 4 != 0).then_some(if mask & 8 != 0 {
                    MessageStatus::Dead
                } else {
                    MessageStatus::Sent
                }),
                customer: (mask & 16 != 0).then(|| "C2".to_owned()),
                since: (mask & 32 != 0).then_some(since),
                until: (mask & 8 != 0).then_some(until),
                before: None,
                limit,
            };
            let want = expected(&log, &q);
            let got: Vec<i64> = walk(db, &q).await.iter().map(|r| r.id).collect();
            assert_eq!(got, want, "{q:?}");
            checked += usize::from(!want.is_empty());
        }
    }
    assert!(checked > 40, "most combinations find rows ({checked})");
    // Each filter alone narrows the log.
    let all = walk(db, &SendLogQuery::default()).await;
    assert_eq!(all.len(), log.len());
    for q in [
        SendLogQuery {
            campaign: Some("xmas".into()),
            ..SendLogQuery::default()
        },
        SendLogQuery {
            channel: Some(Channel::Wechat),
            ..SendLogQuery::default()
        },
        SendLogQuery {
            status: Some(MessageStatus::Suppressed),
            ..SendLogQuery::default()
        },
        SendLogQuery {
            customer: Some("C4".into()),
            ..SendLogQuery::default()
        },
        SendLogQuery {
            since: Some(since),
            ..SendLogQuery::default()
        },
        SendLogQuery {
            until: Some(until),
            ..SendLogQuery::default()
        },
    ] {
        let got: Vec<i64> = walk(db, &q).await.iter().map(|r| r.id).collect();
        assert!(!got.is_empty() && got.len() < log.len(), "{q:?}");
        assert_eq!(got, expected(&log, &q), "{q:?}");
    }
    // Nothing matches: an empty last page.
    let none = db
        .store
        .send_log(&SendLogQuery {
            campaign: Some("nope".into()),
            ..SendLogQuery::default()
        })
        .await
        .unwrap();
    assert!(none.rows.is_empty() && none.next.is_none());
}

async fn pages_of_ties_return_every_row_exactly_once(db: &TestStore) {
    seed_customers(db).await;
    // 23 messages planned by one run (one instant), between two older ones.
    let at = t("2026-11-24T02:00:00Z");
    let mut log = vec![Msg::new("bday", "C1", at - Duration::seconds(1))];
    for i in 0..23 {
        log.push(Msg::new("bday", CUSTOMERS[i % 4], at));
    }
    log.push(Msg::new("bday", "C1", at + Duration::milliseconds(1)));
    let written = write_log(db, &log).await;
    for limit in [1u32, 4, 5, 23, 25, 26] {
        let q = SendLogQuery {
            limit,
            ..SendLogQuery::default()
        };
        let rows = walk(db, &q).await;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, expected(&written, &q), "limit {limit}");
        let unique: HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), written.len(), "limit {limit}");
    }
    // A page that ends exactly at the last row has no next page.
    let page = db
        .store
        .send_log(&SendLogQuery {
            limit: 25,
            ..SendLogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 25);
    assert_eq!(page.next, None);
    // The newest first, the oldest last.
    assert_eq!(page.rows[0].created_at, at + Duration::milliseconds(1));
    assert_eq!(page.rows[24].created_at, at - Duration::seconds(1));
    // A cursor past the oldest row: nothing.
    let past = db
        .store
        .send_log(&SendLogQuery {
            before: Some(LogCursor {
                created_at: at - Duration::days(1),
                id: 1,
            }),
            ..SendLogQuery::default()
        })
        .await
        .unwrap();
    assert!(past.rows.is_empty() && past.next.is_none());
}

async fn rows_carry_every_column(db: &TestStore) {
    seed_customers(db).await;
    let created = t("2026-11-24T02:00:00.123Z");
    let mut m = Msg::new("bday", "C2", created);
    m.status = MessageStatus::Deferred;
    m.reason = Some("send_window");
    m.attempts = 2;
    m.next_attempt_at = Some(t("2026-11-25T01:00:00Z"));
    m.sent_at = None;
    let mut raw = Raw::open(db).await;
    let id = raw.insert(0, &m).await;
    raw.coupon(
        id,
        &m,
        "BDAY-7KQ2XM",
        t("2026-12-08T00:00:00Z"),
        false,
        None,
    )
    .await;
    let page = db.store.send_log(&SendLogQuery::default()).await.unwrap();
    let row = &page.rows[0];
    assert_eq!(
        row,
        &SendLogRow {
            id,
            campaign_id: "bday".into(),
            customer_id: "C2".into(),
            occurrence: "0".into(),
            channel: Some(Channel::Sms),
            provider: None,
            address: Some("+8613800138000".into()),
            status: MessageStatus::Deferred,
            reason: Some("send_window".into()),
            detail: None,
            attempts: 2,
            provider_message_id: None,
            coupon_code: Some("BDAY-7KQ2XM".into()),
            created_at: created,
            sent_at: None,
            next_attempt_at: Some(t("2026-11-25T01:00:00Z")),
            updated_at: created,
        }
    );
    assert_eq!(
        row.clone().masked().address.as_deref(),
        Some("+86138****8000")
    );
    let json = serde_json::to_value(row).unwrap();
    assert_eq!(json["status"], "deferred");
    assert_eq!(json["channel"], "sms");
}

async fn a_failed_or_dead_message_is_retried_once_and_audited(db: &TestStore) {
    seed_customers(db).await;
    let created = t("2026-11-24T02:00:00Z");
    let now = t("2026-11-24T06:00:00Z");
    let mut dead = Msg::new("bday", "C1", created);
    dead.status = MessageStatus::Dead;
    dead.reason = Some("isp.SYSTEM_ERROR");
    dead.attempts = 8;
    dead.sent_at = None;
    let mut failed = Msg::new("bday", "C2", created);
    failed.status = MessageStatus::Failed;
    failed.reason = Some("isv.MOBILE_NUMBER_ILLEGAL");
    failed.address = Some("+8613800138001".into());
    let sent = Msg::new("bday", "C3", created);
    let mut raw = Raw::open(db).await;
    let dead_id = raw.insert(0, &dead).await;
    for n in 1..=8 {
        raw.attempt(dead_id, n, created + Duration::minutes(n))
            .await;
    }
    raw.coupon(
        dead_id,
        &dead,
        "BDAY-AAAAAA",
        now + Duration::days(10),
        false,
        None,
    )
    .await;
    let failed_id = raw.insert(1, &failed).await;
    let sent_id = raw.insert(2, &sent).await;

    let outcome = db
        .store
        .retry_message(dead_id, "ops:li", now)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RetryOutcome::Retried {
            previous_status: MessageStatus::Dead,
            previous_reason: Some("isp.SYSTEM_ERROR".into()),
        }
    );
    let m = db.store.message_detail(dead_id).await.unwrap().unwrap();
    assert_eq!(m.status, "queued");
    assert_eq!(m.reason, None);
    assert_eq!(m.next_attempt_at, Some(now));
    assert_eq!(m.attempts, 8, "the counter keeps its history");
    assert_eq!(m.history.len(), 8, "and so do the attempt rows");
    assert_eq!(m.updated_at, now);
    assert!(m.detail.as_deref().unwrap().contains("retried by ops:li"));
    assert_eq!(m.retries.len(), 1);
    let audit = &m.retries[0];
    assert_eq!(audit.actor, "ops:li");
    assert_eq!(audit.at, now);
    assert_eq!(audit.previous_status, "dead");
    assert_eq!(audit.previous_reason.as_deref(), Some("isp.SYSTEM_ERROR"));
    assert_eq!(audit.previous_attempts, 8);

    // A second retry finds it queued: refused, not audited.
    assert_eq!(
        db.store
            .retry_message(dead_id, "ops:li", now)
            .await
            .unwrap(),
        RetryOutcome::NotRetryable {
            status: MessageStatus::Queued
        }
    );
    assert_eq!(
        db.store.retry_message(sent_id, "api", now).await.unwrap(),
        RetryOutcome::NotRetryable {
            status: MessageStatus::Sent
        }
    );
    assert_eq!(
        db.store.retry_message(999_999, "api", now).await.unwrap(),
        RetryOutcome::NotFound
    );
    let m = db.store.message_detail(dead_id).await.unwrap().unwrap();
    assert_eq!(m.retries.len(), 1);
    assert!(
        db.store
            .message_detail(sent_id)
            .await
            .unwrap()
            .unwrap()
            .retries
            .is_empty()
    );

    // The worker claims both retried messages as usual, the dead one with a
    // fresh budget counted from its 8 calls.
    assert!(matches!(
        db.store.retry_message(failed_id, "api", now).await.unwrap(),
        RetryOutcome::Retried {
            previous_status: MessageStatus::Failed,
            ..
        }
    ));
    let claimed = db
        .store
        .claim_messages(&Claim {
            now,
            lease_until: now + Duration::minutes(2),
            limit: 10,
            token: "w1".into(),
        })
        .await
        .unwrap();
    let mut ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![dead_id, failed_id]);
    let d = claimed.iter().find(|c| c.id == dead_id).unwrap();
    assert_eq!((d.attempts, d.attempts_before_retry), (8, 8));
    assert_eq!(
        d.provider, None,
        "a retry starts with the channel's first provider"
    );
    assert_eq!(d.coupon_code.as_deref(), Some("BDAY-AAAAAA"));
    let depth = db.store.queue_depth(now).await.unwrap();
    assert_eq!(depth.sending, 2);
}

async fn a_retry_to_an_opted_out_address_ends_suppressed(db: &TestStore) {
    seed_customers(db).await;
    let now = t("2026-11-24T06:00:00Z");
    let mut dead = Msg::new("bday", "C1", t("2026-11-24T02:00:00Z"));
    dead.status = MessageStatus::Dead;
    dead.reason = Some("isp.SYSTEM_ERROR");
    let mut raw = Raw::open(db).await;
    let id = raw.insert(0, &dead).await;
    raw.coupon(
        id,
        &dead,
        "BDAY-OPTOUT",
        now + Duration::days(10),
        false,
        None,
    )
    .await;
    // The customer replied R while the message was dead: it was not touched.
    let out = db
        .store
        .record_opt_out(&OptOut {
            channel: Channel::Sms,
            address: "+8613800138000".into(),
            source: "sms-reply".into(),
            at: now - Duration::hours(1),
        })
        .await
        .unwrap();
    assert_eq!(out.suppressed, 0);
    assert!(matches!(
        db.store.retry_message(id, "api", now).await.unwrap(),
        RetryOutcome::Retried { .. }
    ));
    let claimed = db
        .store
        .claim_messages(&Claim {
            now,
            lease_until: now + Duration::minutes(2),
            limit: 10,
            token: "w1".into(),
        })
        .await
        .unwrap();
    assert!(claimed.is_empty(), "the claim suppresses it instead");
    let m = db.store.message_detail(id).await.unwrap().unwrap();
    assert_eq!(m.status, "suppressed");
    assert_eq!(m.reason.as_deref(), Some("opted_out"));
    // …and its coupon is withdrawn: a second retry is refused twice over.
    assert_eq!(
        db.store.retry_message(id, "api", now).await.unwrap(),
        RetryOutcome::NotRetryable {
            status: MessageStatus::Suppressed
        }
    );
    let page = db
        .store
        .send_log(&SendLogQuery {
            status: Some(MessageStatus::Suppressed),
            ..SendLogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].reason.as_deref(), Some("opted_out"));
}

async fn a_message_whose_coupon_cannot_be_used_is_not_retried(db: &TestStore) {
    seed_customers(db).await;
    let now = t("2026-11-24T06:00:00Z");
    let mut raw = Raw::open(db).await;
    let mut cases = Vec::new();
    for (i, (code, expires, voided, redeemed, why)) in [
        (
            "C-VOID",
            now + Duration::days(3),
            true,
            None,
            CouponBlock::Voided,
        ),
        ("C-EXPIRED", now, false, None, CouponBlock::Expired),
        (
            "C-USED",
            now + Duration::days(3),
            false,
            Some("O1"),
            CouponBlock::Redeemed,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = Msg::new("bday", CUSTOMERS[i], t("2026-11-20T02:00:00Z"));
        m.status = MessageStatus::Failed;
        m.reason = Some("isv.BUSINESS_LIMIT_CONTROL");
        let id = raw.insert(i, &m).await;
        raw.coupon(id, &m, code, expires, voided, redeemed).await;
        cases.push((id, code, why));
    }
    for (id, code, why) in cases {
        assert_eq!(
            db.store.retry_message(id, "api", now).await.unwrap(),
            RetryOutcome::CouponUnusable {
                code: code.into(),
                why
            }
        );
        let m = db.store.message_detail(id).await.unwrap().unwrap();
        assert_eq!(m.status, "failed", "left as it was");
        assert!(m.retries.is_empty());
    }
}

async fn queue_depth_counts_what_waits(db: &TestStore) {
    seed_customers(db).await;
    let now = t("2026-11-24T06:00:00Z");
    assert_eq!(
        db.store.queue_depth(now).await.unwrap(),
        QueueDepth::default()
    );
    let created = t("2026-11-24T02:00:00Z");
    let mut log = Vec::new();
    let mut add = |status, next: Option<DateTime<Utc>>, n| {
        for _ in 0..n {
            let mut m = Msg::new("bday", "C1", created);
            m.status = status;
            m.next_attempt_at = next;
            log.push(m);
        }
    };
    add(MessageStatus::Queued, Some(now - Duration::minutes(1)), 3);
    add(MessageStatus::Queued, Some(now), 1);
    add(MessageStatus::Queued, Some(now + Duration::hours(1)), 2);
    add(MessageStatus::Deferred, Some(now - Duration::hours(2)), 1);
    add(MessageStatus::Deferred, Some(now + Duration::hours(10)), 4);
    add(MessageStatus::Sending, None, 2);
    add(MessageStatus::Sent, None, 5);
    add(MessageStatus::Dead, None, 1);
    write_log(db, &log).await;
    assert_eq!(
        db.store.queue_depth(now).await.unwrap(),
        QueueDepth {
            queued: 6,
            deferred: 5,
            due: 5,
            sending: 2,
        }
    );
    // Later, more of them are due.
    assert_eq!(
        db.store
            .queue_depth(now + Duration::hours(11))
            .await
            .unwrap()
            .due,
        11
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
    every_filter_alone_and_combined_pages_like_the_model,
    pages_of_ties_return_every_row_exactly_once,
    rows_carry_every_column,
    a_failed_or_dead_message_is_retried_once_and_audited,
    a_retry_to_an_opted_out_address_ends_suppressed,
    a_message_whose_coupon_cannot_be_used_is_not_retried,
    queue_depth_counts_what_waits,
);
