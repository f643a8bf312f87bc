//! SQL of a campaign run, shared by both backends: finding the candidates
//! (set-based, into the temporary `camp_cand`) and reading them back a page
//! at a time with what the planner needs.
//!
//! The caller has filled the temporary tables `seg_today` / `seg_birthdays`
//! (the calendar the audience expression reads) and `camp_due` (the trigger's
//! due rows: birthday month-days, lapse ranges or broadcast occurrences per
//! store key). Every value is a bind parameter; instants are epoch
//! milliseconds, turned into timestamps on PostgreSQL.

use chrono::{DateTime, Utc};

use crate::campaigns::outbox::{
    AudienceQuery, CandidateQuery, LapseRange, MemberTest, Rival, Selector,
};
use crate::expr::{Dialect, Placeholders, SqlParam};
use crate::store::UNDELIVERABLE_SQL;

/// Statuses that count towards the frequency cap: planned or gone out.
pub const CAPPED_STATUSES: &str = "('queued', 'deferred', 'sending', 'sent', 'delivered')";

fn text(d: Dialect, ph: &mut Placeholders, s: &str) -> String {
    ph.push(d, SqlParam::Text(s.to_owned()))
}

fn int(d: Dialect, ph: &mut Placeholders, n: i64) -> String {
    ph.push(d, SqlParam::Int(n))
}

/// An instant as the backend stores it.
pub fn instant(d: Dialect, ph: &mut Placeholders, t: DateTime<Utc>) -> String {
    let p = ph.push(d, SqlParam::Int(t.timestamp_millis()));
    match d {
        Dialect::Sqlite => p,
        Dialect::Postgres => format!("to_timestamp({p}::bigint / 1000.0)"),
    }
}

/// A stored instant as epoch milliseconds.
pub fn as_ms(d: Dialect, column: &str) -> String {
    match d {
        Dialect::Sqlite => column.to_owned(),
        Dialect::Postgres => {
            format!("(floor(extract(epoch FROM {column}) * 1000))::bigint")
        }
    }
}

/// `YYYY-MM-DD` of a local day number.
fn day_text(d: Dialect, column: &str) -> String {
    match d {
        Dialect::Sqlite => format!("date({column} * 86400, 'unixepoch')"),
        Dialect::Postgres => {
            format!("to_char(DATE '1970-01-01' + {column}::integer, 'YYYY-MM-DD')")
        }
    }
}

fn in_list(d: Dialect, ph: &mut Placeholders, column: &str, values: &[&str]) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let items: Vec<String> = values.iter().map(|v| text(d, ph, v)).collect();
    Some(format!("{column} IN ({})", items.join(", ")))
}

