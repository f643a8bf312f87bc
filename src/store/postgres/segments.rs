//! The segments job on PostgreSQL: the same three phases as on SQLite (see
//! `store/sqlite/segments.rs`), in PostgreSQL's dialect.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Connection, Postgres, Row};

use super::{PgStore, probe_by_key};
use crate::domain::CustomerId;
use crate::expr::{BindParams, Dialect, Placeholders, SqlParam};
use crate::segments::attributes::{
    CustomerAttributes, CustomerProfile, Membership, PROFILE_TRANSITIONS, SegmentKind,
    SegmentOutcome, SegmentSize, Transition,
};
use crate::segments::derive as shared;
use crate::segments::file::CustomSegment;
use crate::segments::plan::{BirthdayDistance, RecomputeMode, SegmentPlan, StoreDay};
use crate::segments::rules::{RECENT_WINDOW_DAYS, STAGES, TIER_WINDOW_DAYS, TIERS};
use crate::segments::thresholds::{ThresholdRow, ThresholdScan};
use crate::store::segments_sql::{self, Batch, Moved, RankScope};
use crate::store::{Store, StoreError};
use futures::TryStreamExt;
use tokio::sync::Mutex;

type Conn = PoolConnection<Postgres>;

/// How long a full run waits for its first extra connection.
const EXTRA_LANE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl PgStore {
    pub(super) async fn run_segments(
        &self,
        plan: &SegmentPlan,
    ) -> Result<SegmentOutcome, StoreError> {
        let mut conn = self.pool.acquire().await?;
        prepare_session(&mut conn, plan).await?;
        // A first full run finds every customer new: each row is written
        // once, ranked, instead of twice (see `segment_fill`).
        let fill = plan.mode == RecomputeMode::Full
            && !sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM customer_attributes)")
                .fetch_one(&mut *conn)
                .await?;
        // A full run's batches are independent ranges of customers: they
        // are spread over as many connections as the server has cores
        // (each one works one core). The first extra connection is waited
        // for, further ones taken only if idle. An incremental run keeps to
        // one: its batches update the shared histogram.
        let mut lanes = Vec::new();
        if plan.mode == RecomputeMode::Full {
            for i in 1..self.write_lanes() {
                let extra = if i == 1 {
                    // A daemon busy with other jobs may have none to spare:
                    // the run then does with fewer lanes.
                    match tokio::time::timeout(EXTRA_LANE_WAIT, self.pool.acquire()).await {
                        Ok(acquired) => Some(acquired?),
                        Err(_) => None,
                    }
                } else {
                    self.pool.try_acquire()
                };
                let Some(mut extra) = extra else { break };
                prepare_session(&mut extra, plan).await?;
                lanes.push(extra);
            }
        }
        if !lanes.is_empty() {
            // Each connection builds an index of its own on a core of its
            // own: parallel workers would only crowd those cores (the six
            // indexes of a first run: 3.8 s instead of 4.6 s on two cores).
            for c in std::iter::once(&mut conn).chain(lanes.iter_mut()) {
                sqlx::query("SET max_parallel_maintenance_workers = 0")
                    .execute(&mut **c)
                    .await?;
            }
        }
        // A first run writes into empty tables without their indexes and
        // builds them at its end, one per connection: into the history
        // (stages, tiers and custom segments' entries) 2.4 s summed over
        // two lanes for 2,000,000 rows, where adding the entries one by one
        // cost about 8 s; into `customer_attributes` 0.9 s summed, where
        // the fill maintaining them cost 1.6 s more. The primary keys too:
        // each batch of 50,000 customers wrote its rows and their 100,000
        // entries in 370 ms with them, 240 ms without, and building both
        // keys afterwards takes 1.1 s summed. Any run first builds those
        // that a run that stopped before its end left out.
        restore_indexes(&mut conn, &mut lanes).await?;
        let mut deferred: Vec<&DeferredIndex> = Vec::new();
        if fill {
            let history_empty =
                !sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM segment_transitions)")
                    .fetch_one(&mut *conn)
                    .await?;
            deferred.extend(
                DEFERRED_INDEXES
                    .iter()
                    .filter(|index| history_empty || index.table == "customer_attributes"),
            );
        }
        for index in &deferred {
            sqlx::query(AssertSqlSafe(index.drop()))
                .execute(&mut *conn)
                .await?;
        }
        // A fill ranks everyone as it writes them.
        let plan = &*if fill {
            std::borrow::Cow::Owned(plan.ranking_everyone())
        } else {
            std::borrow::Cow::Borrowed(plan)
        };
        let mut outcome = SegmentOutcome::default();
        let started = std::time::Instant::now();
        let (recomputed, changed, bounds, todo) =
            phase_a(&mut conn, &mut lanes, plan, fill).await?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            recomputed,
            changed,
            "order figures"
        );
        outcome.recomputed = recomputed;
        outcome.changed = changed;
        let plan = &*plan.after_figures(todo, recomputed);
        let started = std::time::Instant::now();
        let (changed, transitions) = phase_b(&mut conn, &mut lanes, plan, &bounds, fill).await?;
        // The lanes stay for the indexes' build at the end.
        if deferred.is_empty() {
            lanes.clear();
        }
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            changed,
            transitions,
            "stages and tiers"
        );
        outcome.changed += changed;
        outcome.transitions += transitions;
        // A full run may have written every row (the first one does): the
        // custom segments' joins, and the campaigns' that follow, are
        // planned on the new figures, not on the statistics of an empty or
        // older table (0.3 s for 1,000,000 customers). Fewer changed rows
        // than a tenth (autovacuum's own threshold) leave the statistics
        // about as they were.
        let analyze =
            plan.mode == RecomputeMode::Full && outcome.changed * 10 >= outcome.recomputed;
        let started = std::time::Instant::now();
        if deferred.is_empty() {
            if analyze {
                analyze_attributes(&mut conn).await?;
            }
            outcome.transitions += phase_c(&mut conn, plan).await?;
        } else {
            // The deferred indexes are built on the other lanes meanwhile
            // (this connection joins them when done). Where two statements
            // lock each other out, one waits: an index of
            // `customer_attributes` for the `ANALYZE`, the custom segments'
            // history for an index of `segment_transitions`.
            let missing = missing_indexes(&mut conn).await?;
            let queue = Mutex::new(missing.iter());
            let main = async {
                if analyze {
                    analyze_attributes(&mut conn).await?;
                }
                let transitions = phase_c(&mut conn, plan).await?;
                build_indexes(&mut conn, &queue).await?;
                Ok::<u64, StoreError>(transitions)
            };
            let others = lanes.iter_mut().map(|c| build_indexes(c, &queue));
            let (transitions, _) =
                futures::future::try_join(main, futures::future::try_join_all(others)).await?;
            attach_keys(&mut conn, &missing).await?;
            outcome.transitions += transitions;
        }
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            indexes = deferred.len(),
            "custom segments and indexes"
        );
        Ok(outcome)
    }

    pub(super) async fn sizes(&self) -> Result<Vec<SegmentSize>, StoreError> {
        let mut out = Vec::new();
        for (column, kind, names) in [
            ("lifecycle", SegmentKind::Lifecycle, &STAGES[..]),
            ("value_tier", SegmentKind::Tier, &TIERS[..]),
        ] {
            let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {column}, count(*) FROM customer_attributes GROUP BY {column}"
            )))
            .fetch_all(&self.pool)
            .await?;
            out.extend(shared::sizes_in_order(kind, names, rows));
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT segment, count(*) FROM segment_memberships GROUP BY segment ORDER BY segment",
        )
        .fetch_all(&self.pool)
        .await?;
        out.extend(rows.into_iter().map(|(segment, n)| SegmentSize {
            segment,
            kind: SegmentKind::Custom,
            customers: u64::try_from(n).unwrap_or(0),
        }));
        Ok(out)
    }

    pub(super) async fn profile(
        &self,
        id: &CustomerId,
        plan: &SegmentPlan,
    ) -> Result<Option<CustomerProfile>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            r#"SELECT a.customer_id, a.joined_at, a.order_count::bigint AS order_count,
                   a.total_spent_fen, a.avg_order_fen, a.order_count_90d::bigint AS order_count_90d,
                   a.spent_90d_fen, a.spent_365d_fen, a.first_order_at, a.last_order_at,
                   a.first_order_day::bigint AS first_order_day, a.last_order_day::bigint AS last_order_day,
                   a.favorite_daypart, {scores}, a.lifecycle, a.value_tier, a.computed_at,
                   c.store_code, c.tags, c.birth_month::bigint AS birth_month, c.birth_day::bigint AS birth_day
               FROM customer_attributes a JOIN customers c ON c.id = a.customer_id
               LEFT JOIN segment_run_state t ON t.store_key = a.store_key
               WHERE a.customer_id = $1"#,
            scores = segments_sql::score_select(Dialect::Postgres),
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let attributes = attributes_from_row(&row, plan)?;
        let memberships = sqlx::query_as::<_, (String, chrono::DateTime<chrono::Utc>)>(
            "SELECT segment, entered_at FROM segment_memberships WHERE customer_id = $1 ORDER BY segment",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(segment, entered_at)| Membership {
            segment,
            entered_at,
        })
        .collect();
        let transitions = sqlx::query_as::<_, (String, String, chrono::DateTime<chrono::Utc>)>(
            r#"SELECT segment, change, at FROM segment_transitions WHERE customer_id = $1
               ORDER BY at DESC, id DESC LIMIT $2"#,
        )
        .bind(id.as_str())
        .bind(PROFILE_TRANSITIONS)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(segment, change, at)| Transition {
            segment,
            change,
            at,
        })
        .collect();
        Ok(Some(CustomerProfile {
            attributes,
            memberships,
            transitions,
        }))
    }
}

