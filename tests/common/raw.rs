//! Send-log rows written with SQL, for tests that need messages in any
//! status, channel and creation time (the store API writes them only through
//! campaign runs and the worker).
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use outreach::campaigns::outbox::MessageStatus;
use outreach::store::{Backend, Channel};
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::common::TestStore;

/// One message as the test writes it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub campaign: &'static str,
    pub customer: &'static str,
    pub channel: Option<Channel>,
    pub status: MessageStatus,
    pub reason: Option<&'static str>,
    pub address: Option<String>,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl Msg {
    pub fn new(campaign: &'static str, customer: &'static str, created_at: DateTime<Utc>) -> Msg {
        Msg {
            campaign,
            customer,
            channel: Some(Channel::Sms),
            status: MessageStatus::Sent,
            reason: None,
            address: Some("+8613800138000".into()),
            attempts: 1,
            created_at,
            next_attempt_at: None,
            sent_at: Some(created_at + Duration::minutes(1)),
        }
    }
}

/// A raw connection to the test database, for the rows the store API does not write.
pub enum Raw {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

impl Raw {
    pub async fn open(db: &TestStore) -> Raw {
        match db.store.backend() {
            Backend::Sqlite => Raw::Sqlite(SqliteConnection::connect(&db.url).await.unwrap()),
            Backend::Postgres => Raw::Pg(PgConnection::connect(&db.url).await.unwrap()),
        }
    }

    pub async fn insert(&mut self, key: usize, m: &Msg) -> i64 {
        let dedupe = format!("{}/{}/{key}", m.campaign, m.customer);
        let payload = r#"{"sms":{"template_code":"SMS_1","params":{},"text":"hi"}}"#;
        match self {
            Raw::Sqlite(c) => sqlx::query_scalar(
                "INSERT INTO messages (dedupe_key, campaign_id, customer_id, occurrence, channel,
                    address, status, reason, attempts, next_attempt_at, sent_at, payload,
                    created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13) RETURNING id",
            )
            .bind(&dedupe)
            .bind(m.campaign)
            .bind(m.customer)
            .bind(key.to_string())
            .bind(m.channel.map(Channel::as_str))
            .bind(&m.address)
            .bind(m.status.as_str())
            .bind(m.reason)
            .bind(m.attempts)
            .bind(m.next_attempt_at.map(|t| t.timestamp_millis()))
            .bind(m.sent_at.map(|t| t.timestamp_millis()))
            .bind(payload)
            .bind(m.created_at.timestamp_millis())
            .fetch_one(c)
            .await
            .unwrap(),
            Raw::Pg(c) => sqlx::query_scalar(
                "INSERT INTO messages (dedupe_key, campaign_id, customer_id, occurrence, channel,
                    address, status, reason, attempts, next_attempt_at, sent_at, payload,
                    created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $13)
                 RETURNING id",
            )
            .bind(&dedupe)
            .bind(m.campaign)
            .bind(m.customer)
            .bind(key.to_string())
            .bind(m.channel.map(Channel::as_str))
            .bind(&m.address)
            .bind(m.status.as_str())
            .bind(m.reason)
            .bind(i32::try_from(m.attempts).unwrap())
            .bind(m.next_attempt_at)
            .bind(m.sent_at)
            .bind(payload)
            .bind(m.created_at)
            .fetch_one(c)
            .await
            .unwrap(),
        }
    }

    /// A coupon for message `id`.
    pub async fn coupon(
        &mut self,
        id: i64,
        m: &Msg,
        code: &str,
        expires_at: DateTime<Utc>,
        voided: bool,
        redeemed_by: Option<&str>,
    ) {
        let issued = m.created_at;
        let voided_at = voided.then_some(issued);
        match self {
            Raw::Sqlite(c) => {
                sqlx::query(
                    "INSERT INTO coupons (code, campaign_id, customer_id, message_id, kind, value,
                        issued_at, expires_at, voided_at, redeemed_order_id)
                     VALUES (?1, ?2, ?3, ?4, 'amount_off', 10, ?5, ?6, ?7, ?8)",
                )
                .bind(code)
                .bind(m.campaign)
                .bind(m.customer)
                .bind(id)
                .bind(issued.timestamp_millis())
                .bind(expires_at.timestamp_millis())
                .bind(voided_at.map(|t| t.timestamp_millis()))
                .bind(redeemed_by)
                .execute(&mut *c)
                .await
                .unwrap();
                sqlx::query("UPDATE messages SET coupon_code = ?1 WHERE id = ?2")
                    .bind(code)
                    .bind(id)
                    .execute(c)
                    .await
                    .unwrap();
            }
            Raw::Pg(c) => {
                sqlx::query(
                    "INSERT INTO coupons (code, campaign_id, customer_id, message_id, kind, value,
                        issued_at, expires_at, voided_at, redeemed_order_id)
                     VALUES ($1, $2, $3, $4, 'amount_off', 10, $5, $6, $7, $8)",
                )
                .bind(code)
                .bind(m.campaign)
                .bind(m.customer)
                .bind(id)
                .bind(issued)
                .bind(expires_at)
                .bind(voided_at)
                .bind(redeemed_by)
                .execute(&mut *c)
                .await
                .unwrap();
                sqlx::query("UPDATE messages SET coupon_code = $1 WHERE id = $2")
                    .bind(code)
                    .bind(id)
                    .execute(c)
                    .await
                    .unwrap();
            }
        }
    }

    /// An attempt row, as the worker writes one.
    pub async fn attempt(&mut self, id: i64, number: i64, at: DateTime<Utc>) {
        match self {
            Raw::Sqlite(c) => sqlx::query(
                "INSERT INTO message_attempts (message_id, attempt, provider, at, outcome)
                 VALUES (?1, ?2, 'aliyun', ?3, 'dead')",
            )
            .bind(id)
            .bind(number)
            .bind(at.timestamp_millis())
            .execute(c)
            .await
            .map(|_| ())
            .unwrap(),
            Raw::Pg(c) => sqlx::query(
                "INSERT INTO message_attempts (message_id, attempt, provider, at, outcome)
                 VALUES ($1, $2, 'aliyun', $3, 'dead')",
            )
            .bind(id)
            .bind(i32::try_from(number).unwrap())
            .bind(at)
            .execute(c)
            .await
            .map(|_| ())
            .unwrap(),
        }
    }
}