/// Membership of any of `tests`, for the customer `c` with attributes `a`.
pub fn member_sql(d: Dialect, ph: &mut Placeholders, tests: &[MemberTest]) -> String {
    let pick = |f: fn(&MemberTest) -> Option<&str>| tests.iter().filter_map(f).collect::<Vec<_>>();
    let stages = pick(|t| match t {
        MemberTest::Stage(s) => Some(s),
        _ => None,
    });
    let tiers = pick(|t| match t {
        MemberTest::Tier(s) => Some(s),
        _ => None,
    });
    let custom = pick(|t| match t {
        MemberTest::Custom(s) => Some(s),
        _ => None,
    });
    let mut parts = Vec::new();
    parts.extend(in_list(d, ph, "COALESCE(a.lifecycle, '')", &stages));
    parts.extend(in_list(d, ph, "COALESCE(a.value_tier, '')", &tiers));
    if let Some(list) = in_list(d, ph, "m.segment", &custom) {
        parts.push(format!(
            "EXISTS (SELECT 1 FROM segment_memberships m WHERE m.customer_id = c.id AND {list})"
        ));
    }
    if parts.is_empty() {
        "1 = 0".to_owned()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

/// The audience's conditions on `c` (customers), `a` (customer_attributes,
/// left-joined) and `t` (seg_today).
pub fn audience_sql(d: Dialect, ph: &mut Placeholders, q: &AudienceQuery) -> String {
    let mut parts = vec!["1 = 1".to_owned()];
    let stores: Vec<&str> = q.stores.iter().map(String::as_str).collect();
    parts.extend(in_list(d, ph, "COALESCE(c.store_code, '')", &stores));
    if !q.include.is_empty() {
        parts.push(member_sql(d, ph, &q.include));
    }
    if !q.exclude.is_empty() {
        parts.push(format!("NOT {}", member_sql(d, ph, &q.exclude)));
    }
    if let Some(f) = &q.filter {
        parts.push(format!("COALESCE({}, {})", f.to_sql(d, ph), false_value(d)));
    }
    parts.join(" AND ")
}

fn false_value(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "0",
        Dialect::Postgres => "false",
    }
}

fn not_yet_sent(d: Dialect, ph: &mut Placeholders, campaign: &str, occurrence: &str) -> String {
    let prefix = text(d, ph, &format!("{campaign}/"));
    format!(
        "NOT EXISTS (SELECT 1 FROM messages m WHERE m.dedupe_key = {prefix} || c.id || '/' || {occurrence})"
    )
}

/// Every store key's lapse range at once, as constants: the planners cannot
/// see the bounds in `camp_due` row by row, and without these they walk the
/// whole `customer_attributes` table instead of a range of the index on
/// `(store_key, last_order_day)`.
fn lapse_bounds(d: Dialect, ph: &mut Placeholders, rows: &[LapseRange]) -> String {
    let Some(hi) = rows.iter().map(|r| r.last_day_max).max() else {
        return String::new();
    };
    match rows.iter().map(|r| r.last_day_min).min().flatten() {
        Some(lo) => format!(
            "\n    AND a.last_order_day BETWEEN {} AND {}",
            int(d, ph, lo),
            int(d, ph, hi)
        ),
        None => format!("\n    AND a.last_order_day <= {}", int(d, ph, hi)),
    }
}

/// Customers whose candidates one statement looks for, for pages of
/// `batch_size`: a run finds its candidates a range of customer ids at a
/// time, so that the first pages are planned and written while the rest are
/// still being found. Ten pages' worth of customers (100,000 by default)
/// yields a page or two of candidates for a typical win-back.
pub fn candidate_chunk(batch_size: usize) -> usize {
    batch_size.max(1).saturating_mul(10)
}

/// The statement that fills `camp_cand (customer_id, occurrence, due_at)`
/// with the candidates among customers whose id is in `(lo, hi]`. The
/// returned parameters are followed by `lo` and `hi`, which the caller binds.
pub fn select_candidates(q: &CandidateQuery, d: Dialect) -> (String, Vec<SqlParam>) {
    let mut ph = Placeholders::new();
    // Pushed last: SQLite's `?` are numbered in the order they appear, and
    // the range is the statement's last condition.
    let range = |ph: &mut Placeholders, column: &str| {
        let lo = text(d, ph, "");
        let hi = text(d, ph, "");
        format!("\n  AND {column} > {lo} AND {column} <= {hi}")
    };
    let insert = match d {
        Dialect::Sqlite => "INSERT OR IGNORE INTO camp_cand (customer_id, occurrence, due_at)",
        Dialect::Postgres => "INSERT INTO camp_cand (customer_id, occurrence, due_at)",
    };
    let tail = match d {
        Dialect::Sqlite => "",
        Dialect::Postgres => " ON CONFLICT DO NOTHING",
    };
    let sql = match &q.selector {
        Selector::Birthday(_) => {
            let audience = audience_sql(d, &mut ph, &q.audience);
            let fresh = not_yet_sent(d, &mut ph, &q.campaign_id, "x.occurrence");
            format!(
                r#"{insert}
SELECT c.id, x.occurrence, x.due_at
FROM customers c
JOIN seg_today t ON t.store_key = COALESCE(c.store_code, '')
JOIN camp_due x ON x.store_key = t.store_key AND x.month = c.birth_month AND x.day = c.birth_day
LEFT JOIN customer_attributes a ON a.customer_id = c.id
WHERE {audience} AND {fresh}{range}{tail}"#,
                range = range(&mut ph, "c.id"),
            )
        }
        Selector::Broadcast(_) => {
            let audience = audience_sql(d, &mut ph, &q.audience);
            let fresh = not_yet_sent(d, &mut ph, &q.campaign_id, "x.occurrence");
            format!(
                r#"{insert}
SELECT c.id, x.occurrence, x.due_at
FROM customers c
JOIN seg_today t ON t.store_key = COALESCE(c.store_code, '')
JOIN camp_due x ON x.store_key = t.store_key
LEFT JOIN customer_attributes a ON a.customer_id = c.id
WHERE {audience} AND {fresh}{range}{tail}"#,
                range = range(&mut ph, "c.id"),
            )
        }
        Selector::Lapsed(rows) => {
            let now = as_ms(d, &instant(d, &mut ph, q.now));
            let bounds = lapse_bounds(d, &mut ph, rows);
            let audience = audience_sql(d, &mut ph, &q.audience);
            let occurrence = format!("'lapse:' || {}", day_text(d, "a.last_order_day"));
            let fresh = not_yet_sent(d, &mut ph, &q.campaign_id, &occurrence);
            // A newer order than the attributes know of (the segments job has
            // not run since) means the customer is back: not lapsed.
            format!(
                r#"{insert}
SELECT c.id, {occurrence}, {now}
FROM camp_due x
JOIN customer_attributes a ON a.store_key = x.store_key AND a.last_order_day <= x.last_max
    AND (x.last_min IS NULL OR a.last_order_day >= x.last_min){bounds}
JOIN customers c ON c.id = a.customer_id
JOIN seg_today t ON t.store_key = a.store_key
WHERE {audience}
  AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id
                  AND o.ordered_at > a.last_order_at AND o.amount_fen >= 0)
  AND {fresh}{range}{tail}"#,
                range = range(&mut ph, "a.customer_id"),
            )
        }
        Selector::SegmentEntered {
            key,
            member,
            since,
            until,
        } => {
            let key = text(d, &mut ph, key);
            let since = instant(d, &mut ph, *since);
            let until = instant(d, &mut ph, *until);
            let at_ms = as_ms(d, "max(s.at)");
            let member = member_sql(d, &mut ph, std::slice::from_ref(member));
            let audience = audience_sql(d, &mut ph, &q.audience);
            let occurrence = match d {
                Dialect::Sqlite => "'entered:' || e.transition",
                Dialect::Postgres => "'entered:' || e.transition::text",
            };
            let fresh = not_yet_sent(d, &mut ph, &q.campaign_id, occurrence);
            format!(
                r#"{insert}
SELECT c.id, {occurrence}, e.at_ms
FROM (SELECT s.customer_id, max(s.id) AS transition, {at_ms} AS at_ms
      FROM segment_transitions s
      WHERE s.segment = {key} AND s.change = 'entered' AND s.at > {since} AND s.at <= {until}
      GROUP BY s.customer_id) e
JOIN customers c ON c.id = e.customer_id
JOIN seg_today t ON t.store_key = COALESCE(c.store_code, '')
LEFT JOIN customer_attributes a ON a.customer_id = c.id
WHERE {member} AND {audience} AND {fresh}{range}{tail}"#,
                range = range(&mut ph, "c.id"),
            )
        }
    };
    let mut params = ph.into_params();
    params.truncate(params.len() - 2);
    (sql, params)
}