fn attributes_from_row(row: &PgRow, plan: &SegmentPlan) -> Result<CustomerAttributes, StoreError> {
    let store: Option<String> = row.try_get("store_code")?;
    let tags: String = row.try_get("tags")?;
    let today = plan.day_of(store.as_deref().unwrap_or("")).today;
    let last_order_day: Option<i64> = row.try_get("last_order_day")?;
    let joined_at: chrono::DateTime<chrono::Utc> = row.try_get("joined_at")?;
    Ok(CustomerAttributes {
        customer_id: row.try_get("customer_id")?,
        tags: crate::domain::Tags::from_db(&tags)
            .iter()
            .map(str::to_owned)
            .collect(),
        today,
        joined_at,
        days_since_joined: shared::days_since(plan, store.as_deref().unwrap_or(""), joined_at),
        recency_days: last_order_day.map(|d| today - d),
        order_count: row.try_get("order_count")?,
        total_spent_fen: row.try_get("total_spent_fen")?,
        avg_order_value_fen: row.try_get("avg_order_fen")?,
        order_count_90d: row.try_get("order_count_90d")?,
        spent_90d_fen: row.try_get("spent_90d_fen")?,
        spent_365d_fen: row.try_get("spent_365d_fen")?,
        first_order_at: row.try_get("first_order_at")?,
        last_order_at: row.try_get("last_order_at")?,
        first_order_day: row.try_get("first_order_day")?,
        last_order_day,
        favorite_daypart: row.try_get("favorite_daypart")?,
        r_score: row.try_get("r_score")?,
        f_score: row.try_get("f_score")?,
        m_score: row.try_get("m_score")?,
        rfm: row.try_get("rfm")?,
        lifecycle: row.try_get("lifecycle")?,
        value_tier: row.try_get("value_tier")?,
        days_to_birthday: shared::days_to_birthday(
            plan,
            today,
            row.try_get("birth_month")?,
            row.try_get("birth_day")?,
        ),
        computed_at: row.try_get("computed_at")?,
        store,
    })
}

/// Set up a connection for the segments job: its session settings and
/// calendar tables. The settings are for this job alone (asynchronous
/// commits above all): the connection is closed afterwards, on every path,
/// instead of going back to the pool with them.
async fn prepare_session(conn: &mut Conn, plan: &SegmentPlan) -> Result<(), StoreError> {
    conn.close_on_drop();
    for sql in [
        // Per-batch statements are short: compiling them is slower than running them.
        "SET jit = off",
        "SET work_mem = '64MB'",
        // Each batch has its own id range: plan it for that range.
        "SET plan_cache_mode = force_custom_plan",
        // The tables the job reads are in memory by the time it reads them
        // by key: a scan of every customer for a few thousand of them is
        // the costlier plan, whatever the default page cost says.
        "SET random_page_cost = 1.1",
        // Each batch is a transaction of its own that the next run redoes
        // if it is lost (its customers stay marked until it commits): a
        // crash may cost the last batches, never half of one, so the job
        // does not wait for each commit to reach the disk.
        "SET synchronous_commit = off",
    ] {
        sqlx::query(sql).execute(&mut **conn).await?;
    }
    load_calendar(conn, &plan.days, &plan.birthdays).await
}

/// Fill the temporary calendar tables `seg_today` and `seg_birthdays` that
/// expressions over attributes read, with the last run's score thresholds.
pub(super) async fn load_calendar(
    conn: &mut Conn,
    days: &[StoreDay],
    birthdays: &[BirthdayDistance],
) -> Result<(), StoreError> {
    let today_table = format!(
        "CREATE TEMP TABLE IF NOT EXISTS seg_today (store_key TEXT COLLATE \"C\" PRIMARY KEY, \
         today BIGINT NOT NULL, today_date DATE NOT NULL, recent_after DATE NOT NULL, \
         year_after DATE NOT NULL, tz TEXT NOT NULL, new_since TIMESTAMPTZ NOT NULL, \
         active_since TIMESTAMPTZ NOT NULL, at_risk_since TIMESTAMPTZ NOT NULL, \
         lapsed_since TIMESTAMPTZ NOT NULL{})",
        segments_sql::calendar_threshold_columns(Dialect::Postgres)
    );
    for sql in [
        today_table.as_str(),
        "CREATE TEMP TABLE IF NOT EXISTS seg_birthdays (today BIGINT NOT NULL, month INTEGER NOT NULL, \
         day INTEGER NOT NULL, days BIGINT NOT NULL, PRIMARY KEY (today, month, day))",
        "TRUNCATE seg_today",
        "TRUNCATE seg_birthdays",
    ] {
        sqlx::query(AssertSqlSafe(sql)).execute(&mut **conn).await?;
    }
    for d in days {
        sqlx::query(
            AssertSqlSafe(format!(
                "INSERT INTO seg_today (store_key, today, today_date, recent_after, year_after, tz, \
                 new_since, active_since, at_risk_since, lapsed_since) \
                 SELECT $1, $2, d, d - {RECENT_WINDOW_DAYS}, d - {TIER_WINDOW_DAYS}, $3, $4, $5, $6, $7 \
                 FROM (SELECT DATE '1970-01-01' + $2::integer AS d) today"
            )),
        )
        .bind(&d.store_key)
        .bind(d.today)
        .bind(d.tz.name())
        .bind(d.new_since)
        .bind(d.active_since)
        .bind(d.at_risk_since)
        .bind(d.lapsed_since)
        .execute(&mut **conn)
        .await?;
    }
    let (todays, months, days, dist): (Vec<i64>, Vec<i32>, Vec<i32>, Vec<i64>) = (
        birthdays.iter().map(|b| b.today).collect(),
        birthdays.iter().map(|b| i32::from(b.month)).collect(),
        birthdays.iter().map(|b| i32::from(b.day)).collect(),
        birthdays.iter().map(|b| b.days).collect(),
    );
    sqlx::query("INSERT INTO seg_birthdays SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::bigint[])")
        .bind(todays)
        .bind(months)
        .bind(days)
        .bind(dist)
        .execute(&mut **conn)
        .await?;
    sqlx::query(AssertSqlSafe(segments_sql::calendar_thresholds(
        "segment_run_state",
    )))
    .execute(&mut **conn)
    .await?;
    sqlx::query("ANALYZE seg_today")
        .execute(&mut **conn)
        .await?;
    Ok(())
}

