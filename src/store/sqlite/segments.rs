//! The segments job on SQLite: set-based SQL, in batches of customers so the
//! single writer is never held for long.
//!
//! Phase A recomputes order figures for a set of customers (all of them, or
//! the dirty and date-due ones). Phase B ranks every customer into stages
//! and tiers and records stage and tier changes. Phase C evaluates the
//! custom segments and records who entered and left.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Connection, Row, Sqlite};

use super::checkpoints::{Checkpointer, RUN_AUTOCHECKPOINT_PAGES};
use super::{SqliteStore, from_ms, ms};
use crate::domain::CustomerId;
use crate::expr::{BindParams, Dialect, Placeholders, SqlParam};
use crate::segments::attributes::{
    CustomerAttributes, CustomerProfile, Membership, PROFILE_TRANSITIONS, SegmentKind,
    SegmentOutcome, SegmentSize, Transition,
};
use crate::segments::derive as shared;
use crate::segments::file::CustomSegment;
use crate::segments::plan::{BirthdayDistance, RecomputeMode, SegmentPlan, StoreDay};
use crate::segments::rules::{STAGES, TIERS};
use crate::segments::thresholds::{ThresholdRow, ThresholdScan};
use crate::store::StoreError;
use crate::store::segments_sql::{self, Batch, Moved, RankScope};

type Conn = PoolConnection<Sqlite>;

impl SqliteStore {
    pub(super) async fn run_segments(
        &self,
        plan: &SegmentPlan,
    ) -> Result<SegmentOutcome, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // The run's temporary tables hold a row per customer (the changes
        // of a first run, the custom segments' members): on a million
        // customers, in memory, they took the process past 200 MB. They go
        // to a temporary file instead (the system's page cache keeps it;
        // about 1 s more in a first run). The setting is for this run
        // alone: the connection, and its page cache, are closed
        // afterwards, on every path.
        conn.close_on_drop();
        sqlx::query("PRAGMA temp_store = FILE")
            .execute(&mut *conn)
            .await?;
        // Checkpoints are taken beside the run (see `checkpoints`).
        sqlx::query(AssertSqlSafe(format!(
            "PRAGMA wal_autocheckpoint = {RUN_AUTOCHECKPOINT_PAGES}"
        )))
        .execute(&mut *conn)
        .await?;
        let checkpointer = Checkpointer::start(&self.pool).await?;
        load_calendar(&mut conn, &plan.days, &plan.birthdays).await?;
        // A first full run finds every customer new: each row is written
        // once, ranked, instead of twice (see `segment_fill`), and ranks
        // everyone as it writes them.
        let fill = plan.mode == RecomputeMode::Full
            && !sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM customer_attributes)")
                .fetch_one(&mut *conn)
                .await?;
        let plan = &*if fill {
            std::borrow::Cow::Owned(plan.ranking_everyone())
        } else {
            std::borrow::Cow::Borrowed(plan)
        };
        let mut outcome = SegmentOutcome::default();
        let started = std::time::Instant::now();
        let (recomputed, changed, bounds) = phase_a(&mut conn, plan, fill).await?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            recomputed,
            changed,
            "order figures"
        );
        outcome.recomputed = recomputed;
        outcome.changed = changed;
        let todo: i64 = if plan.notes_changes() {
            sqlx::query_scalar("SELECT count(*) FROM seg_todo")
                .fetch_one(&mut *conn)
                .await?
        } else {
            0
        };
        let plan = &*plan.after_figures(u64::try_from(todo).unwrap_or(0), recomputed);
        let started = std::time::Instant::now();
        let fill_bounds = fill.then_some(bounds.as_slice());
        let (changed, transitions) = phase_b(&mut conn, plan, fill_bounds).await?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            changed,
            transitions,
            "stages and tiers"
        );
        outcome.changed += changed;
        outcome.transitions += transitions;
        let started = std::time::Instant::now();
        outcome.transitions += phase_c(&mut conn, plan).await?;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "custom segments");
        sqlx::query("PRAGMA optimize").execute(&mut *conn).await?;
        if let Some(stats) = checkpointer.stop().await {
            tracing::debug!(
                checkpoints = stats.checkpoints,
                wal_pages = stats.wal_pages,
                copied = stats.copied,
                "background checkpoints"
            );
        }
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
            r#"SELECT a.*, {scores}, c.store_code, c.tags, c.birth_month, c.birth_day
               FROM customer_attributes a JOIN customers c ON c.id = a.customer_id
               LEFT JOIN segment_run_state t ON t.store_key = a.store_key
               WHERE a.customer_id = ?"#,
            scores = segments_sql::score_select(Dialect::Sqlite),
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let attributes = attributes_from_row(&row, plan)?;
        let memberships = sqlx::query(
            "SELECT segment, entered_at FROM segment_memberships WHERE customer_id = ? ORDER BY segment",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Membership {
                segment: r.try_get("segment")?,
                entered_at: from_ms("segment_memberships", r.try_get("entered_at")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let transitions = sqlx::query(
            r#"SELECT segment, change, at FROM segment_transitions WHERE customer_id = ?
               ORDER BY at DESC, id DESC LIMIT ?"#,
        )
        .bind(id.as_str())
        .bind(PROFILE_TRANSITIONS)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Transition {
                segment: r.try_get("segment")?,
                change: r.try_get("change")?,
                at: from_ms("segment_transitions", r.try_get("at")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(CustomerProfile {
            attributes,
            memberships,
            transitions,
        }))
    }
}

fn attributes_from_row(
    row: &SqliteRow,
    plan: &SegmentPlan,
) -> Result<CustomerAttributes, StoreError> {
    let t = "customer_attributes";
    let opt_ms = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        row.try_get::<Option<i64>, _>(col)?
            .map(|v| from_ms(t, v))
            .transpose()
    };
    let store: Option<String> = row.try_get("store_code")?;
    let tags: String = row.try_get("tags")?;
    let month: Option<i64> = row.try_get("birth_month")?;
    let day: Option<i64> = row.try_get("birth_day")?;
    let today = plan.day_of(store.as_deref().unwrap_or("")).today;
    let last_order_day: Option<i64> = row.try_get("last_order_day")?;
    let joined_at = from_ms(t, row.try_get("joined_at")?)?;
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
        first_order_at: opt_ms("first_order_at")?,
        last_order_at: opt_ms("last_order_at")?,
        first_order_day: row.try_get("first_order_day")?,
        last_order_day,
        favorite_daypart: row.try_get("favorite_daypart")?,
        r_score: row.try_get("r_score")?,
        f_score: row.try_get("f_score")?,
        m_score: row.try_get("m_score")?,
        rfm: row.try_get("rfm")?,
        lifecycle: row.try_get("lifecycle")?,
        value_tier: row.try_get("value_tier")?,
        days_to_birthday: shared::days_to_birthday(plan, today, month, day),
        computed_at: from_ms(t, row.try_get("computed_at")?)?,
        store,
    })
}