/// The start of the customer's store's local day (a rival must be of the
/// same day). On SQLite from the zone's offset now, which the planner's exact
/// check of the local date corrects on a day the clocks change.
fn day_start(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => {
            "(SELECT t.today * 86400000 - t.offset_ms FROM seg_today t \
             WHERE t.store_key = COALESCE(c.store_code, ''))"
        }
        Dialect::Postgres => {
            "(SELECT t.today_date::timestamp AT TIME ZONE t.tz FROM seg_today t \
             WHERE t.store_key = COALESCE(c.store_code, ''))"
        }
    }
}

/// Statuses of a message that has not left yet and may still be replaced.
pub const UNSENT_STATUSES: &str = "('queued', 'deferred')";

/// One page of candidates after customer id `?`, with everything the planner
/// needs. Parameters: cap_since (ms), after (text), limit, cap_since again,
/// priority — in the order they appear, as SQLite's `?` needs. The page is
/// cut from `camp_cand` before the joins: joined first, PostgreSQL
/// merge-joins it with `customers` read from the smallest id on every page.
pub fn page(d: Dialect) -> String {
    let mut ph = Placeholders::new();
    let cap_since = instant(d, &mut ph, DateTime::<Utc>::MIN_UTC);
    let after = ph.push(d, SqlParam::Text(String::new()));
    let limit = int(d, &mut ph, 0);
    let rival_since = instant(d, &mut ph, DateTime::<Utc>::MIN_UTC);
    let priority = int(d, &mut ph, 0);
    // 0: not listed, 1: opted out, 2: undeliverable (`Blocked::from_code`).
    let opted = |channel: &str, column: &str| {
        format!(
            "CAST(COALESCE((SELECT CASE WHEN {UNDELIVERABLE_SQL} THEN 2 ELSE 1 END FROM opt_outs o \
             WHERE o.channel = '{channel}' AND o.address = c.{column}), 0) AS BIGINT)"
        )
    };
    format!(
        r#"SELECT x.customer_id, x.occurrence, x.due_at, c.name, c.phone, c.email, c.wechat_openid,
    c.sms_opt_in, c.email_opt_in, c.wechat_opt_in, COALESCE(c.store_code, '') AS store_key,
    s.name AS store_name, s.sms_signature, CAST(c.birth_month AS BIGINT) AS birth_month,
    CAST(c.birth_day AS BIGINT) AS birth_day, c.tags,
    CAST(COALESCE(a.order_count, 0) AS BIGINT) AS order_count,
    CAST(COALESCE(a.total_spent_fen, 0) AS BIGINT) AS total_spent_fen,
    a.lifecycle, a.value_tier,
    (SELECT CAST(b.days AS BIGINT) FROM seg_today t JOIN seg_birthdays b ON b.today = t.today
     WHERE t.store_key = COALESCE(c.store_code, '') AND b.month = c.birth_month AND b.day = c.birth_day) AS days_to_birthday,
    {sms} AS sms_blocked, {email} AS email_blocked, {wechat} AS wechat_blocked,
    (SELECT count(*) FROM (SELECT created_at, status FROM messages WHERE customer_id = c.id{fence}) m
       WHERE m.created_at >= {cap_since} AND m.status IN {CAPPED_STATUSES}) AS recent_messages,
    w.id AS rival_id, w.campaign_id AS rival_campaign, CAST(w.priority AS BIGINT) AS rival_priority,
    {rival_created} AS rival_created_at
FROM (SELECT customer_id, occurrence, due_at FROM camp_cand WHERE customer_id > {after}
      ORDER BY customer_id LIMIT {limit}) x
JOIN customers c ON c.id = x.customer_id
LEFT JOIN stores s ON s.code = c.store_code
LEFT JOIN customer_attributes a ON a.customer_id = c.id
LEFT JOIN messages w ON w.id = (SELECT m.id FROM (SELECT id, status, priority, created_at
        FROM messages WHERE customer_id = c.id{fence}) m
    WHERE m.created_at >= {rival_since} AND m.created_at >= {day_start}
      AND m.status IN {UNSENT_STATUSES} AND m.priority < {priority}
    ORDER BY m.priority, m.created_at DESC, m.id DESC LIMIT 1)
ORDER BY x.customer_id"#,
        sms = opted("sms", "phone"),
        email = opted("email", "email"),
        wechat = opted("wechat", "wechat_openid"),
        rival_created = as_ms(d, "w.created_at"),
        day_start = day_start(d),
        fence = fence(d),
    )
}