pub(super) async fn next_bound(
    conn: &mut Conn,
    table: &str,
    lo: &str,
    size: usize,
) -> Result<Option<String>, StoreError> {
    Ok(next_batch(conn, table, lo, size).await?.map(|b| b.hi))
}

/// The next batch of the ids of `table.id` in key order after `lo`: at
/// most `size` of them, up to `hi`, in one index scan (see [`Batch`]).
pub(super) async fn next_batch(
    conn: &mut Conn,
    table: &str,
    lo: &str,
    size: usize,
) -> Result<Option<Batch>, StoreError> {
    let size = i64::try_from(size.max(1)).unwrap_or(i64::MAX);
    let sql = segments_sql::next_batch(table, Dialect::Postgres);
    let (hi, ids): (Option<String>, i64) = sqlx::query_as(AssertSqlSafe(sql))
        .bind(lo)
        .bind(size)
        .fetch_one(&mut **conn)
        .await?;
    Ok(hi.map(|hi| Batch {
        hi,
        ids: u64::try_from(ids).unwrap_or(0),
    }))
}

/// Where phase A's statement writes a batch's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FiguresInto {
    /// `segment_fill`, every row (a first full run).
    Fill,
    /// `customer_attributes`, the rows that changed.
    Changed,
    /// `customer_attributes`, the rows that changed, returning their keys
    /// and noting their histogram values in `seg_hist_rows` (old ones with
    /// -1, new ones with +1): a full run building on the previous one, and
    /// an incremental run.
    ChangedNoted,
}