/// Fill the temporary calendar tables `seg_today` and `seg_birthdays` that
/// expressions over attributes read, with the last run's score thresholds.
pub(super) async fn load_calendar(
    conn: &mut Conn,
    days: &[StoreDay],
    birthdays: &[BirthdayDistance],
) -> Result<(), StoreError> {
    let today_table = format!(
        "CREATE TEMP TABLE IF NOT EXISTS seg_today (store_key TEXT PRIMARY KEY, today INTEGER NOT NULL, \
         tz TEXT NOT NULL, offset_ms INTEGER NOT NULL, new_since INTEGER NOT NULL, active_since INTEGER NOT NULL, \
         at_risk_since INTEGER NOT NULL, lapsed_since INTEGER NOT NULL{})",
        segments_sql::calendar_threshold_columns(Dialect::Sqlite)
    );
    for sql in [
        today_table.as_str(),
        "CREATE TEMP TABLE IF NOT EXISTS seg_birthdays (today INTEGER NOT NULL, month INTEGER NOT NULL, \
         day INTEGER NOT NULL, days INTEGER NOT NULL, PRIMARY KEY (today, month, day))",
        "DELETE FROM seg_today",
        "DELETE FROM seg_birthdays",
    ] {
        sqlx::query(AssertSqlSafe(sql)).execute(&mut **conn).await?;
    }
    let mut tx = conn.begin().await?;
    for d in days {
        sqlx::query(
            "INSERT INTO seg_today (store_key, today, tz, offset_ms, new_since, active_since, \
             at_risk_since, lapsed_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&d.store_key)
        .bind(d.today)
        .bind(d.tz.name())
        .bind(d.offset_ms)
        .bind(ms(d.new_since))
        .bind(ms(d.active_since))
        .bind(ms(d.at_risk_since))
        .bind(ms(d.lapsed_since))
        .execute(&mut *tx)
        .await?;
    }
    for b in birthdays {
        sqlx::query("INSERT INTO seg_birthdays VALUES (?, ?, ?, ?)")
            .bind(b.today)
            .bind(i64::from(b.month))
            .bind(i64::from(b.day))
            .bind(b.days)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(AssertSqlSafe(segments_sql::calendar_thresholds(
        "segment_run_state",
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Walk the ids of `table.id` in key order, `size` at a time: returns the
/// upper bound of the batch after `lo`.
pub(super) async fn next_bound(
    conn: &mut Conn,
    table: &str,
    lo: &str,
    size: usize,
) -> Result<Option<String>, StoreError> {
    Ok(next_batch(conn, table, lo, size).await?.map(|b| b.hi))
}

/// The next batch of the ids of `table.id` in key order after `lo`: at
/// most `size` of them, up to `hi`.
async fn next_batch(
    conn: &mut Conn,
    table: &str,
    lo: &str,
    size: usize,
) -> Result<Option<Batch>, StoreError> {
    let size = i64::try_from(size.max(1)).unwrap_or(i64::MAX);
    let sql = segments_sql::next_batch(table, Dialect::Sqlite);
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

fn phase_a_sql(plan: &SegmentPlan, fill: bool) -> String {
    let d = &plan.rules.dayparts;
    // Incremental runs are driven by the (few) ids in seg_todo.
    let (from, range) = match plan.mode {
        RecomputeMode::Full => ("customers c", "c.id > ? AND c.id <= ?"),
        RecomputeMode::Incremental => (
            "seg_todo x CROSS JOIN customers c ON c.id = x.id",
            "x.id > ? AND x.id <= ?",
        ),
    };
    // One aggregate call per order gives the attributes (see `figures`),
    // in a subquery per customer: grouped in a join of customers and
    // orders, SQLite compared each order's key with the previous one's
    // (4 % more work). The LIMIT keeps SQLite from merging `q` into the
    // outer query: merged, the subquery ran again for each use of `f`.
    // Only rows that changed are written: the comparison (one lookup by
    // key, one call for the attributes) comes before the upsert, whose own
    // conflict handling cost twice as much for every unchanged row.
    let taken_apart = (0..segments_sql::ORDER_ATTRIBUTES.len())
        .map(|i| format!("seg_attr(q.f, {i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let stored = segments_sql::ORDER_ATTRIBUTES
        .iter()
        .map(|c| format!("a.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let reuse = plan.builds_on_previous && !fill;
    let computed_day = "seg_local_day(q.joined_at, q.tz)";
    let joined_day = segments_sql::joined_day(reuse, "q", computed_day);
    let compared_here = segments_sql::compared_here(reuse)
        .filter(|c| segments_sql::CUSTOMER_FIGURES.contains(c))
        .map(|c| match c {
            "joined_day" => format!("\n    OR a.joined_day IS NOT {computed_day}"),
            c => format!("\n    OR a.{c} IS NOT q.{c}"),
        })
        .collect::<String>();
    // A fill writes every row into the empty `segment_fill`. The join with
    // the (empty) attributes stays: with `q` the only table of the outer
    // query, SQLite merges it in despite its LIMIT (a first run's phase A
    // took 37 s for 1,000,000 customers instead of 6 s).
    let (into, changed) = if fill {
        (
            "segment_fill",
            "\nLEFT JOIN customer_attributes a ON a.customer_id = q.customer_id\nWHERE a.customer_id IS NULL"
                .to_owned(),
        )
    } else {
        (
            "customer_attributes",
            format!(
                r#"
LEFT JOIN customer_attributes a ON a.customer_id = q.customer_id
WHERE a.customer_id IS NULL{compared_here}
    OR seg_differs(q.f, {stored}){upsert}"#,
                upsert = segments_sql::upsert_figures(),
            ),
        )
    };
    format!(
        r#"INSERT INTO {into} ({columns})
SELECT q.customer_id, q.store_key, q.joined_at, {joined_day}, {taken_apart}, q.today, ?
FROM (
    SELECT c.id AS customer_id, t.store_key AS store_key,
        COALESCE(c.joined_at, c.created_at) AS joined_at, t.tz AS tz, t.today AS today,
        (SELECT seg_figures(o.amount_fen, o.ordered_at, o.local_date, o.local_minute, t.today,
                            {morning}, {noon}, {afternoon}, {evening})
         FROM orders o WHERE o.customer_id = c.id) AS f
    FROM {from}
    JOIN seg_today t ON t.store_key = COALESCE(c.store_code, '')
    WHERE {range}
    LIMIT -1
) q{changed}"#,
        columns = segments_sql::FIGURE_COLUMNS,
        morning = d.morning,
        noon = d.noon,
        afternoon = d.afternoon,
        evening = d.evening,
    )
}

/// Triggers of this connection alone on the rows of `customer_attributes`
/// phase A writes (it writes only rows that changed): each customer is
/// noted in `seg_todo`, and its histogram values in `seg_hist_rows`, old
/// ones to take away, new ones to add, which the batch then applies.
/// (`OR IGNORE` would not do for `seg_todo`: the upsert's conflict policy
/// overrides a trigger's.) The connection is closed after the run.
fn change_triggers() -> [String; 2] {
    let note = "INSERT INTO seg_todo SELECT NEW.customer_id \
                WHERE NOT EXISTS (SELECT 1 FROM seg_todo WHERE id = NEW.customer_id);";
    let (old, new) = (
        segments_sql::histogram_values("OLD."),
        segments_sql::histogram_values("NEW."),
    );
    [
        format!(
            "CREATE TEMP TRIGGER seg_todo_inserted AFTER INSERT ON main.customer_attributes \
             BEGIN {note} INSERT INTO seg_hist_rows VALUES ({new}, 1); END"
        ),
        format!(
            "CREATE TEMP TRIGGER seg_todo_updated AFTER UPDATE ON main.customer_attributes \
             BEGIN {note} INSERT INTO seg_hist_rows VALUES ({old}, -1), ({new}, 1); END"
        ),
    ]
}

/// Phase A: order figures, into `segment_fill` for a first full run
/// (`fill`). Returns the customers recomputed, the rows of
/// `customer_attributes` changed, and for a fill the upper bound of each
/// batch in id order, which phase B walks again.
async fn phase_a(
    conn: &mut Conn,
    plan: &SegmentPlan,
    fill: bool,
) -> Result<(u64, u64, Vec<String>), StoreError> {
    // The customers ranked and evaluated besides those a threshold or the
    // date moved past (see `RankScope::Candidates`): the marked ones (an
    // incremental run takes them now, a full run building on the previous
    // one as each batch clears their marks), and those recomputed (an
    // incremental run) or whose figures changed (a full run, found by
    // triggers as its rows are written).
    let tracks = plan.notes_changes();
    let incremental = plan.mode == RecomputeMode::Incremental;
    if tracks || incremental {
        for sql in [
            "CREATE TEMP TABLE IF NOT EXISTS seg_todo (id TEXT PRIMARY KEY) WITHOUT ROWID",
            "DELETE FROM seg_todo",
            segments_sql::histogram_rows_table(Dialect::Sqlite),
        ] {
            sqlx::query(sql).execute(&mut **conn).await?;
        }
    }
    if tracks {
        for sql in change_triggers() {
            sqlx::query(AssertSqlSafe(sql)).execute(&mut **conn).await?;
        }
    }
    let driver = match plan.mode {
        RecomputeMode::Full => "customers",
        RecomputeMode::Incremental => {
            sqlx::query("INSERT OR IGNORE INTO seg_todo SELECT customer_id FROM segment_dirty")
                .execute(&mut **conn)
                .await?;
            sqlx::query(
                r#"INSERT OR IGNORE INTO seg_todo
                   SELECT a.customer_id FROM customer_attributes a
                   JOIN seg_today t ON t.store_key = a.store_key
                   WHERE a.next_change_day <= ? AND a.next_change_day <= t.today"#,
            )
            .bind(plan.max_today())
            .execute(&mut **conn)
            .await?;
            "seg_todo"
        }
    };
    if plan.mode == RecomputeMode::Full {
        // Left over by a first run that did not finish (a delete of every
        // row empties the table at once).
        sqlx::query("DELETE FROM segment_fill")
            .execute(&mut **conn)
            .await?;
    }
    let sql = phase_a_sql(plan, fill);
    let apply = segments_sql::histogram_apply();
    let mut lo = String::new();
    let (mut recomputed, mut changed) = (0u64, 0u64);
    let mut bounds = Vec::new();
    let size = match plan.mode {
        RecomputeMode::Full => plan.batch_size,
        RecomputeMode::Incremental => plan.scattered_batch_size,
    };
    while let Some(Batch { hi, ids }) = next_batch(conn, driver, &lo, size).await? {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        if incremental || tracks {
            sqlx::query(segments_sql::HISTOGRAM_ROWS_CLEAR)
                .execute(&mut *tx)
                .await?;
        }
        if incremental {
            histogram_rows(&mut tx, -1, &lo, &hi).await?;
        }
        let written = in_range(&mut tx, &sql, plan, &lo, &hi).await?;
        // A fill's figures are not in customer_attributes yet.
        if !fill {
            changed += written;
        }
        if incremental {
            histogram_rows(&mut tx, 1, &lo, &hi).await?;
        }
        if incremental || tracks {
            for sql in &apply {
                sqlx::query(AssertSqlSafe(sql.as_str()))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        match plan.mode {
            RecomputeMode::Full => {
                if tracks {
                    sqlx::query(
                        "INSERT OR IGNORE INTO seg_todo SELECT customer_id FROM segment_dirty \
                         WHERE customer_id > ? AND customer_id <= ?",
                    )
                    .bind(&lo)
                    .bind(&hi)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("DELETE FROM segment_dirty WHERE customer_id > ? AND customer_id <= ?")
                    .bind(&lo)
                    .bind(&hi)
                    .execute(&mut *tx)
                    .await?;
            }
            RecomputeMode::Incremental => {
                sqlx::query(
                    r#"DELETE FROM segment_dirty WHERE customer_id IN
                       (SELECT id FROM seg_todo WHERE id > ? AND id <= ?)"#,
                )
                .bind(&lo)
                .bind(&hi)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        recomputed += ids;
        if fill {
            bounds.push(hi.clone());
        }
        lo = hi;
    }
    if tracks {
        for sql in [
            "DROP TRIGGER temp.seg_todo_inserted",
            "DROP TRIGGER temp.seg_todo_updated",
        ] {
            sqlx::query(sql).execute(&mut **conn).await?;
        }
    }
    // A run building on the previous one brought the histogram up to date
    // batch by batch; any other full run rebuilds it.
    if !incremental && !tracks {
        let source = if fill {
            "segment_fill"
        } else {
            "customer_attributes"
        };
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        rebuild_histogram(&mut tx, source, false).await?;
        tx.commit().await?;
    }
    Ok((recomputed, changed, bounds))
}

/// Rebuild `segment_histogram` from every customer's figures in `source`
/// (`customer_attributes`, or `segment_fill` in a first run): by the
/// `seg_histogram` aggregate, or, where it gives up or `by_upsert` asks,
/// by counting into a table.
async fn rebuild_histogram(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    source: &str,
    by_upsert: bool,
) -> Result<(), StoreError> {
    sqlx::query(segments_sql::HISTOGRAM_CLEAR)
        .execute(&mut **tx)
        .await?;
    if !by_upsert {
        let inserted = sqlx::query(AssertSqlSafe(segments_sql::histogram_by_aggregate(source)))
            .execute(&mut **tx)
            .await?
            .rows_affected();
        // Every customer counts in the 365-day spend: no row means no
        // customer, or an aggregate that gave up.
        if inserted > 0 {
            return Ok(());
        }
        let anyone: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {source})"
        )))
        .fetch_one(&mut **tx)
        .await?;
        if !anyone {
            return Ok(());
        }
        tracing::debug!(
            max_entries = super::histogram::MAX_ENTRIES,
            "too many distinct values for seg_histogram; counting them in a table"
        );
    }
    for sql in segments_sql::histogram_by_upsert(source) {
        sqlx::query(AssertSqlSafe(sql)).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Run a batch's statement over the ids in `(lo, hi]`; placeholders: now
/// (in milliseconds), lo, hi. Returns the rows it affected.
async fn in_range(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    sql: &str,
    plan: &SegmentPlan,
    lo: &str,
    hi: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(ms(plan.now))
        .bind(lo)
        .bind(hi)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// Record the histogram values of the batch's customers with sign `d`.
async fn histogram_rows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    d: i32,
    lo: &str,
    hi: &str,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(segments_sql::histogram_rows(d)))
        .bind(lo)
        .bind(hi)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Phase B: stages and tiers for everyone (see `segments_sql`), the
/// changed rows written in batches with their transitions; in a first run,
/// every row of `segment_fill` written ranked, in phase A's batches
/// (`fill_bounds`). Returns (rows changed, transitions).
async fn phase_b(
    conn: &mut Conn,
    plan: &SegmentPlan,
    fill_bounds: Option<&[String]>,
) -> Result<(u64, u64), StoreError> {
    for sql in [
        "DROP TABLE IF EXISTS temp.seg_thr",
        "DROP TABLE IF EXISTS temp.seg_changes",
        "DROP TABLE IF EXISTS temp.seg_cand",
    ] {
        sqlx::query(sql).execute(&mut **conn).await?;
    }
    fill_thresholds(conn, plan).await?;
    let (changed, transitions) = match fill_bounds {
        Some(bounds) => fill(conn, plan, bounds).await?,
        None => rank(conn, plan).await?,
    };
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for sql in segments_sql::save_state() {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    sqlx::query("DROP TABLE temp.seg_thr")
        .execute(&mut **conn)
        .await?;
    Ok((changed, transitions))
}

/// A first run's phase B: each batch of `segment_fill` written into the
/// empty `customer_attributes`, ranked, with each customer's entry into
/// its stage and tier. Returns (rows written, transitions).
async fn fill(
    conn: &mut Conn,
    plan: &SegmentPlan,
    bounds: &[String],
) -> Result<(u64, u64), StoreError> {
    // Placeholders of both: now (?1), lo (?2), hi (?3).
    let rows = segments_sql::fill_rows(plan, Dialect::Sqlite, "?2", "?3");
    let entered = segments_sql::fill_entered(
        Dialect::Sqlite,
        "(SELECT customer_id, lifecycle, value_tier FROM customer_attributes \
         WHERE customer_id > ?2 AND customer_id <= ?3)",
        "?1",
    );
    let (mut written, mut transitions) = (0u64, 0u64);
    for (lo, hi) in segments_sql::batches(bounds) {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        written += in_range(&mut tx, &rows, plan, &lo, &hi).await?;
        transitions += in_range(&mut tx, &entered, plan, &lo, &hi).await?;
        tx.commit().await?;
    }
    sqlx::query("DELETE FROM segment_fill")
        .execute(&mut **conn)
        .await?;
    Ok((written, transitions))
}

/// Phase B building on stored rows: the customers whose stage or tier
/// changed (`seg_changes`), among everyone or the candidates, written
/// in scattered batches with their transitions. Returns (rows changed,
/// transitions).
async fn rank(conn: &mut Conn, plan: &SegmentPlan) -> Result<(u64, u64), StoreError> {
    let bases = if plan.ranks_everyone() {
        None
    } else {
        Some(store_bases(conn).await?)
    };
    let (scope, params) = RankScope::of(plan, bases.as_deref(), Dialect::Sqlite);
    sqlx::query(AssertSqlSafe(segments_sql::changes(
        plan,
        Dialect::Sqlite,
        &scope,
    )))
    .bind_params(&params)
    .execute(&mut **conn)
    .await?;
    sqlx::query("CREATE UNIQUE INDEX temp.seg_changes_id ON seg_changes (id)")
        .execute(&mut **conn)
        .await?;
    if plan.evaluates_some_segment_over_changes() {
        let scores = match &bases {
            Some(bases) if plan.reads_scores_over_changes() => {
                segments_sql::candidate_ranges(plan, bases, Moved::Score, Dialect::Sqlite)
            }
            _ => None,
        };
        let (cond, params) = scores.unzip();
        sqlx::query(AssertSqlSafe(segments_sql::changed_customers(
            Dialect::Sqlite,
            cond.as_deref(),
        )))
        .bind_params(&params.unwrap_or_default())
        .execute(&mut **conn)
        .await?;
        sqlx::query("CREATE UNIQUE INDEX temp.seg_cand_id ON seg_cand (id)")
            .execute(&mut **conn)
            .await?;
    }
    let (mut changed, mut transitions) = (0u64, 0u64);
    let mut lo = String::new();
    let (tsql, usql) = (
        segments_sql::transitions(Dialect::Sqlite),
        segments_sql::apply_changes(Dialect::Sqlite),
    );
    while let Some(hi) = next_bound(conn, "seg_changes", &lo, plan.scattered_batch_size).await? {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        transitions += in_range(&mut tx, &tsql, plan, &lo, &hi).await?;
        changed += in_range(&mut tx, &usql, plan, &lo, &hi).await?;
        tx.commit().await?;
        lo = hi;
    }
    sqlx::query("DROP TABLE temp.seg_changes")
        .execute(&mut **conn)
        .await?;
    Ok((changed, transitions))
}

/// Entries of `segment_histogram` read at a time (about 1.2 MB of JSON).
const HISTOGRAM_PAGE: usize = 50_000;

/// Create `seg_thr` with each store key's thresholds, and give the
/// calendar `seg_today` its score thresholds.
async fn fill_thresholds(conn: &mut Conn, plan: &SegmentPlan) -> Result<(), StoreError> {
    let found = thresholds(conn, plan, HISTOGRAM_PAGE).await?;
    sqlx::query(AssertSqlSafe(segments_sql::thresholds_table(
        Dialect::Sqlite,
    )))
    .execute(&mut **conn)
    .await?;
    let insert = segments_sql::thresholds_insert(Dialect::Sqlite);
    for (store_key, values) in found {
        values
            .iter()
            .fold(
                sqlx::query(AssertSqlSafe(insert.clone())).bind(store_key),
                |q, v| q.bind(*v),
            )
            .execute(&mut **conn)
            .await?;
    }
    // Custom segments read scores with this run's thresholds.
    sqlx::query(AssertSqlSafe(segments_sql::calendar_thresholds("seg_thr")))
        .execute(&mut **conn)
        .await?;
    Ok(())
}

/// Each store key's thresholds, read from `segment_histogram` in one
/// ordered pass, `page` entries at a time.
async fn thresholds(
    conn: &mut Conn,
    plan: &SegmentPlan,
    page: usize,
) -> Result<Vec<(String, ThresholdRow)>, StoreError> {
    let totals: Vec<(String, String, i64)> =
        sqlx::query_as(segments_sql::histogram_totals(Dialect::Sqlite))
            .fetch_all(&mut **conn)
            .await?;
    let mut scan = ThresholdScan::new(&plan.rules.tiers, totals);
    let mut after = (String::new(), String::new(), i64::MIN);
    loop {
        let json: String = sqlx::query_scalar(segments_sql::HISTOGRAM_PAGE_AS_JSON)
            .bind(&after.0)
            .bind(&after.1)
            .bind(after.2)
            .bind(i64::try_from(page).unwrap_or(i64::MAX))
            .fetch_one(&mut **conn)
            .await?;
        let entries: Vec<segments_sql::HistogramEntry> =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                table: "segment_histogram",
                reason: format!("its values as JSON: {e}"),
            })?;
        for e in &entries {
            scan.push(&e.metric, &e.store_key, e.value, e.n)?;
        }
        match entries.last() {
            Some(last) if entries.len() >= page => {
                after = (
                    last.metric.to_string(),
                    last.store_key.to_string(),
                    last.value,
                );
            }
            _ => break,
        }
    }
    Ok(scan.finish(plan.days.iter().map(|d| d.store_key.as_str())))
}

/// What each store key was ranked with by the previous run and is now.
async fn store_bases(conn: &mut Conn) -> Result<Vec<segments_sql::StoreBases>, StoreError> {
    Ok(
        sqlx::query(AssertSqlSafe(segments_sql::rank_bases(Dialect::Sqlite)))
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
    let now = ms(plan.now);
    for sql in [
        "DROP TABLE IF EXISTS temp.seg_members",
        "CREATE TEMP TABLE seg_members (k INTEGER NOT NULL, id TEXT NOT NULL, \
         PRIMARY KEY (k, id)) WITHOUT ROWID",
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
        sqlx::query("DELETE FROM seg_members")
            .execute(&mut **conn)
            .await?;
        let (sql, params) = members_sql(&group, all);
        sqlx::query(AssertSqlSafe(sql))
            .bind_params(&params)
            .execute(&mut **conn)
            .await?;
        for (k, segment) in (0i64..).zip(&group) {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            transitions += apply_members(&mut tx, &segment.name, k, now, all).await?;
            tx.commit().await?;
        }
    }
    // Nobody is a member of a segment that is gone (no row has k = -1).
    for name in &plan.removed {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        transitions += apply_members(&mut tx, name, -1, now, true).await?;
        tx.commit().await?;
    }
    sqlx::query("DROP TABLE temp.seg_members")
        .execute(&mut **conn)
        .await?;
    Ok(transitions)
}

/// The insert into `seg_members` of a row (k, customer) for each of
/// `segments` (k its position) whose expression holds, among everyone
/// (`all`) or among `seg_cand`: one pass, the customers outside and the
/// positions inside (`CROSS JOIN` keeps that order), each expression
/// evaluated once per customer. The `?` bind in the order they appear: the
/// positions are literal numbers, the expressions' parameters in order.
fn members_sql(segments: &[&CustomSegment], all: bool) -> (String, Vec<SqlParam>) {
    let mut ph = Placeholders::new();
    let mut cases = Vec::with_capacity(segments.len());
    for (k, segment) in segments.iter().enumerate() {
        let filter = segment.expr.to_sql(Dialect::Sqlite, &mut ph);
        cases.push(format!("WHEN {k} THEN ({filter})"));
    }
    let positions: Vec<String> = (0..segments.len()).map(|k| format!("({k})")).collect();
    let from = segments_sql::members_source(Dialect::Sqlite, all, segments);
    let sql = format!(
        r#"INSERT INTO seg_members (k, id)
SELECT v.k, a.customer_id FROM {from}
JOIN seg_today t ON t.store_key = a.store_key
CROSS JOIN (SELECT column1 AS k FROM (VALUES {positions})) v
WHERE CASE v.k {cases} END"#,
        positions = positions.join(", "),
        cases = cases.join("\n    "),
    );
    (sql, ph.into_params())
}

/// Make `segment`'s membership equal to its rows of `seg_members` (those
/// with position `k`; among `seg_cand` only, unless `all`), recording each
/// change.
async fn apply_members(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    segment: &str,
    k: i64,
    now: i64,
    all: bool,
) -> Result<u64, StoreError> {
    let scope = if all {
        ""
    } else {
        "AND s.customer_id IN (SELECT id FROM seg_cand)"
    };
    let mut transitions = sqlx::query(
        r#"INSERT INTO segment_transitions (customer_id, segment, change, at)
           SELECT m.id, ?, 'entered', ? FROM seg_members m
           WHERE m.k = ? AND NOT EXISTS (SELECT 1 FROM segment_memberships s
                                         WHERE s.segment = ? AND s.customer_id = m.id)"#,
    )
    .bind(segment)
    .bind(now)
    .bind(k)
    .bind(segment)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    transitions += sqlx::query(AssertSqlSafe(format!(
        r#"INSERT INTO segment_transitions (customer_id, segment, change, at)
           SELECT s.customer_id, s.segment, 'left', ? FROM segment_memberships s
           WHERE s.segment = ? {scope}
             AND NOT EXISTS (SELECT 1 FROM seg_members m WHERE m.k = ? AND m.id = s.customer_id)"#
    )))
    .bind(now)
    .bind(segment)
    .bind(k)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query(AssertSqlSafe(format!(
        r#"DELETE FROM segment_memberships AS s WHERE s.segment = ? {scope}
           AND NOT EXISTS (SELECT 1 FROM seg_members m WHERE m.k = ? AND m.id = s.customer_id)"#
    )))
    .bind(segment)
    .bind(k)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT OR IGNORE INTO segment_memberships (segment, customer_id, entered_at) \
         SELECT ?, id, ? FROM seg_members WHERE k = ?",
    )
    .bind(segment)
    .bind(now)
    .bind(k)
    .execute(&mut **tx)
    .await?;
    Ok(transitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phase A's statement runs each customer's aggregate once: SQLite
    /// keeps `q` a subquery of its own. Merged into the outer query (as it
    /// was when nothing else stood there), the aggregate ran again for
    /// every attribute taken from its result, three to twelve times.
    #[tokio::test]
    async fn phase_a_aggregates_each_customer_once() {
        use crate::segments::SegmentsFile;
        use chrono::TimeZone;
        let (_dir, store) = SqliteStore::temporary(1).await;
        let mut conn = store.pool.acquire().await.unwrap();
        load_calendar(&mut conn, &[], &[]).await.unwrap();
        sqlx::query("CREATE TEMP TABLE seg_todo (id TEXT PRIMARY KEY) WITHOUT ROWID")
            .execute(&mut *conn)
            .await
            .unwrap();
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
        for (mode, fill) in [
            (RecomputeMode::Full, true),
            (RecomputeMode::Full, false),
            (RecomputeMode::Incremental, false),
        ] {
            let plan = SegmentPlan::new(
                &SegmentsFile::defaults(),
                &[],
                chrono_tz::Asia::Shanghai,
                now,
                mode,
                None,
            );
            let steps: Vec<String> = sqlx::query(AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {}",
                phase_a_sql(&plan, fill)
            )))
            .bind(0_i64)
            .bind("")
            .bind("")
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect();
            let aggregates = steps
                .iter()
                .filter(|step| step.contains("CORRELATED SCALAR SUBQUERY"))
                .count();
            assert_eq!(aggregates, 1, "{mode:?}, fill {fill}: {steps:#?}");
        }
    }

    /// 300 customers in two stores and none: repeated and distinct values,
    /// some who never ordered, refunds below zero.
    async fn three_hundred_customers(conn: &mut Conn) {
        sqlx::query(
            r#"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
               INSERT INTO customer_attributes (customer_id, store_key, joined_at, joined_day,
                   order_count, total_spent_fen, order_count_90d, spent_90d_fen, spent_365d_fen,
                   last_order_day, computed_day, computed_at)
               SELECT printf('C%04d', i), CASE i % 3 WHEN 0 THEN 'SH-001' WHEN 1 THEN 'BJ-001' ELSE '' END,
                   0, 0, i % 7, (i % 7) * 1000 - (i % 5) * 300, 0, 0, (i % 11) * 250 - 500,
                   CASE WHEN i % 7 = 0 THEN NULL ELSE 20000 + i % 40 END, 20780, 0
               FROM n"#,
        )
        .execute(&mut **conn)
        .await
        .unwrap();
    }

    /// The thresholds read a page of the histogram at a time are those of
    /// one ordered pass over its rows, whatever the page's size.
    #[tokio::test]
    async fn thresholds_read_in_pages_are_those_of_one_pass() {
        use crate::domain::{StoreCode, StoreInfo};
        use crate::segments::SegmentsFile;
        use chrono::TimeZone;
        let (_dir, store) = SqliteStore::temporary(1).await;
        let mut conn = store.pool.acquire().await.unwrap();
        three_hundred_customers(&mut conn).await;
        let mut tx = conn.begin().await.unwrap();
        rebuild_histogram(&mut tx, "customer_attributes", false)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let stores: Vec<StoreInfo> = ["SH-001", "BJ-001"]
            .map(|code| StoreInfo {
                code: StoreCode::from_trusted(code.to_owned()),
                name: code.to_owned(),
                sms_signature: String::new(),
                timezone: chrono_tz::Asia::Shanghai,
            })
            .into();
        let plan = SegmentPlan::new(
            &SegmentsFile::defaults(),
            &stores,
            chrono_tz::Asia::Shanghai,
            chrono::Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap(),
            RecomputeMode::Full,
            None,
        );
        // The oracle: every row, one by one, in key order.
        let totals: Vec<(String, String, i64)> =
            sqlx::query_as(segments_sql::histogram_totals(Dialect::Sqlite))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let mut scan = ThresholdScan::new(&plan.rules.tiers, totals);
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as(segments_sql::HISTOGRAM_IN_ORDER)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        assert!(rows.len() > 100, "{} rows", rows.len());
        for (metric, store_key, value, n) in &rows {
            scan.push(metric, store_key, *value, *n).unwrap();
        }
        let expected = scan.finish(plan.days.iter().map(|d| d.store_key.as_str()));
        assert_eq!(expected.len(), 3);
        assert!(
            expected
                .iter()
                .all(|(_, t)| t[0] != crate::segments::thresholds::UNREACHABLE)
        );
        for page in [
            1,
            7,
            rows.len() - 1,
            rows.len(),
            rows.len() + 1,
            HISTOGRAM_PAGE,
        ] {
            let found = thresholds(&mut conn, &plan, page).await.unwrap();
            assert_eq!(found, expected, "pages of {page}");
        }
    }

    /// The aggregate and the table count the same histogram.
    #[tokio::test]
    async fn both_ways_of_counting_the_histogram_agree() {
        let (_dir, store) = SqliteStore::temporary(1).await;
        let mut conn = store.pool.acquire().await.unwrap();
        three_hundred_customers(&mut conn).await;
        let mut by_hand = Vec::new();
        for by_upsert in [false, true] {
            let mut tx = conn.begin().await.unwrap();
            rebuild_histogram(&mut tx, "customer_attributes", by_upsert)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            by_hand.push(
                sqlx::query_as::<_, (String, String, i64, i64)>(
                    "SELECT metric, store_key, value, n FROM segment_histogram ORDER BY 1, 2, 3",
                )
                .fetch_all(&mut *conn)
                .await
                .unwrap(),
            );
        }
        assert!(by_hand[0].len() > 50, "{:?}", by_hand[0]);
        let customers: i64 = by_hand[0]
            .iter()
            .filter(|(m, ..)| m == "t")
            .map(|(.., n)| n)
            .sum();
        assert_eq!(customers, 300);
        assert_eq!(by_hand[0], by_hand[1]);
        // More distinct spends than the aggregate keeps: it gives up, and
        // the table counts them.
        sqlx::query(
            r#"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 130000)
               INSERT INTO customer_attributes (customer_id, store_key, joined_at, joined_day,
                   order_count, total_spent_fen, order_count_90d, spent_90d_fen, spent_365d_fen,
                   last_order_day, computed_day, computed_at)
               SELECT printf('D%06d', i), 'SH-001', 0, 0, 1 + i % 5, i * 7, 0, 0, i * 13,
                   20000 + i % 400, 20780, 0
               FROM n"#,
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let mut tx = conn.begin().await.unwrap();
        rebuild_histogram(&mut tx, "customer_attributes", false)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (rows, customers): (i64, i64) = sqlx::query_as(
            "SELECT count(*), sum(n) FILTER (WHERE metric = 't') FROM segment_histogram",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert!(
            usize::try_from(rows).unwrap() > super::super::histogram::MAX_ENTRIES,
            "{rows} rows"
        );
        assert_eq!(customers, 130_300);
    }
}