/// Keeps the conditions outside a subquery out of it. A candidate's recent
/// messages and rival are found among that customer's messages, a range of
/// `messages_by_customer`; PostgreSQL is left no other index to read them
/// by, because the subquery tests the customer alone. With the time and
/// status tests beside it, the planner, while its statistics still count the
/// table empty (a new database, or one whose first large run is under way),
/// read instead every message of the week through `messages_by_created`
/// (2 ms per candidate, 20 s a page) or every unsent one through
/// `messages_due` (0.2 ms per candidate).
fn fence(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "",
        Dialect::Postgres => " OFFSET 0",
    }
}

/// The page's rival columns (`rival_id`, `rival_campaign`, `rival_priority`,
/// `rival_created_at` in epoch milliseconds) as a [`Rival`].
pub fn rival(
    id: Option<i64>,
    campaign_id: Option<String>,
    priority: Option<i64>,
    created_ms: Option<i64>,
) -> Option<Rival> {
    Some(Rival {
        message_id: id?,
        campaign_id: campaign_id?,
        priority: i32::try_from(priority?).ok()?,
        created_at: DateTime::<Utc>::from_timestamp_millis(created_ms?)?,
    })
}

/// Replace a lower-priority message that has not left yet. Parameters:
/// detail, now (ms), message id. Affects no row when it has left meanwhile.
pub fn preempt(d: Dialect) -> String {
    let mut ph = Placeholders::new();
    let detail = text(d, &mut ph, "");
    let now = instant(d, &mut ph, DateTime::<Utc>::MIN_UTC);
    let id = int(d, &mut ph, 0);
    format!(
        "UPDATE messages SET status = 'suppressed', reason = 'capped', detail = {detail}, \
         next_attempt_at = NULL, updated_at = {now} WHERE id = {id} AND status IN {UNSENT_STATUSES}"
    )
}