/// Phase A's statement over a batch: the order figures of its customers,
/// written as `into` says.
fn phase_a_sql(plan: &SegmentPlan, into: FiguresInto) -> String {
    let d = &plan.rules.dayparts;
    // Each order's place is worked out once (the fence keeps PostgreSQL
    // from copying the expressions into every aggregate's filter): visible
    // by today, within the 90- and 365-day windows (whose first days
    // the calendar holds), a visit (refunds move money only, so they are
    // neither counted nor dated), and its local minute. (Each expression
    // here costs about 2 % of a full run.)
    let orders = r#"SELECT o.amount_fen AS amount, o.ordered_at AS at, o.local_date AS day,
            o.local_date <= t.today_date AS vis,
            o.local_date > t.recent_after AS recent,
            o.local_date > t.year_after AS in_year,
            o.local_date <= t.today_date AND o.amount_fen >= 0 AS visit,
            o.local_minute AS minute
        FROM orders o WHERE o.customer_id = c.id OFFSET 0"#;
    // Visits by daypart: morning, noon and afternoon, each from its start
    // to the next one's (evening is the rest, before the morning as well).
    let daypart = |from: u16, to: u16| {
        format!("count(*) FILTER (WHERE visit AND minute >= {from} AND minute < {to})")
    };
    let (dm, dn, da) = (
        daypart(d.morning, d.noon),
        daypart(d.noon, d.afternoon),
        daypart(d.afternoon, d.evening),
    );
    // Incremental runs are driven by the (few) ids in seg_todo.
    let (from, range) = match plan.mode {
        RecomputeMode::Full => ("customers c", "c.id > $2 AND c.id <= $3"),
        RecomputeMode::Incremental => (
            "seg_todo s JOIN customers c ON c.id = s.id",
            "s.id > $2 AND s.id <= $3",
        ),
    };
    // Only rows with a figure that changed reach the upsert: compared
    // first in a join with the stored rows of the batch, they are not
    // locked (nor logged) as the upsert's conflict check would (a batch of
    // 50,000 unchanged customers: 280 ms against 370 ms).
    let columns = segments_sql::FIGURE_COLUMNS;
    let list = |t: &str, cols: &[&str]| {
        cols.iter()
            .map(|c| format!("{t}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let reuse = plan.builds_on_previous && into != FiguresInto::Fill;
    let joined_day = segments_sql::joined_day(reuse, "p", "p.joined_day");
    let compared: Vec<&str> = segments_sql::compared_here(reuse).collect();
    // The row as written: `p`'s columns but its joined day (the statement
    // is flattened, so the zone's conversion runs only where it is needed).
    let written = segments_sql::FIGURE_COLUMNS
        .split(", ")
        .map(|c| match c {
            "joined_day" => format!("{joined_day} AS joined_day"),
            c => format!("p.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let changed = format!(
        r#") AS p ({columns})
LEFT JOIN customer_attributes a
    ON a.customer_id = p.customer_id AND a.customer_id > $2 AND a.customer_id <= $3
WHERE a.customer_id IS NULL
    OR ({}) IS DISTINCT FROM ({})"#,
        list("a", &compared),
        list("p", &compared)
    );
    let upsert = segments_sql::upsert_figures();
    let (head, tail) = match into {
        FiguresInto::Fill => (
            format!("INSERT INTO segment_fill ({columns})\n"),
            String::new(),
        ),
        FiguresInto::Changed => (
            format!("INSERT INTO customer_attributes AS ca ({columns})\nSELECT {written} FROM ("),
            format!("{changed}{upsert}"),
        ),
        FiguresInto::ChangedNoted => (
            format!(
                "WITH changed AS (\nSELECT {written}, a.customer_id IS NOT NULL AS had, {old_values} FROM (",
                old_values = segments_sql::HISTOGRAM_VALUE_COLUMNS
                    .iter()
                    .map(|c| format!("a.{c} AS old_{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            format!(
                r#"{changed}),
noted AS (
    INSERT INTO seg_hist_rows
    SELECT {old}, -1 FROM changed WHERE had
    UNION ALL SELECT {new}, 1 FROM changed)
INSERT INTO customer_attributes AS ca ({columns})
SELECT {columns} FROM changed{upsert}
RETURNING ca.customer_id"#,
                old = segments_sql::histogram_values("old_"),
                new = segments_sql::histogram_values(""),
            ),
        ),
    };
    format!(
        r#"{head}SELECT id, store_key, joined_at, joined_day, n, spent,
    CASE WHEN n > 0 THEN round(spent::numeric / n)::bigint END,
    n90, s90, s365, first_at, last_at, first_day - DATE '1970-01-01', last_day - DATE '1970-01-01',
    CASE WHEN n = 0 THEN NULL
         WHEN dm >= dn AND dm >= da AND dm >= n - dm - dn - da THEN 'morning'
         WHEN dn >= da AND dn >= n - dm - dn - da THEN 'noon'
         WHEN da >= n - dm - dn - da THEN 'afternoon'
         ELSE 'evening' END,
    LEAST(min90 + {RECENT_WINDOW_DAYS}, min365 + {TIER_WINDOW_DAYS}, future) - DATE '1970-01-01',
    today, $1
FROM (
    SELECT c.id AS id, t.store_key AS store_key, COALESCE(c.joined_at, c.created_at) AS joined_at,
        (COALESCE(c.joined_at, c.created_at) AT TIME ZONE t.tz)::date - DATE '1970-01-01' AS joined_day,
        t.today AS today, x.*
    FROM {from}
    JOIN seg_today t ON t.store_key = COALESCE(c.store_code, '')
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE visit) AS n,
            COALESCE(sum(amount) FILTER (WHERE vis), 0) AS spent,
            count(*) FILTER (WHERE visit AND recent) AS n90,
            COALESCE(sum(amount) FILTER (WHERE vis AND recent), 0) AS s90,
            COALESCE(sum(amount) FILTER (WHERE vis AND in_year), 0) AS s365,
            min(at) FILTER (WHERE visit) AS first_at,
            max(at) FILTER (WHERE visit) AS last_at,
            min(day) FILTER (WHERE visit) AS first_day,
            max(day) FILTER (WHERE visit) AS last_day,
            min(day) FILTER (WHERE vis AND recent) AS min90,
            min(day) FILTER (WHERE vis AND in_year) AS min365,
            min(day) FILTER (WHERE NOT vis) AS future,
            {dm} AS dm,
            {dn} AS dn,
            {da} AS da
        FROM ({orders}) o
    ) x
    WHERE {range}
) agg{tail}"#,
    )
}

/// Phase A: every customer's order figures (a full run, over all lanes) or
/// those of the marked and due customers (an incremental run, on `conn`).
/// A first full run (`fill`) writes them into `segment_fill`. Returns the
/// customers recomputed, the rows of `customer_attributes` changed, for a
/// full run the upper bound of each batch in id order, and the customers
/// in `seg_todo` to rank one by one (`u64::MAX` when too many to note).
async fn phase_a(
    conn: &mut Conn,
    lanes: &mut [Conn],
    plan: &SegmentPlan,
    fill: bool,
) -> Result<(u64, u64, Vec<String>, u64), StoreError> {
    match plan.mode {
        RecomputeMode::Incremental => {
            // The histogram's changes are noted by the statement that
            // writes the rows, from the old and new values it has at hand
            // (reading the batch's rows before and after took 0.35 s for
            // 10,000 customers).
            let sql = phase_a_sql(plan, FiguresInto::ChangedNoted);
            let (recomputed, changed) = incremental_figures(conn, plan, &sql).await?;
            Ok((recomputed, changed, Vec::new(), 0))
        }
        RecomputeMode::Full => {
            // Left over by a first run that did not finish: a fill starts
            // from an empty table, and any other run never reads it.
            sqlx::query("TRUNCATE segment_fill")
                .execute(&mut **conn)
                .await?;
            // Building on the previous run, the customers to rank one by
            // one are those whose marks a batch clears and those whose row
            // it writes: each batch returns their keys, noted up to the
            // plan's `noted_at_most` (more make the run rank everyone), and
            // notes the histogram's changes in its lane's `seg_hist_rows`.
            let into = if fill {
                FiguresInto::Fill
            } else if plan.notes_changes() {
                FiguresInto::ChangedNoted
            } else {
                FiguresInto::Changed
            };
            let noted = if into == FiguresInto::ChangedNoted {
                for sql in [
                    "CREATE TEMP TABLE IF NOT EXISTS seg_todo (id TEXT COLLATE \"C\" PRIMARY KEY)",
                    "TRUNCATE seg_todo",
                ] {
                    sqlx::query(sql).execute(&mut **conn).await?;
                }
                for c in std::iter::once(&mut *conn).chain(lanes.iter_mut()) {
                    for sql in [
                        segments_sql::histogram_rows_table(Dialect::Postgres),
                        segments_sql::HISTOGRAM_ROWS_CLEAR,
                    ] {
                        sqlx::query(sql).execute(&mut **c).await?;
                    }
                }
                Some(Mutex::new(Some(Vec::new())))
            } else {
                None
            };
            let sql = phase_a_sql(plan, into);
            let cursor = Mutex::new(Cursor::default());
            let work = std::iter::once(&mut *conn)
                .chain(lanes.iter_mut())
                .map(|c| figures_lane(c, &cursor, plan, &sql, noted.as_ref()));
            let done = futures::future::try_join_all(work).await?;
            let (recomputed, changed) = done.iter().fold((0, 0), |(r, c), (a, b)| (r + a, c + b));
            let tracked = noted.is_some();
            let todo = match noted.map(Mutex::into_inner) {
                None => 0,
                Some(None) => u64::MAX,
                Some(Some(ids)) => {
                    sqlx::query(
                        "INSERT INTO seg_todo SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                    )
                    .bind(&ids)
                    .execute(&mut **conn)
                    .await?;
                    sqlx::query("ANALYZE seg_todo").execute(&mut **conn).await?;
                    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM seg_todo")
                        .fetch_one(&mut **conn)
                        .await?;
                    u64::try_from(n).unwrap_or(0)
                }
            };
            // A fill's figures are not in customer_attributes yet.
            let changed = if fill { 0 } else { changed };
            if tracked {
                // The histogram's changes each lane noted, one lane after
                // the other (at once, they could deadlock on its rows).
                let apply = segments_sql::histogram_apply();
                for c in std::iter::once(&mut *conn).chain(lanes.iter_mut()) {
                    let mut tx = c.begin().await?;
                    for sql in &apply {
                        sqlx::query(AssertSqlSafe(sql.as_str()))
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                }
            } else {
                let source = if fill {
                    "segment_fill"
                } else {
                    "customer_attributes"
                };
                let [count, fill, drop] = segments_sql::pg_histogram_fill(source);
                sqlx::query("DROP TABLE IF EXISTS pg_temp.seg_hist_new")
                    .execute(&mut **conn)
                    .await?;
                sqlx::query(AssertSqlSafe(count))
                    .execute(&mut **conn)
                    .await?;
                let mut tx = conn.begin().await?;
                for sql in [segments_sql::HISTOGRAM_CLEAR, &fill, &drop] {
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Ok((recomputed, changed, cursor.into_inner().bounds, todo))
        }
    }
}

/// Where a full run's walk over the customers is: the lanes take the next
/// batch from it in turn.
#[derive(Default)]
struct Cursor {
    lo: String,
    done: bool,
    /// The upper bound of each batch handed out, in id order.
    bounds: Vec<String>,
}

/// One lane of a full run's phase A: batches taken from `cursor` until none
/// is left, each its own transaction. The histogram is rebuilt once all
/// lanes have finished.
async fn figures_lane(
    conn: &mut Conn,
    cursor: &Mutex<Cursor>,
    plan: &SegmentPlan,
    sql: &str,
    noted: Option<&Mutex<Option<Vec<String>>>>,
) -> Result<(u64, u64), StoreError> {
    let (mut recomputed, mut changed) = (0u64, 0u64);
    loop {
        let (lo, hi) = {
            let mut cur = cursor.lock().await;
            if cur.done {
                break;
            }
            let Some(Batch { hi, ids }) =
                next_batch(conn, "customers", &cur.lo, plan.batch_size).await?
            else {
                cur.done = true;
                break;
            };
            cur.bounds.push(hi.clone());
            recomputed += ids;
            (std::mem::replace(&mut cur.lo, hi.clone()), hi)
        };
        let mut tx = conn.begin().await?;
        // The batch is a range of ids: its stored rows are read in key
        // order beside the customers (a merge join), not looked up one by
        // one, which the planner prefers on its estimate of the range
        // (0.31 against 0.34 s for 50,000 customers). The statement's
        // per-customer aggregate stays a nested loop (it has no other way).
        sqlx::query("SET LOCAL enable_nestloop = off")
            .execute(&mut *tx)
            .await?;
        // Only a run noting changes reads the keys cleared: a first run
        // cleared its 1,000,000 marks in 1.4 s summed over two lanes while
        // it had them sent back, 0.45 s without.
        let delete = if noted.is_some() {
            "DELETE FROM segment_dirty WHERE customer_id > $1 AND customer_id <= $2 RETURNING customer_id"
        } else {
            "DELETE FROM segment_dirty WHERE customer_id > $1 AND customer_id <= $2"
        };
        let marked = clear_marks(&mut tx, delete, &lo, &hi).await?;
        match noted {
            None => changed += in_range(&mut tx, sql, plan, &lo, &hi).await?,
            Some(noted) => {
                // Both the marked (a tag changed, say, which no figure
                // shows) and those whose row changed.
                let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(plan.now)
                    .bind(&lo)
                    .bind(&hi)
                    .fetch_all(&mut *tx)
                    .await?;
                changed += ids.len() as u64;
                let mut noted = noted.lock().await;
                if let Some(all) = noted.as_mut() {
                    if all.len() + ids.len() + marked.len() > plan.noted_at_most {
                        *noted = None;
                    } else {
                        all.extend(ids);
                        all.extend(marked);
                    }
                }
            }
        }
        tx.commit().await?;
    }
    Ok((recomputed, changed))
}

/// Run a batch's statement over the ids in `(lo, hi]`; placeholders: now,
/// lo, hi. Returns the rows it affected.
async fn in_range(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    sql: &str,
    plan: &SegmentPlan,
    lo: &str,
    hi: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(plan.now)
        .bind(lo)
        .bind(hi)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// Clear the dirty marks of a batch's customers (`delete`; placeholders:
/// lo, hi), returning the keys cleared if `delete` returns them. It comes
/// first in the batch's transaction, before the orders are read. A writer marking one of these
/// customers either holds its mark before the delete (the delete waits for
/// the writer's commit, and the read that follows sees its orders), or
/// marks after it (its insert waits for the batch's commit, and the mark
/// stays for the next run). Marks therefore lock rows they find marked
/// already (`ON CONFLICT … DO UPDATE … WHERE false`): `DO NOTHING` would
/// not, and the batch could delete a mark whose orders it cannot see yet.
async fn clear_marks(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    delete: &'static str,
    lo: &str,
    hi: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(delete)
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut **tx)
        .await?)
}

/// An incremental run's phase A: the marked customers and those due by the
/// date, in scattered batches that keep the histogram up to date.
async fn incremental_figures(
    conn: &mut Conn,
    plan: &SegmentPlan,
    sql: &str,
) -> Result<(u64, u64), StoreError> {
    for sql in [
        "CREATE TEMP TABLE IF NOT EXISTS seg_todo (id TEXT COLLATE \"C\" PRIMARY KEY)",
        "TRUNCATE seg_todo",
        "INSERT INTO seg_todo SELECT customer_id FROM segment_dirty ON CONFLICT DO NOTHING",
    ] {
        sqlx::query(sql).execute(&mut **conn).await?;
    }
    sqlx::query(
        // The fence keeps the planner to the `due` index alone (it
        // would AND it with a whole store of the recency index).
        r#"INSERT INTO seg_todo
           SELECT a.customer_id
           FROM (SELECT customer_id, store_key, next_change_day FROM customer_attributes
                 WHERE next_change_day <= $1 OFFSET 0) a
           JOIN seg_today t ON t.store_key = a.store_key
           WHERE a.next_change_day <= t.today
           ON CONFLICT DO NOTHING"#,
    )
    .bind(plan.max_today())
    .execute(&mut **conn)
    .await?;
    sqlx::query("ANALYZE seg_todo").execute(&mut **conn).await?;
    sqlx::query(segments_sql::histogram_rows_table(Dialect::Postgres))
        .execute(&mut **conn)
        .await?;
    let apply = segments_sql::histogram_apply();
    let mut lo = String::new();
    let (mut recomputed, mut changed) = (0u64, 0u64);
    while let Some(Batch { hi, ids }) =
        next_batch(conn, "seg_todo", &lo, plan.scattered_batch_size).await?
    {
        let mut tx = conn.begin().await?;
        // A few thousand scattered customers.
        probe_by_key(&mut tx).await?;
        recomputed += ids;
        clear_marks(
            &mut tx,
            "DELETE FROM segment_dirty WHERE customer_id IN (SELECT id FROM seg_todo WHERE id > $1 AND id <= $2)",
            &lo,
            &hi,
        )
        .await?;
        sqlx::query(segments_sql::HISTOGRAM_ROWS_CLEAR)
            .execute(&mut *tx)
            .await?;
        changed += in_range(&mut tx, sql, plan, &lo, &hi).await?;
        for sql in &apply {
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        lo = hi;
    }
    Ok((recomputed, changed))
}

/// Phase B: stage and tier from this run's thresholds, written
/// where they changed, with a transition for each stage and tier moved. A
/// full run splits the customers into one contiguous slice per lane along
/// phase A's batch `bounds`; an incremental run ranks its candidates on
/// `conn`. A first full run (`fill`) instead writes each customer's row from
/// `segment_fill`, ranked, in phase A's batches over all lanes.
async fn phase_b(
    conn: &mut Conn,
    lanes: &mut [Conn],
    plan: &SegmentPlan,
    bounds: &[String],
    fill: bool,
) -> Result<(u64, u64), StoreError> {
    let thresholds = read_thresholds(conn, plan).await?;
    for c in std::iter::once(&mut *conn).chain(lanes.iter_mut()) {
        for sql in [
            "DROP TABLE IF EXISTS pg_temp.seg_thr",
            "DROP TABLE IF EXISTS pg_temp.seg_changes",
            "DROP TABLE IF EXISTS pg_temp.seg_cand",
        ] {
            sqlx::query(sql).execute(&mut **c).await?;
        }
        write_thresholds(c, &thresholds).await?;
    }
    let done = if fill {
        let sql = fill_sql(plan);
        let batches = Mutex::new(segments_sql::batches(bounds).into_iter());
        let work = std::iter::once(&mut *conn)
            .chain(lanes.iter_mut())
            .map(|c| fill_lane(c, &batches, plan, &sql));
        let done = futures::future::try_join_all(work).await?;
        sqlx::query("TRUNCATE segment_fill")
            .execute(&mut **conn)
            .await?;
        done
    } else if !plan.ranks_everyone() {
        let bases = store_bases(conn).await?;
        let (scope, params) = RankScope::of(plan, Some(&bases), Dialect::Postgres);
        let scores = if plan.reads_scores_over_changes() {
            segments_sql::candidate_ranges(plan, &bases, Moved::Score, Dialect::Postgres)
        } else {
            None
        };
        vec![rank_lane(conn, plan, &scope, &params, scores.as_ref()).await?]
    } else {
        let slices = slices(bounds, 1 + lanes.len());
        let scopes: Vec<(RankScope, Vec<SqlParam>)> = if slices.len() <= 1 {
            vec![RankScope::of(plan, None, Dialect::Postgres)]
        } else {
            slices
                .into_iter()
                .map(|(lo, hi)| match hi {
                    Some(hi) => (
                        RankScope::Where("a.customer_id > $1 AND a.customer_id <= $2".into()),
                        vec![SqlParam::Text(lo), SqlParam::Text(hi)],
                    ),
                    None => (
                        RankScope::Where("a.customer_id > $1".into()),
                        vec![SqlParam::Text(lo)],
                    ),
                })
                .collect()
        };
        let work = std::iter::once(&mut *conn)
            .chain(lanes.iter_mut())
            .zip(&scopes)
            .map(|(c, (scope, params))| rank_lane(c, plan, scope, params, None));
        futures::future::try_join_all(work).await?
    };
    let mut tx = conn.begin().await?;
    for sql in segments_sql::save_state() {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    sqlx::query("DROP TABLE pg_temp.seg_thr")
        .execute(&mut **conn)
        .await?;
    Ok(done.iter().fold((0, 0), |(c, t), (a, b)| (c + a, t + b)))
}

/// An index that a first run builds at its end (see `run_segments`): its
/// name, its table, its definition as in the migrations (migration
/// 20261123000002), and whether it is the table's primary key.
struct DeferredIndex {
    name: &'static str,
    table: &'static str,
    create: &'static str,
    key: bool,
}

impl DeferredIndex {
    /// The statement that drops it (a key as the table's constraint).
    fn drop(&self) -> String {
        if self.key {
            format!(
                "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                self.table, self.name
            )
        } else {
            format!("DROP INDEX IF EXISTS {}", self.name)
        }
    }

    /// For a primary key, the statement that makes the index built by
    /// `create` the table's key again (a moment's exclusive lock: the
    /// columns are still `NOT NULL`, and the index is there).
    fn attach(&self) -> Option<String> {
        self.key.then(|| {
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}",
                self.table,
                name = self.name
            )
        })
    }
}

/// The indexes of `customer_attributes` (its key, who is due for a
/// recompute, win-back's recency) and of `segment_transitions` (its key, a
/// customer's history, who entered a segment when), longest to build first:
/// each connection takes the next one when done, and a long one taken last
/// would keep the others waiting. On 1,000,000 customers: by segment 2.2 s,
/// recency 1.8 s, by customer 1.0 s, each key and who is due 0.5 to 0.6 s.
const DEFERRED_INDEXES: [DeferredIndex; 6] = [
    DeferredIndex {
        name: "segment_transitions_by_segment",
        table: "segment_transitions",
        create: "CREATE INDEX IF NOT EXISTS segment_transitions_by_segment ON segment_transitions (segment, at)",
        key: false,
    },
    DeferredIndex {
        name: "customer_attributes_recency",
        table: "customer_attributes",
        create: "CREATE INDEX IF NOT EXISTS customer_attributes_recency ON customer_attributes (store_key, last_order_day)",
        key: false,
    },
    DeferredIndex {
        name: "segment_transitions_by_customer",
        table: "segment_transitions",
        create: "CREATE INDEX IF NOT EXISTS segment_transitions_by_customer ON segment_transitions (customer_id, at)",
        key: false,
    },
    DeferredIndex {
        name: "segment_transitions_pkey",
        table: "segment_transitions",
        create: "CREATE UNIQUE INDEX IF NOT EXISTS segment_transitions_pkey ON segment_transitions (id)",
        key: true,
    },
    DeferredIndex {
        name: "customer_attributes_pkey",
        table: "customer_attributes",
        create: "CREATE UNIQUE INDEX IF NOT EXISTS customer_attributes_pkey ON customer_attributes (customer_id)",
        key: true,
    },
    DeferredIndex {
        name: "customer_attributes_due",
        table: "customer_attributes",
        create: "CREATE INDEX IF NOT EXISTS customer_attributes_due ON customer_attributes (next_change_day) \
                 WHERE next_change_day IS NOT NULL",
        key: false,
    },
];

/// Build the indexes of [`DEFERRED_INDEXES`] that are missing, each
/// connection taking the next one when it is done: at the start of a run
/// after one that stopped before its end.
async fn restore_indexes(conn: &mut Conn, lanes: &mut [Conn]) -> Result<(), StoreError> {
    let missing = missing_indexes(conn).await?;
    let queue = Mutex::new(missing.iter());
    let work = std::iter::once(&mut *conn)
        .chain(lanes.iter_mut())
        .map(|c| build_indexes(c, &queue));
    futures::future::try_join_all(work).await?;
    attach_keys(conn, &missing).await
}

/// The indexes of [`DEFERRED_INDEXES`] that are missing, or for a key, not
/// the table's key, in that order.
async fn missing_indexes(conn: &mut Conn) -> Result<Vec<&'static DeferredIndex>, StoreError> {
    let names: Vec<&str> = DEFERRED_INDEXES.iter().map(|index| index.name).collect();
    let keys: Vec<bool> = DEFERRED_INDEXES.iter().map(|index| index.key).collect();
    let absent: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM unnest($1::text[], $2::bool[]) AS i (name, key) \
         WHERE to_regclass(name) IS NULL OR (key AND NOT EXISTS ( \
             SELECT 1 FROM pg_constraint c WHERE c.conindid = to_regclass(name) AND c.contype = 'p'))",
    )
    .bind(&names)
    .bind(&keys)
    .fetch_all(&mut **conn)
    .await?;
    Ok(DEFERRED_INDEXES
        .iter()
        .filter(|index| absent.iter().any(|a| a == index.name))
        .collect())
}

/// Build indexes taken from `queue` on `conn` until none is left.
async fn build_indexes(
    conn: &mut Conn,
    queue: &Mutex<std::slice::Iter<'_, &'static DeferredIndex>>,
) -> Result<(), StoreError> {
    loop {
        let Some(index) = queue.lock().await.next().copied() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        sqlx::query(AssertSqlSafe(index.create))
            .execute(&mut **conn)
            .await?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            index = index.name,
            "index built"
        );
    }
}

/// Make the keys among `built` their tables' primary keys again, once
/// every index is built (the lock would wait for the other builds).
async fn attach_keys(conn: &mut Conn, built: &[&DeferredIndex]) -> Result<(), StoreError> {
    for attach in built.iter().filter_map(|index| index.attach()) {
        sqlx::query(AssertSqlSafe(attach))
            .execute(&mut **conn)
            .await?;
    }
    Ok(())
}

/// `ANALYZE customer_attributes`, after a full run that changed many rows.
async fn analyze_attributes(conn: &mut Conn) -> Result<(), StoreError> {
    sqlx::query("ANALYZE customer_attributes")
        .execute(&mut **conn)
        .await?;
    Ok(())
}

/// A first full run's write of the customers with ids in `(lo, hi]`: each
/// row of `segment_fill` goes into the empty `customer_attributes` once,
/// with its stage and tier, and each customer's entry into its
/// stage and tier is recorded, in one statement. Placeholders: now, lo, hi.
/// Returns one row: the rows written, the transitions recorded.
fn fill_sql(plan: &SegmentPlan) -> String {
    format!(
        r#"WITH written AS (
{rows}
    RETURNING customer_id, lifecycle, value_tier),
entered AS (
{entered}
    RETURNING 1)
SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM entered)"#,
        rows = segments_sql::fill_rows(plan, Dialect::Postgres, "$2", "$3"),
        entered = segments_sql::fill_entered(Dialect::Postgres, "written", "$1"),
    )
}

/// One lane of a first full run's phase B: batches taken from `batches`
/// until none is left, each written from `segment_fill` by `sql` (see
/// [`fill_sql`]) in one statement. Returns the rows written and
/// the transitions recorded.
async fn fill_lane(
    conn: &mut Conn,
    batches: &Mutex<std::vec::IntoIter<(String, String)>>,
    plan: &SegmentPlan,
    sql: &str,
) -> Result<(u64, u64), StoreError> {
    let (mut written, mut transitions) = (0u64, 0u64);
    loop {
        let Some((lo, hi)) = batches.lock().await.next() else {
            break;
        };
        let (w, t): (i64, i64) = sqlx::query_as(AssertSqlSafe(sql))
            .bind(plan.now)
            .bind(&lo)
            .bind(&hi)
            .fetch_one(&mut **conn)
            .await?;
        written += u64::try_from(w).unwrap_or(0);
        transitions += u64::try_from(t).unwrap_or(0);
    }
    Ok((written, transitions))
}

/// Split the customers at phase A's batch `bounds` (upper bounds in id
/// order) into at most `n` contiguous slices `(lo, hi]` of about as many
/// batches each; the last slice is open above.
fn slices(bounds: &[String], n: usize) -> Vec<(String, Option<String>)> {
    let n = n.clamp(1, bounds.len().max(1));
    let mut out = Vec::with_capacity(n);
    let mut lo = String::new();
    for k in 1..n {
        let hi = bounds[k * bounds.len() / n - 1].clone();
        out.push((std::mem::replace(&mut lo, hi.clone()), Some(hi)));
    }
    out.push((lo, None));
    out
}

/// Rank the customers of `scope` on one connection: find those whose stage
/// or tier changed (`seg_changes`), then record their transitions and
/// write them in scattered batches. The customers custom segments are
/// evaluated over (`seg_cand`) include those meeting `scores`, the
/// condition for the moved score thresholds with its parameters, if given.
async fn rank_lane(
    conn: &mut Conn,
    plan: &SegmentPlan,
    scope: &RankScope,
    params: &[SqlParam],
    scores: Option<&(String, Vec<SqlParam>)>,
) -> Result<(u64, u64), StoreError> {
    // CREATE TABLE AS may scan in parallel (an INSERT may not): the scan of
    // every customer is the run's largest read.
    sqlx::query(AssertSqlSafe(segments_sql::changes(
        plan,
        Dialect::Postgres,
        scope,
    )))
    .bind_params(params)
    .execute(&mut **conn)
    .await?;
    // The batches below read seg_changes by ranges of ids: the planner
    // needs its size and the spread of its ids, which a sample of 3,000
    // ids gives (7 ms) as well as the default sample of 30,000 rows of
    // every column (110 ms for 110,000 rows).
    for sql in [
        "CREATE UNIQUE INDEX ON seg_changes (id)",
        "ALTER TABLE seg_changes ALTER COLUMN id SET STATISTICS 10",
        "ANALYZE seg_changes (id)",
    ] {
        sqlx::query(sql).execute(&mut **conn).await?;
    }
    if plan.evaluates_some_segment_over_changes() {
        let (cond, cond_params) = match scores {
            Some((cond, params)) => (Some(cond.as_str()), params.as_slice()),
            None => (None, &[][..]),
        };
        sqlx::query(AssertSqlSafe(segments_sql::changed_customers(
            Dialect::Postgres,
            cond,
        )))
        .bind_params(cond_params)
        .execute(&mut **conn)
        .await?;
        for sql in [
            "CREATE UNIQUE INDEX ON seg_cand (id)",
            "ALTER TABLE seg_cand ALTER COLUMN id SET STATISTICS 10",
            "ANALYZE seg_cand (id)",
        ] {
            sqlx::query(sql).execute(&mut **conn).await?;
        }
    }
    let (mut changed, mut transitions) = (0u64, 0u64);
    let mut lo = String::new();
    let (tsql, usql) = (
        segments_sql::transitions(Dialect::Postgres),
        segments_sql::apply_changes(Dialect::Postgres),
    );
    while let Some(hi) = next_bound(conn, "seg_changes", &lo, plan.scattered_batch_size).await? {
        let mut tx = conn.begin().await?;
        transitions += in_range(&mut tx, &tsql, plan, &lo, &hi).await?;
        changed += in_range(&mut tx, &usql, plan, &lo, &hi).await?;
        tx.commit().await?;
        lo = hi;
    }
    sqlx::query("DROP TABLE pg_temp.seg_changes")
        .execute(&mut **conn)
        .await?;
    Ok((changed, transitions))
}

/// Each store key's thresholds, read from `segment_histogram` in one
/// ordered pass.
async fn read_thresholds(
    conn: &mut Conn,
    plan: &SegmentPlan,
) -> Result<Vec<(String, ThresholdRow)>, StoreError> {
    let totals: Vec<(String, String, i64)> =
        sqlx::query_as(segments_sql::histogram_totals(Dialect::Postgres))
            .fetch_all(&mut **conn)
            .await?;
    let mut scan = ThresholdScan::new(&plan.rules.tiers, totals);
    let mut rows = sqlx::query(segments_sql::HISTOGRAM_IN_ORDER).fetch(&mut **conn);
    while let Some(row) = rows.try_next().await? {
        let metric: &str = row.try_get(0)?;
        let store_key: &str = row.try_get(1)?;
        scan.push(metric, store_key, row.try_get(2)?, row.try_get(3)?)?;
    }
    drop(rows);
    Ok(scan.finish(plan.days.iter().map(|d| d.store_key.as_str())))
}

/// Create the session's `seg_thr` with `thresholds`, and give its calendar
/// `seg_today` the score thresholds.
async fn write_thresholds(
    conn: &mut Conn,
    thresholds: &[(String, ThresholdRow)],
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(segments_sql::thresholds_table(
        Dialect::Postgres,
    )))
    .execute(&mut **conn)
    .await?;
    let insert = segments_sql::thresholds_insert(Dialect::Postgres);
    for (store_key, values) in thresholds {
        values
            .iter()
            .fold(
                sqlx::query(AssertSqlSafe(insert.as_str())).bind(store_key),
                |q, v| q.bind(*v),
            )
            .execute(&mut **conn)
            .await?;
    }
    sqlx::query("ANALYZE seg_thr").execute(&mut **conn).await?;
    // Custom segments read scores with this run's thresholds.
    sqlx::query(AssertSqlSafe(segments_sql::calendar_thresholds("seg_thr")))
        .execute(&mut **conn)
        .await?;
    Ok(())
}

/// What each store key was ranked with by the previous run and is now.
async fn store_bases(conn: &mut Conn) -> Result<Vec<segments_sql::StoreBases>, StoreError> {
    Ok(
        sqlx::query(AssertSqlSafe(segments_sql::rank_bases(Dialect::Postgres)))
            .fetch_all(&mut **conn)
            .await?
            .iter()
            .map(segments_sql::StoreBases::from_row)
            .collect::<Result<Vec<_>, _>>()?,
    )
}

/// Phase C: custom segments. Those evaluated over everyone are found in one
/// pass over the customers, those evaluated over this run's changed
/// customers in one pass over those; each segment's membership is then made
/// equal to what was found, in a transaction of its own.
async fn phase_c(conn: &mut Conn, plan: &SegmentPlan) -> Result<u64, StoreError> {
    for sql in [
        "DROP TABLE IF EXISTS pg_temp.seg_members",
        "CREATE TEMP TABLE seg_members (segment TEXT COLLATE \"C\" NOT NULL, \
         id TEXT COLLATE \"C\" NOT NULL)",
    ] {
        sqlx::query(sql).execute(&mut **conn).await?;
    }
    let (everyone, changed): (Vec<&CustomSegment>, Vec<&CustomSegment>) =
        plan.custom.iter().partition(|s| plan.evaluate_all(s));
    let mut transitions = 0u64;
    for (group, all) in [(everyone, true), (changed, false)] {
        if group.is_empty() {
            continue;
        }
        let (sql, params) = members_sql(&group, all);
        sqlx::query(AssertSqlSafe(sql))
            .bind_params(&params)
            .execute(&mut **conn)
            .await?;
        // Keyed once filled: a million members went in 0.35 s faster
        // than into a table keyed from the start.
        for sql in [
            "CREATE UNIQUE INDEX IF NOT EXISTS seg_members_key ON seg_members (segment, id)",
            "ANALYZE seg_members",
        ] {
            sqlx::query(sql).execute(&mut **conn).await?;
        }
        for segment in group {
            let mut tx = conn.begin().await?;
            transitions += apply_members(&mut tx, &segment.name, plan.now, all).await?;
            tx.commit().await?;
        }
    }
    // Nobody is a member of a segment that is gone.
    for name in &plan.removed {
        let mut tx = conn.begin().await?;
        transitions += apply_members(&mut tx, name, plan.now, true).await?;
        tx.commit().await?;
    }
    sqlx::query("DROP TABLE pg_temp.seg_members")
        .execute(&mut **conn)
        .await?;
    Ok(transitions)
}

/// The insert into `seg_members` of every (segment, customer) pair of
/// `segments`, among everyone (`all`) or among `seg_cand`: one pass, each
/// segment's expression evaluated once per customer into an array of the
/// names of the segments the customer is in, which `unnest` turns into
/// rows. (A `LATERAL (VALUES …)` of (name, hit) pairs per customer ran a
/// subplan per customer: 8.0 s instead of 3.0 s for the six segments of the
/// demo's file over 1,000,000 customers.)
fn members_sql(segments: &[&CustomSegment], all: bool) -> (String, Vec<SqlParam>) {
    let mut ph = Placeholders::starting_at(1);
    let mut hits = Vec::with_capacity(segments.len());
    for segment in segments {
        let name = ph.push(Dialect::Postgres, SqlParam::Text(segment.name.clone()));
        let filter = segment.expr.to_sql(Dialect::Postgres, &mut ph);
        hits.push(format!("CASE WHEN {filter} THEN {name}::text END"));
    }
    let from = segments_sql::members_source(Dialect::Postgres, all, segments);
    let sql = format!(
        r#"INSERT INTO seg_members (segment, id)
SELECT s.segment, x.id FROM (
    SELECT a.customer_id AS id, ARRAY[{hits}] AS hits FROM {from}
    JOIN seg_today t ON t.store_key = a.store_key
) x
CROSS JOIN LATERAL unnest(x.hits) s (segment)
WHERE s.segment IS NOT NULL"#,
        hits = hits.join(",\n        ")
    );
    (sql, ph.into_params())
}

/// Make `segment`'s membership equal to its rows of `seg_members` (among
/// `seg_cand` only, unless `all`), recording each change.
async fn apply_members(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    segment: &str,
    now: chrono::DateTime<chrono::Utc>,
    all: bool,
) -> Result<u64, StoreError> {
    let scope = if all {
        ""
    } else {
        "AND s.customer_id IN (SELECT id FROM seg_cand)"
    };
    let mut transitions = sqlx::query(AssertSqlSafe(format!(
        r#"WITH gone AS (
               DELETE FROM segment_memberships s WHERE s.segment = $1 {scope}
               AND NOT EXISTS (SELECT 1 FROM seg_members m
                               WHERE m.segment = $1 AND m.id = s.customer_id)
               RETURNING s.customer_id)
           INSERT INTO segment_transitions (customer_id, segment, change, at)
           SELECT customer_id, $1, 'left', $2 FROM gone"#
    )))
    .bind(segment)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // Members already in are left out before the insert: a conflict check
    // per member of a large segment costs more than one anti-join.
    transitions += sqlx::query(
        r#"WITH came AS (
               INSERT INTO segment_memberships (segment, customer_id, entered_at)
               SELECT $1, m.id, $2 FROM seg_members m
               WHERE m.segment = $1
                 AND NOT EXISTS (SELECT 1 FROM segment_memberships s
                                 WHERE s.segment = $1 AND s.customer_id = m.id)
               ON CONFLICT DO NOTHING
               RETURNING customer_id)
           INSERT INTO segment_transitions (customer_id, segment, change, at)
           SELECT customer_id, $1, 'entered', $2 FROM came"#,
    )
    .bind(segment)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(transitions)
}

#[cfg(test)]
mod tests {
    use super::slices;

    fn bounds(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("C{i:02}")).collect()
    }

    fn slice(lo: &str, hi: Option<&str>) -> (String, Option<String>) {
        (lo.to_owned(), hi.map(str::to_owned))
    }

    #[test]
    fn slices_split_the_batches_evenly_and_leave_the_last_open() {
        assert_eq!(
            slices(&bounds(6), 2),
            vec![slice("", Some("C03")), slice("C03", None)]
        );
        assert_eq!(
            slices(&bounds(7), 3),
            vec![
                slice("", Some("C02")),
                slice("C02", Some("C04")),
                slice("C04", None)
            ]
        );
    }

    #[test]
    fn fewer_batches_than_lanes_give_fewer_slices() {
        assert_eq!(slices(&bounds(1), 2), vec![slice("", None)]);
        assert_eq!(slices(&[], 2), vec![slice("", None)]);
        assert_eq!(
            slices(&bounds(2), 4),
            vec![slice("", Some("C01")), slice("C01", None)]
        );
    }
}
