//! SQL of the send-log page, shared by both backends.
//!
//! Every page is `ORDER BY created_at DESC, id DESC LIMIT n`, read from one
//! index whose columns end in `(created_at, id)`: `messages_by_customer`,
//! `_by_status`, `_by_campaign`, `_by_channel` (each `(x, created_at, id)`)
//! or `messages_by_created`. An equality filter, the time range and the
//! cursor are then one range of that index, read in order, and the scan stops
//! after `n + 1` matching rows; no sort, no `OFFSET`.
//!
//! When several equality filters are given, the index is chosen here rather
//! than left to SQLite's planner (which has no statistics to choose by): the
//! customer's (a handful of rows), then a status that is rare in a healthy
//! send log (`queued`, `deferred`, `sending`, `failed`, `dead`), then the
//! campaign's, then any other status's, then the channel's. On SQLite the
//! other filters are written `+column = ?`, which keeps them out of index
//! selection; PostgreSQL's planner has statistics and chooses for itself.

use chrono::{DateTime, Utc};

use crate::campaigns::outbox::MessageStatus;
use crate::store::send_log::SendLogQuery;

/// The backend's SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bind parameter of the page query, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Int(i64),
    /// An instant: epoch milliseconds on SQLite, `timestamptz` on PostgreSQL.
    Time(DateTime<Utc>),
}

/// The columns of a send-log row, in [`crate::store::send_log::SendLogRow`] order.
pub const COLUMNS: &str = "id, campaign_id, customer_id, occurrence, channel, provider, address, \
    status, reason, detail, attempts, provider_message_id, coupon_code, created_at, sent_at, \
    next_attempt_at, updated_at";

/// Which index drives the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Customer,
    Status,
    Campaign,
    Channel,
    Created,
}

/// Statuses few messages have once the queue has drained: an index range
/// over one of them is short.
fn is_rare(s: MessageStatus) -> bool {
    matches!(
        s,
        MessageStatus::Queued
            | MessageStatus::Deferred
            | MessageStatus::Sending
            | MessageStatus::Failed
            | MessageStatus::Dead
    )
}

fn driver(q: &SendLogQuery) -> Driver {
    if q.customer.is_some() {
        Driver::Customer
    } else if q.status.is_some_and(is_rare) {
        Driver::Status
    } else if q.campaign.is_some() {
        Driver::Campaign
    } else if q.status.is_some() {
        Driver::Status
    } else if q.channel.is_some() {
        Driver::Channel
    } else {
        Driver::Created
    }
}

struct Builder {
    dialect: Dialect,
    params: Vec<Param>,
}

impl Builder {
    fn push(&mut self, p: Param) -> String {
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${}", self.params.len()),
        }
    }

    /// `column = ?`, kept out of index selection on SQLite unless it drives.
    fn eq(&mut self, column: &str, drives: bool, value: String) -> String {
        let p = self.push(Param::Text(value));
        if drives || self.dialect == Dialect::Postgres {
            format!("{column} = {p}")
        } else {
            format!("+{column} = {p}")
        }
    }
}

/// The page query and its parameters. It reads `page_size + 1` rows: the
/// extra one says whether there is a next page.
pub fn page(dialect: Dialect, q: &SendLogQuery) -> (String, Vec<Param>) {
    let drives = driver(q);
    let mut b = Builder {
        dialect,
        params: Vec::new(),
    };
    let mut conds: Vec<String> = Vec::new();
    if let Some(c) = &q.customer {
        conds.push(b.eq("customer_id", drives == Driver::Customer, c.clone()));
    }
    if let Some(s) = q.status {
        conds.push(b.eq("status", drives == Driver::Status, s.as_str().to_owned()));
    }
    if let Some(c) = &q.campaign {
        conds.push(b.eq("campaign_id", drives == Driver::Campaign, c.clone()));
    }
    if let Some(c) = q.channel {
        conds.push(b.eq("channel", drives == Driver::Channel, c.as_str().to_owned()));
    }
    if let Some(t) = q.since {
        let p = b.push(Param::Time(t));
        conds.push(format!("created_at >= {p}"));
    }
    if let Some(t) = q.until {
        let p = b.push(Param::Time(t));
        conds.push(format!("created_at < {p}"));
    }
    if let Some(c) = q.before {
        let at = b.push(Param::Time(c.created_at));
        let id = b.push(Param::Int(c.id));
        conds.push(format!("(created_at, id) < ({at}, {id})"));
    }
    let limit = b.push(Param::Int(i64::from(q.page_size()) + 1));
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM messages{filter} ORDER BY created_at DESC, id DESC LIMIT {limit}"
    );
    (sql, b.params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Channel;
    use crate::store::send_log::LogCursor;

    #[test]
    fn one_filter_drives_and_the_others_only_filter_on_sqlite() {
        let q = SendLogQuery {
            campaign: Some("winback".into()),
            status: Some(MessageStatus::Sent),
            channel: Some(Channel::Sms),
            ..SendLogQuery::default()
        };
        let (sql, params) = page(Dialect::Sqlite, &q);
        assert!(sql.contains("+status = ?"), "{sql}");
        assert!(sql.contains(" campaign_id = ?"), "{sql}");
        assert!(sql.contains("+channel = ?"), "{sql}");
        assert_eq!(params.len(), 4);
        assert_eq!(params[3], Param::Int(51));

        let rare = SendLogQuery {
            status: Some(MessageStatus::Dead),
            ..q.clone()
        };
        let (sql, _) = page(Dialect::Sqlite, &rare);
        assert!(sql.contains(" status = ?"), "{sql}");
        assert!(sql.contains("+campaign_id = ?"), "{sql}");
    }

    #[test]
    fn postgres_numbers_its_parameters() {
        let q = SendLogQuery {
            customer: Some("C1".into()),
            since: Some(DateTime::UNIX_EPOCH),
            before: Some(LogCursor {
                created_at: DateTime::UNIX_EPOCH,
                id: 9,
            }),
            limit: 10,
            ..SendLogQuery::default()
        };
        let (sql, params) = page(Dialect::Postgres, &q);
        assert!(
            sql.ends_with(
                "WHERE customer_id = $1 AND created_at >= $2 AND (created_at, id) < ($3, $4) \
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            ),
            "{sql}"
        );
        assert_eq!(params.len(), 5);
    }
}