/// Void the coupon of a replaced message. Parameters: now (ms), message id.
pub fn void_coupon(d: Dialect) -> String {
    let mut ph = Placeholders::new();
    let now = instant(d, &mut ph, DateTime::<Utc>::MIN_UTC);
    let id = int(d, &mut ph, 0);
    format!("UPDATE coupons SET voided_at = {now} WHERE message_id = {id} AND voided_at IS NULL")
}

/// A planned message whose rival left before it could be replaced is capped
/// after all, without its coupon. Parameters: detail, message id.
pub fn capped_after_all(d: Dialect) -> String {
    let mut ph = Placeholders::new();
    let detail = text(d, &mut ph, "");
    let id = int(d, &mut ph, 0);
    format!(
        "UPDATE messages SET status = 'suppressed', reason = 'capped', detail = {detail}, \
         next_attempt_at = NULL, coupon_code = NULL WHERE id = {id}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(store_key: &str, last_day_max: i64, last_day_min: Option<i64>) -> LapseRange {
        LapseRange {
            store_key: store_key.to_owned(),
            last_day_max,
            last_day_min,
        }
    }

    #[test]
    fn a_candidates_messages_are_looked_up_by_the_customer_alone() {
        // The recent messages and the rival: on PostgreSQL the subquery that
        // reads `messages` tests only the customer, behind a fence, so the
        // time and status tests cannot steer it to another index.
        let pg = page(Dialect::Postgres);
        assert_eq!(
            pg.matches("FROM messages WHERE customer_id = c.id OFFSET 0) m")
                .count(),
            2,
            "{pg}"
        );
        let sqlite = page(Dialect::Sqlite);
        assert_eq!(
            sqlite
                .matches("FROM messages WHERE customer_id = c.id) m")
                .count(),
            2,
            "{sqlite}"
        );
    }

    #[test]
    fn lapse_bounds_span_every_store_key() {
        let mut ph = Placeholders::new();
        let rows = [
            range("SH-001", 20750, Some(20721)),
            range("SYD-001", 20751, Some(20722)),
        ];
        assert_eq!(
            lapse_bounds(Dialect::Postgres, &mut ph, &rows),
            "\n    AND a.last_order_day BETWEEN $1 AND $2"
        );
        assert_eq!(ph.params(), &[SqlParam::Int(20721), SqlParam::Int(20751)]);

        // One store key without a lower bound leaves the range open below.
        let mut ph = Placeholders::new();
        let rows = [range("SH-001", 20750, Some(20721)), range("", 20750, None)];
        assert_eq!(
            lapse_bounds(Dialect::Sqlite, &mut ph, &rows),
            "\n    AND a.last_order_day <= ?"
        );
        assert_eq!(ph.params(), &[SqlParam::Int(20750)]);

        let mut ph = Placeholders::new();
        assert_eq!(lapse_bounds(Dialect::Sqlite, &mut ph, &[]), "");
        assert!(ph.params().is_empty());
    }
}
