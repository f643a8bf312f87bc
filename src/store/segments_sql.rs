//! SQL of the segments job's ranking phase, shared by both backends (they
//! differ only in how a boolean becomes 0 or 1).
//!
//! Quintile scores are ranks within the store; the thresholds that turn a
//! value into a score or tier come from each store's histogram of values
//! (see `segments::thresholds`), kept in `segment_histogram` (a row per
//! distinct value: a full run rebuilds it, an incremental run adds the
//! changes of the customers it recomputes), instead of a sort of every
//! customer. One pass over the customers (or the candidates) then finds those
//! whose stage or tier changed. Scores are not stored: they are read from
//! the figures and the thresholds of the last run (`segment_run_state`,
//! copied into the calendar `seg_today` that expressions read), see
//! `expr::catalog`.

use crate::expr::{Attr, Dialect, Placeholders, SqlParam};
use crate::segments::file::CustomSegment;
use crate::segments::plan::SegmentPlan;

/// A batch of ids walked in key order: those after the previous batch's
/// upper bound up to `hi`, `ids` of them (at the time it was found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub hi: String,
    pub ids: u64,
}

/// The next [`Batch`] of at most the second parameter's ids of `table.id`
/// after the first: its bound and count in one index scan (a NULL bound
/// when none is left).
pub fn next_batch(table: &str, dialect: Dialect) -> String {
    let (lo, size) = match dialect {
        Dialect::Sqlite => ("?", "?"),
        Dialect::Postgres => ("$1", "$2"),
    };
    format!(
        "SELECT max(id), count(*) FROM (SELECT id FROM {table} WHERE id > {lo} ORDER BY id LIMIT {size}) b"
    )
}

/// The join that keeps its left side as SQLite's outer loop (the few batch
/// ids or candidates outside, the other table looked up by key).
fn ordered_join(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CROSS JOIN",
        Dialect::Postgres => "JOIN",
    }
}

/// The conflict clause of the batch writes of many rows.
///
/// SQLite undoes a failed statement on its own, without the transaction,
/// when the statement may stop half-way on a constraint (`ABORT`, the
/// default): for that it copies every page the statement changes into a
/// statement journal first, a temporary file. A batch of score changes
/// touches a few thousand scattered pages, so that was a few thousand page
/// writes more per batch. `OR FAIL` stops the statement with its error
/// without undoing it: the batch's transaction is then rolled back whole
/// (the error ends the batch before its commit), so nothing is kept of it
/// either way. (An upsert's `DO UPDATE` aborts regardless, and keeps its
/// journal.)
fn or_fail(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "OR FAIL ",
        Dialect::Postgres => "",
    }
}

/// Each (metric, store key) of `segment_histogram` with its customer count.
pub fn histogram_totals(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "SELECT metric, store_key, SUM(n) FROM segment_histogram GROUP BY metric, store_key"
        }
        Dialect::Postgres => {
            "SELECT metric, store_key, SUM(n)::bigint FROM segment_histogram GROUP BY metric, store_key"
        }
    }
}

/// `segment_histogram` in the order a
/// [`ThresholdScan`](crate::segments::thresholds::ThresholdScan) reads it.
pub const HISTOGRAM_IN_ORDER: &str =
    "SELECT metric, store_key, value, n FROM segment_histogram ORDER BY metric, store_key, value";

/// A page of [`HISTOGRAM_IN_ORDER`] as one JSON array of `[metric,
/// store_key, value, n]` (SQLite): the entries after the key (`?1`, `?2`,
/// `?3`), at most `?4` of them. The rows one by one cost sqlx about 1.7 µs
/// each, 0.11 s for the 65,000 values of the demo shop; SQLite builds the
/// arrays in 0.04 s. Pages keep the text small whatever the number of
/// distinct values.
pub const HISTOGRAM_PAGE_AS_JSON: &str = "SELECT json_group_array(json_array(metric, store_key, value, n) \
     ORDER BY metric, store_key, value) FROM (SELECT metric, store_key, value, n FROM segment_histogram \
     WHERE (metric, store_key, value) > (?1, ?2, ?3) ORDER BY metric, store_key, value LIMIT ?4)";

/// An entry of [`HISTOGRAM_PAGE_AS_JSON`]'s array.
#[derive(Debug, serde::Deserialize)]
pub struct HistogramEntry<'a> {
    #[serde(borrow)]
    pub metric: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub store_key: std::borrow::Cow<'a, str>,
    pub value: i64,
    pub n: i64,
}

/// `CREATE TEMP TABLE seg_thr`: one row per store key with the score
/// thresholds `r1..r4`, `f1..f4`, `m1..m4` and the tier thresholds `t1`
/// (vip) and `t2` (core).
pub fn thresholds_table(dialect: Dialect) -> String {
    let (key, int) = match dialect {
        Dialect::Sqlite => ("TEXT", "INTEGER"),
        Dialect::Postgres => ("TEXT COLLATE \"C\"", "BIGINT"),
    };
    let cols: Vec<String> = THRESHOLD_COLUMNS
        .iter()
        .map(|(c, _)| format!("{c} {int} NOT NULL"))
        .collect();
    format!(
        "CREATE TEMP TABLE seg_thr (store_key {key} PRIMARY KEY, {})",
        cols.join(", ")
    )
}

/// Insert one row of `seg_thr`: the store key, then the 14 thresholds.
pub fn thresholds_insert(dialect: Dialect) -> String {
    let marks: Vec<String> = (1..=THRESHOLD_COLUMNS.len() + 1)
        .map(|i| match dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${i}"),
        })
        .collect();
    format!("INSERT INTO seg_thr VALUES ({})", marks.join(", "))
}

/// The score thresholds (`r1..r4`, `f1..f4`, `m1..m4`): the columns of
/// `seg_thr` and `segment_run_state` that the calendar `seg_today` also
/// holds, for expressions reading scores.
fn score_threshold_columns() -> impl Iterator<Item = &'static str> {
    THRESHOLD_COLUMNS
        .iter()
        .filter(|(_, col)| *col != TIER_VALUE)
        .map(|(c, _)| *c)
}

/// The score thresholds' column definitions in `seg_today` (after a comma):
/// NULL for a store key not ranked yet.
pub fn calendar_threshold_columns(dialect: Dialect) -> String {
    let int = match dialect {
        Dialect::Sqlite => "INTEGER",
        Dialect::Postgres => "BIGINT",
    };
    score_threshold_columns()
        .map(|c| format!(", {c} {int}"))
        .collect()
}

/// Set the score thresholds of `seg_today` to those of `source`
/// (`segment_run_state`, the last run's, or `seg_thr`, this run's) by store
/// key (both dialects).
pub fn calendar_thresholds(source: &str) -> String {
    let set: Vec<String> = score_threshold_columns()
        .map(|c| format!("{c} = s.{c}"))
        .collect();
    format!(
        "UPDATE seg_today SET {} FROM {source} s WHERE s.store_key = seg_today.store_key",
        set.join(", ")
    )
}

/// The select-list of a customer's scores and RFM code, each named as its
/// attribute, from `a` and the thresholds of `t` (a profile joins
/// `segment_run_state t`).
pub fn score_select(dialect: Dialect) -> String {
    [Attr::RScore, Attr::FScore, Attr::MScore, Attr::Rfm]
        .map(|attr| {
            let cast = match dialect {
                Dialect::Postgres if attr != Attr::Rfm => "::bigint",
                _ => "",
            };
            format!("{}{cast} AS {}", attr.sql(), attr.name())
        })
        .join(", ")
}

/// Empties `segment_histogram` before a full run's rebuild (both dialects).
pub const HISTOGRAM_CLEAR: &str = "DELETE FROM segment_histogram";

/// PostgreSQL: the statements that fill the emptied `segment_histogram`
/// from every customer's figures in `source` (`customer_attributes`, or a
/// table with its columns) after a full run's phase A, the first outside
/// the transaction that empties it, the rest inside.
///
/// A grouped pass per metric of [`HISTOGRAM_METRICS`] is counted
/// into a temporary table first: a `CREATE TABLE AS` may run them in
/// parallel, an `INSERT` may not, and one pass with grouping sets cannot
/// be split (1,000,000 customers: 0.64 s against 0.83 to 1.07 s).
pub fn pg_histogram_fill(source: &str) -> [String; 3] {
    let counted = histogram_union(|metric, column, filter| {
        format!(
            "SELECT '{metric}' AS metric, store_key, {column}::bigint AS v, count(*) AS n\n    \
             FROM {source} WHERE {filter} GROUP BY store_key, {column}"
        )
    });
    [
        format!("CREATE TEMP TABLE seg_hist_new AS\n{counted}"),
        "INSERT INTO segment_histogram (metric, store_key, value, n) SELECT metric, store_key, v, n FROM seg_hist_new".to_owned(),
        "DROP TABLE seg_hist_new".to_owned(),
    ]
}

/// The histogram's four metrics: each one's name, the column whose values
/// it counts, and among which customers (recency, frequency and money
/// among those who ordered, 365-day spend among all). SQLite's aggregate
/// `seg_histogram` counts by the same filters.
const HISTOGRAM_METRICS: [(&str, &str, &str); 4] = [
    ("r", "last_order_day", "last_order_day IS NOT NULL"),
    ("f", "order_count", "order_count > 0"),
    ("m", "total_spent_fen", "order_count > 0"),
    ("t", "spent_365d_fen", "true"),
];

/// A select per metric of [`HISTOGRAM_METRICS`], as `select(metric,
/// column, filter)` spells it, joined by `UNION ALL`.
fn histogram_union(select: impl Fn(&str, &str, &str) -> String) -> String {
    HISTOGRAM_METRICS
        .iter()
        .map(|(metric, column, filter)| select(metric, column, filter))
        .collect::<Vec<_>>()
        .join("\nUNION ALL ")
}

/// SQLite: fill the emptied `segment_histogram` from `source` with the
/// aggregate `seg_histogram` (see `store::sqlite::histogram`), which counts
/// in one pass into a hash map.
///
/// SQLite groups by sorting: four `GROUP BY`s over a million customers took
/// 5.9 s, and upserting four counts per customer into a keyed table
/// ([`histogram_by_upsert`]) 3 s. Where the aggregate gives up (too many
/// distinct values) this inserts no row, and the caller counts again with
/// [`histogram_by_upsert`].
pub fn histogram_by_aggregate(source: &str) -> String {
    format!(
        r#"INSERT INTO segment_histogram (metric, store_key, value, n)
SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3
FROM json_each((SELECT seg_histogram(store_key, last_order_day, order_count,
                                     total_spent_fen, spent_365d_fen) FROM {source})) e"#
    )
}

/// SQLite: statements that fill the emptied `segment_histogram` from
/// `source` by counting into a temporary keyed table, kept on disk with the
/// run's other temporary tables, in one pass: slower than `seg_histogram`,
/// but its memory does not grow with the number of distinct values.
pub fn histogram_by_upsert(source: &str) -> Vec<String> {
    vec![
        "CREATE TEMP TABLE IF NOT EXISTS seg_hist_count (metric TEXT NOT NULL, \
         store_key TEXT NOT NULL, value INTEGER NOT NULL, n INTEGER NOT NULL, \
         PRIMARY KEY (metric, store_key, value)) WITHOUT ROWID"
            .to_owned(),
        "DELETE FROM seg_hist_count".to_owned(),
        // `WHERE true` tells SQLite's parser the upsert from the join.
        format!(
            r#"INSERT INTO seg_hist_count (metric, store_key, value, n)
SELECT metric, store_key, v, 1 FROM (
{values}
) WHERE true
ON CONFLICT (metric, store_key, value) DO UPDATE SET n = n + 1"#,
            values = histogram_union(|metric, column, filter| format!(
                "SELECT '{metric}' AS metric, store_key, {column} AS v FROM {source} WHERE {filter}"
            )),
        ),
        "INSERT INTO segment_histogram (metric, store_key, value, n) \
         SELECT metric, store_key, value, n FROM seg_hist_count"
            .to_owned(),
        "DELETE FROM seg_hist_count".to_owned(),
    ]
}

/// `CREATE TEMP TABLE` for `seg_hist_rows`: the four histogram values of
/// the customers of one incremental batch, before (`d` = -1) and after
/// (`d` = +1) their order figures are recomputed. Emptied for each batch
/// ([`HISTOGRAM_ROWS_CLEAR`]).
pub fn histogram_rows_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "CREATE TEMP TABLE IF NOT EXISTS seg_hist_rows (store_key TEXT NOT NULL, \
             last_order_day INTEGER, order_count INTEGER NOT NULL, total_spent_fen INTEGER NOT NULL, \
             spent_365d_fen INTEGER NOT NULL, d INTEGER NOT NULL)"
        }
        Dialect::Postgres => {
            "CREATE TEMP TABLE IF NOT EXISTS seg_hist_rows (store_key TEXT COLLATE \"C\" NOT NULL, \
             last_order_day INTEGER, order_count INTEGER NOT NULL, total_spent_fen BIGINT NOT NULL, \
             spent_365d_fen BIGINT NOT NULL, d INTEGER NOT NULL)"
        }
    }
}

/// Empties `seg_hist_rows` (both dialects).
pub const HISTOGRAM_ROWS_CLEAR: &str = "DELETE FROM seg_hist_rows";

/// Record the histogram values of the `seg_todo` customers with ids in
/// `(lo, hi]` as they are now, with sign `d`; placeholders: lo, hi. SQLite
/// (PostgreSQL notes them in the statement that writes the rows).
pub fn histogram_rows(d: i32) -> String {
    format!(
        "INSERT INTO seg_hist_rows SELECT {values}, {d} FROM seg_todo x \
         {join} customer_attributes a ON a.customer_id = x.id WHERE x.id > ? AND x.id <= ?",
        values = histogram_values("a."),
        join = ordered_join(Dialect::Sqlite),
    )
}

/// The histogram's values of a row of `customer_attributes`, in the order
/// of `seg_hist_rows`' columns.
pub const HISTOGRAM_VALUE_COLUMNS: [&str; 5] = [
    "store_key",
    "last_order_day",
    "order_count",
    "total_spent_fen",
    "spent_365d_fen",
];

/// [`HISTOGRAM_VALUE_COLUMNS`] as a select-list, each column named `{prefix}{column}`
/// (`a.`, `NEW.`, `old_`, …).
pub fn histogram_values(prefix: &str) -> String {
    HISTOGRAM_VALUE_COLUMNS
        .iter()
        .map(|c| format!("{prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Statements that add the changes recorded in `seg_hist_rows` to
/// `segment_histogram`, by the metrics of [`HISTOGRAM_METRICS`], and drop
/// the values nobody has any more.
pub fn histogram_apply() -> [String; 2] {
    let changes = histogram_union(|metric, column, filter| {
        format!(
            "SELECT '{metric}' AS metric, store_key, {column} AS v, d FROM seg_hist_rows WHERE {filter}"
        )
    });
    [
        format!(
            r#"INSERT INTO segment_histogram (metric, store_key, value, n)
SELECT metric, store_key, v, sum(d) FROM (
{changes}
) x
GROUP BY metric, store_key, v HAVING sum(d) <> 0
ON CONFLICT (metric, store_key, value) DO UPDATE SET n = segment_histogram.n + excluded.n"#
        ),
        "DELETE FROM segment_histogram WHERE n = 0".to_owned(),
    ]
}

/// The value the tier thresholds `t1` and `t2` apply to (the score
/// thresholds apply to the others of [`THRESHOLD_COLUMNS`]).
const TIER_VALUE: &str = "spent_365d_fen";

/// The columns each threshold of `seg_thr` applies to.
const THRESHOLD_COLUMNS: [(&str, &str); 14] = [
    ("r1", "last_order_day"),
    ("r2", "last_order_day"),
    ("r3", "last_order_day"),
    ("r4", "last_order_day"),
    ("f1", "order_count"),
    ("f2", "order_count"),
    ("f3", "order_count"),
    ("f4", "order_count"),
    ("m1", "total_spent_fen"),
    ("m2", "total_spent_fen"),
    ("m3", "total_spent_fen"),
    ("m4", "total_spent_fen"),
    ("t1", "spent_365d_fen"),
    ("t2", "spent_365d_fen"),
];

/// What a store key is ranked with: its local day, the starts of the
/// lifecycle windows (epoch milliseconds, in [`SINCE_COLUMNS`] order) and the
/// thresholds (in [`THRESHOLD_COLUMNS`] order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankBasis {
    pub today: i64,
    pub since: [i64; 4],
    pub thresholds: [i64; 14],
}

/// The columns of a [`RankBasis`] in a row of [`rank_bases`].
pub const RANK_BASIS_WIDTH: usize = 19;

impl RankBasis {
    /// From [`RANK_BASIS_WIDTH`] integers in the order [`rank_bases`] reads them.
    pub fn from_columns(v: &[i64; RANK_BASIS_WIDTH]) -> RankBasis {
        let mut since = [0; 4];
        since.copy_from_slice(&v[1..5]);
        let mut thresholds = [0; 14];
        thresholds.copy_from_slice(&v[5..]);
        RankBasis {
            today: v[0],
            since,
            thresholds,
        }
    }
}

/// One store key's basis in the previous run and in this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreBases {
    pub store_key: String,
    pub previous: RankBasis,
    pub current: RankBasis,
}

/// The lifecycle window starts of `seg_today` and `segment_run_state`.
const SINCE_COLUMNS: [&str; 4] = ["new_since", "active_since", "at_risk_since", "lapsed_since"];

/// A query with a row per store key known to both this run's calendar and
/// the previous run: the key, then the previous [`RankBasis`], then this
/// run's ([`RANK_BASIS_WIDTH`] integers each). Needs `seg_thr`.
pub fn rank_bases(dialect: Dialect) -> String {
    let ms = |col: String| match dialect {
        Dialect::Sqlite => col,
        Dialect::Postgres => format!("(extract(epoch FROM {col}) * 1000)::bigint"),
    };
    let mut cols = vec!["t.store_key".to_owned()];
    for (cal, thr) in [("p", "p"), ("t", "s")] {
        cols.push(format!("{cal}.today"));
        cols.extend(SINCE_COLUMNS.iter().map(|c| ms(format!("{cal}.{c}"))));
        cols.extend(THRESHOLD_COLUMNS.iter().map(|(c, _)| format!("{thr}.{c}")));
    }
    format!(
        "SELECT {} FROM seg_today t \
         JOIN segment_run_state p ON p.store_key = t.store_key \
         JOIN seg_thr s ON s.store_key = t.store_key",
        cols.join(", ")
    )
}

impl StoreBases {
    /// From a row of [`rank_bases`].
    pub fn from_row<R>(row: &R) -> Result<StoreBases, sqlx::Error>
    where
        R: sqlx::Row,
        usize: sqlx::ColumnIndex<R>,
        String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let basis = |first: usize| -> Result<RankBasis, sqlx::Error> {
            let mut v = [0i64; RANK_BASIS_WIDTH];
            for (i, slot) in v.iter_mut().enumerate() {
                *slot = row.try_get(first + i)?;
            }
            Ok(RankBasis::from_columns(&v))
        };
        Ok(StoreBases {
            store_key: row.try_get(0)?,
            previous: basis(1)?,
            current: basis(1 + RANK_BASIS_WIDTH)?,
        })
    }
}

/// The columns of `customer_attributes` whose value an incremental run
/// compares with the ranges a threshold or the date moved over, in the order
/// of [`MovedRange::column`] and of `seg_candidate`'s arguments after the
/// store key.
pub const RANGED_COLUMNS: [&str; 5] = [
    "last_order_day",
    "order_count",
    "total_spent_fen",
    "spent_365d_fen",
    "joined_at",
];

/// A half-open range `[lo, hi)` of one of [`RANGED_COLUMNS`] (by position;
/// `joined_at` in epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MovedRange {
    pub column: usize,
    pub lo: i64,
    pub hi: i64,
}

/// The ranges of one store key that a threshold or the date moved over since
/// the previous run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreRanges {
    pub store_key: String,
    pub ranges: Vec<MovedRange>,
}

/// What the customers in a [`MovedRange`] may have had changed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Their stage or tier, which are stored: a tier threshold moved, or a
    /// lifecycle window moved with the date.
    StageOrTier,
    /// Their scores, which are read from the thresholds (so only custom
    /// segments reading scores care): a score threshold moved.
    Score,
}

/// The customers an incremental run must look at again besides those it
/// recomputed: those whose value lies between a threshold's old and new
/// position, and, for stages, those whose stage may have moved with the
/// date since the previous run. Anyone else keeps the score, stage and
/// tier `moved` stands for. Only store keys with a range open are listed.
/// Store keys new since the previous run make the run a full one.
pub fn moved_ranges(plan: &SegmentPlan, bases: &[StoreBases], moved: Moved) -> Vec<StoreRanges> {
    let column = |name: &str| {
        RANGED_COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap_or_default()
    };
    let l = &plan.rules.lifecycle;
    let windows = [
        l.active_within_days,
        l.at_risk_within_days,
        l.lapsed_within_days,
    ];
    let mut out = Vec::new();
    for b in bases {
        let (p, c) = (&b.previous, &b.current);
        let mut ranges = Vec::new();
        for (i, (_, col)) in THRESHOLD_COLUMNS.iter().enumerate() {
            if (*col == TIER_VALUE) != (moved == Moved::StageOrTier) {
                continue;
            }
            let (old, new) = (p.thresholds[i], c.thresholds[i]);
            ranges.push(MovedRange {
                column: column(col),
                lo: old.min(new),
                hi: old.max(new),
            });
        }
        if moved == Moved::StageOrTier {
            for days in windows {
                let days = i64::from(days);
                ranges.push(MovedRange {
                    column: column("last_order_day"),
                    lo: p.today - days,
                    hi: c.today - days,
                });
            }
            for i in 0..SINCE_COLUMNS.len() {
                ranges.push(MovedRange {
                    column: column("joined_at"),
                    lo: p.since[i],
                    hi: c.since[i],
                });
            }
        }
        ranges.retain(|r| r.lo < r.hi);
        if !ranges.is_empty() {
            out.push(StoreRanges {
                store_key: b.store_key.clone(),
                ranges,
            });
        }
    }
    out
}

/// A condition on `customer_attributes a` for the customers of
/// [`moved_ranges`] (`moved`), with its parameters; `None` when no range is
/// open.
///
/// On PostgreSQL the ranges are literal parameters for one scan of the table
/// (a range per index would need an index per ranked value, and every new
/// order would move the customer's entry in each). On SQLite they are one
/// parameter of `seg_candidate` (see `store::sqlite::candidates`): the same
/// ranges as comparisons in SQL took 0.4 µs a row, four fifths of the scan.
pub fn candidate_ranges(
    plan: &SegmentPlan,
    bases: &[StoreBases],
    moved: Moved,
    dialect: Dialect,
) -> Option<(String, Vec<SqlParam>)> {
    let moved = moved_ranges(plan, bases, moved);
    if moved.is_empty() {
        return None;
    }
    match dialect {
        Dialect::Sqlite => {
            let columns: Vec<String> = std::iter::once("store_key")
                .chain(RANGED_COLUMNS)
                .map(|c| format!("a.{c}"))
                .collect();
            // Serialising plain numbers and strings cannot fail.
            let spec = serde_json::to_string(&moved).unwrap_or_default();
            Some((
                format!("seg_candidate(?, {})", columns.join(", ")),
                vec![SqlParam::Text(spec)],
            ))
        }
        Dialect::Postgres => Some(ranges_in_sql(&moved)),
    }
}

/// [`moved_ranges`] as PostgreSQL comparisons, each bound a numbered
/// parameter in the order they appear; instants compared as instants.
fn ranges_in_sql(moved: &[StoreRanges]) -> (String, Vec<SqlParam>) {
    let pg = Dialect::Postgres;
    let mut ph = Placeholders::new();
    let mut stores = Vec::new();
    for store in moved {
        let key = ph.push(pg, SqlParam::Text(store.store_key.clone()));
        let mut terms = Vec::new();
        for r in &store.ranges {
            let col = RANGED_COLUMNS[r.column];
            let is_instant = col == "joined_at";
            let mut bound = |v: i64| {
                let p = ph.push(pg, SqlParam::Int(v));
                if is_instant {
                    format!("'epoch'::timestamptz + {p} * interval '1 millisecond'")
                } else {
                    p
                }
            };
            let (lo, hi) = (bound(r.lo), bound(r.hi));
            terms.push(format!("(a.{col} >= {lo} AND a.{col} < {hi})"));
        }
        stores.push(format!(
            "(a.store_key = {key} AND ({}))",
            terms.join("\n      OR ")
        ));
    }
    (stores.join("\n   OR "), ph.into_params())
}

/// Statements recording this run's calendar and thresholds for the next one.
pub fn save_state() -> [&'static str; 2] {
    [
        "DELETE FROM segment_run_state",
        "INSERT INTO segment_run_state SELECT t.store_key, t.today, t.new_since, t.active_since, \
         t.at_risk_since, t.lapsed_since, s.r1, s.r2, s.r3, s.r4, s.f1, s.f2, s.f3, s.f4, \
         s.m1, s.m2, s.m3, s.m4, s.t1, s.t2 FROM seg_today t JOIN seg_thr s ON s.store_key = t.store_key",
    ]
}

/// Which customers a run re-ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RankScope {
    /// Everyone (a full run).
    All,
    /// Those recomputed from their orders (`seg_todo`) and those matching
    /// the condition of [`candidate_ranges`] for stages and tiers, if any
    /// (an incremental run).
    Candidates(Option<String>),
    /// Every customer meeting a condition on `customer_attributes a` (a
    /// slice of a full run), with its own parameters.
    Where(String),
}

impl RankScope {
    /// The scope of a run in `plan`'s mode, with the parameters of its
    /// condition; `bases` are read only for an incremental run.
    pub fn of(
        plan: &SegmentPlan,
        bases: Option<&[StoreBases]>,
        dialect: Dialect,
    ) -> (RankScope, Vec<SqlParam>) {
        match bases {
            None => (RankScope::All, Vec::new()),
            Some(bases) => match candidate_ranges(plan, bases, Moved::StageOrTier, dialect) {
                Some((cond, params)) => (RankScope::Candidates(Some(cond)), params),
                None => (RankScope::Candidates(None), Vec::new()),
            },
        }
    }
}

/// `CREATE TEMP TABLE seg_changes`: customers whose stage or tier differ
/// from what is stored, with old and new values, among `scope`.
/// Placeholders: those of the scope's condition.
pub fn changes(plan: &SegmentPlan, dialect: Dialect, scope: &RankScope) -> String {
    let body = match scope {
        RankScope::All => changes_select(plan, dialect, "customer_attributes a", "TRUE"),
        RankScope::Where(cond) => changes_select(plan, dialect, "customer_attributes a", cond),
        RankScope::Candidates(ranges) => {
            let todo = changes_select(
                plan,
                dialect,
                &format!(
                    "seg_todo x0 {} customer_attributes a ON a.customer_id = x0.id",
                    ordered_join(dialect)
                ),
                "TRUE",
            );
            match ranges {
                // A customer in both is the same row twice: UNION keeps one.
                Some(cond) => {
                    let (source, filter) = ranged(dialect, cond);
                    let scan = changes_select(plan, dialect, &source, &filter);
                    format!("{scan}\nUNION\n{todo}")
                }
                None => todo,
            }
        }
    };
    format!("CREATE TEMP TABLE seg_changes AS\n{body}")
}

/// The select-list of a customer's ranking from the figures of `a` (a row of
/// `customer_attributes`, or of a table with its columns), the calendar `t`
/// and the thresholds `s`: `tier` and `stage`.
pub fn ranking(plan: &SegmentPlan) -> String {
    let l = &plan.rules.lifecycle;
    let within = |days: u32, since: &str| {
        format!(
            "((a.order_count > 0 AND a.last_order_day >= t.today - {days}) \
             OR (a.order_count = 0 AND a.joined_at >= t.{since}))"
        )
    };
    format!(
        r#"CASE WHEN a.spent_365d_fen > 0 AND a.spent_365d_fen >= s.t1 THEN 'vip'
             WHEN a.spent_365d_fen > 0 AND a.spent_365d_fen >= s.t2 THEN 'core'
             ELSE 'regular' END AS tier,
        CASE WHEN a.joined_at >= t.new_since AND a.order_count <= {new_max} THEN 'new'
             WHEN {active} THEN 'active'
             WHEN {at_risk} THEN 'at_risk'
             WHEN {lapsed} THEN 'lapsed'
             ELSE 'churned' END AS stage"#,
        new_max = l.new_max_orders,
        active = within(l.active_within_days, "active_since"),
        at_risk = within(l.at_risk_within_days, "at_risk_since"),
        lapsed = within(l.lapsed_within_days, "lapsed_since"),
    )
}

/// The changed rows among `source` (which names `customer_attributes a`)
/// that meet `filter`.
fn changes_select(plan: &SegmentPlan, dialect: Dialect, source: &str, filter: &str) -> String {
    // The customers (or the few batch ids) outside, the calendar and
    // thresholds looked up by key.
    let join = ordered_join(dialect);
    format!(
        r#"SELECT id, old_stage, stage, old_tier, tier FROM (
    SELECT a.customer_id AS id, a.lifecycle AS old_stage, a.value_tier AS old_tier,
        {ranking}
    FROM {source}
    {join} seg_today t ON t.store_key = a.store_key
    {join} seg_thr s ON s.store_key = a.store_key
    WHERE {filter}
) x
WHERE old_stage <> stage OR old_tier <> tier"#,
        ranking = ranking(plan),
    )
}

/// The columns of `customer_attributes` that phase A writes: the order
/// figures and when they were computed.
pub const FIGURE_COLUMNS: &str = "customer_id, store_key, joined_at, joined_day, order_count, \
    total_spent_fen, avg_order_fen, order_count_90d, spent_90d_fen, spent_365d_fen, \
    first_order_at, last_order_at, first_order_day, last_order_day, favorite_daypart, \
    next_change_day, computed_day, computed_at";

/// The columns of [`FIGURE_COLUMNS`] taken from the customer's record.
pub const CUSTOMER_FIGURES: [&str; 3] = ["store_key", "joined_at", "joined_day"];

/// The columns of [`FIGURE_COLUMNS`] derived from the customer's orders, in
/// the order SQLite's `seg_figures` returns them (see `sqlite::figures`).
pub const ORDER_ATTRIBUTES: [&str; 12] = [
    "order_count",
    "total_spent_fen",
    "avg_order_fen",
    "order_count_90d",
    "spent_90d_fen",
    "spent_365d_fen",
    "first_order_at",
    "last_order_at",
    "first_order_day",
    "last_order_day",
    "favorite_daypart",
    "next_change_day",
];

/// The columns of [`FIGURE_COLUMNS`] that decide whether a customer's row
/// changed: all but the key and when it was computed.
pub fn compared_figures() -> impl Iterator<Item = &'static str> {
    CUSTOMER_FIGURES.into_iter().chain(ORDER_ATTRIBUTES)
}

/// The day a customer joined as phase A writes it, in a statement where
/// `q` is the customer's new figures and `a` the stored row: `computed`
/// works it out from the instant `q.joined_at` in the store's time zone.
/// A run that builds on the previous one (`reuse`) has that run's time
/// zones (a change of zone, an unfinished run or a new version make a run
/// start afresh): a stored day whose store and instant are unchanged is
/// the day it would compute, and is read instead. (On PostgreSQL the
/// conversion took a tenth of a warm full run.)
pub fn joined_day(reuse: bool, q: &str, computed: &str) -> String {
    if reuse {
        format!(
            "CASE WHEN a.store_key = {q}.store_key AND a.joined_at = {q}.joined_at \
             THEN a.joined_day ELSE {computed} END"
        )
    } else {
        computed.to_owned()
    }
}

/// The columns of [`compared_figures`] phase A compares (see
/// [`joined_day`]): with the stored day reused, `joined_day` differs only
/// where the store or the instant does, which are compared.
pub fn compared_here(reuse: bool) -> impl Iterator<Item = &'static str> {
    compared_figures().filter(move |c| !(reuse && *c == "joined_day"))
}

/// The conflict clause of phase A's upsert (both dialects): only rows whose
/// figures changed reach it, compared with the stored ones beforehand; it
/// sets every column of [`FIGURE_COLUMNS`] but the key.
pub fn upsert_figures() -> String {
    let set: Vec<String> = compared_figures()
        .chain(["computed_day", "computed_at"])
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "\nON CONFLICT (customer_id) DO UPDATE SET {}",
        set.join(", ")
    )
}

/// Batches `(lo, hi]` from their upper `bounds` in id order (phase A's,
/// which a first run's fill walks again).
pub fn batches(bounds: &[String]) -> Vec<(String, String)> {
    let lows = std::iter::once(String::new()).chain(bounds.iter().cloned());
    lows.zip(bounds.iter().cloned()).collect()
}

/// A first full run's write of the customers with ids in `(lo, hi]` from
/// `segment_fill` into the empty `customer_attributes`: each row once, with
/// its stage and tier, instead of the figures inserted and every row
/// updated again. `lo` and `hi` are the placeholders of the bounds.
pub fn fill_rows(plan: &SegmentPlan, dialect: Dialect, lo: &str, hi: &str) -> String {
    let x_figures = FIGURE_COLUMNS
        .split(',')
        .map(|c| format!("x.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let join = ordered_join(dialect);
    format!(
        r#"INSERT {or_fail}INTO customer_attributes ({FIGURE_COLUMNS}, lifecycle, value_tier)
SELECT {x_figures}, x.stage, x.tier FROM (
    SELECT a.*, {ranking}
    FROM segment_fill a
    {join} seg_today t ON t.store_key = a.store_key
    {join} seg_thr s ON s.store_key = a.store_key
    WHERE a.customer_id > {lo} AND a.customer_id <= {hi}
) x"#,
        or_fail = or_fail(dialect),
        ranking = ranking(plan),
    )
}

/// The entries into their stage and tier of the customers of `source`
/// (with columns `customer_id`, `lifecycle`, `value_tier`) that a first
/// run's fill wrote, at `now`: stages first, then tiers, as
/// [`transitions`] records them.
pub fn fill_entered(dialect: Dialect, source: &str, now: &str) -> String {
    format!(
        r#"INSERT {or_fail}INTO segment_transitions (customer_id, segment, change, at)
SELECT customer_id, 'lifecycle:' || lifecycle, 'entered', {now} FROM {source}
UNION ALL SELECT customer_id, 'tier:' || value_tier, 'entered', {now} FROM {source}"#,
        or_fail = or_fail(dialect),
    )
}

/// The `FROM` of a pass finding the members of `segments`: every customer
/// (`all`) or those of `seg_cand` (outside, the others looked up by key).
/// Most expressions read only computed attributes: the customer record is
/// joined only when one reads it. Names `customer_attributes a` and, if
/// joined, `customers c`.
pub fn members_source(dialect: Dialect, all: bool, segments: &[&CustomSegment]) -> String {
    let customer_row = segments
        .iter()
        .any(|s| s.expr.attributes().any(|a| a.reads_customer_record()));
    let join = ordered_join(dialect);
    match (all, customer_row) {
        (true, true) => "customers c JOIN customer_attributes a ON a.customer_id = c.id".to_owned(),
        (true, false) => "customer_attributes a".to_owned(),
        (false, true) => format!(
            "seg_cand x {join} customers c ON c.id = x.id \
             JOIN customer_attributes a ON a.customer_id = c.id"
        ),
        (false, false) => {
            format!("seg_cand x {join} customer_attributes a ON a.customer_id = x.id")
        }
    }
}

/// `CREATE TEMP TABLE seg_cand`: the customers whose attributes an
/// incremental run changed (recomputed figures, or a new stage or tier),
/// and those meeting `scores` (on `customer_attributes a`), if given: the
/// condition of [`candidate_ranges`] for scores, when some segment reads
/// them. Custom segments not evaluated over everyone are evaluated over
/// these: anyone else has the attributes of the previous run.
pub fn changed_customers(dialect: Dialect, scores: Option<&str>) -> String {
    let mut sql =
        "CREATE TEMP TABLE seg_cand AS SELECT id FROM seg_todo UNION SELECT id FROM seg_changes"
            .to_owned();
    if let Some(cond) = scores {
        let (source, filter) = ranged(dialect, cond);
        sql.push_str(&format!(
            "\nUNION SELECT a.customer_id FROM {source} WHERE {filter}"
        ));
    }
    sql
}

/// The rows of `customer_attributes a` meeting `cond` (a condition of
/// [`candidate_ranges`]): a `FROM` item named `a` and the filter on it. On
/// PostgreSQL a fence keeps it to one (parallel) scan with the ranges as its
/// filter: it would otherwise walk each store through an index.
fn ranged(dialect: Dialect, cond: &str) -> (String, String) {
    match dialect {
        Dialect::Sqlite => ("customer_attributes a".to_owned(), cond.to_owned()),
        Dialect::Postgres => (
            format!("(SELECT * FROM customer_attributes a WHERE {cond} OFFSET 0) a"),
            "TRUE".to_owned(),
        ),
    }
}

/// Transitions for the stage and tier changes of `seg_changes` rows with
/// ids in `(lo, hi]`; placeholders: now, lo, hi (in that order, each once).
pub fn transitions(dialect: Dialect) -> String {
    let (now, lo, hi) = match dialect {
        Dialect::Sqlite => ("?", "?", "?"),
        Dialect::Postgres => ("$1", "$2", "$3"),
    };
    format!(
        r#"INSERT {or_fail}INTO segment_transitions (customer_id, segment, change, at)
SELECT id, segment, change, at FROM (
    SELECT c.id, 'lifecycle:' || c.old_stage AS segment, 'left' AS change, c.old_stage <> '' AS keep, c.old_stage <> c.stage AS moved
      FROM seg_changes c
    UNION ALL SELECT c.id, 'lifecycle:' || c.stage, 'entered', TRUE, c.old_stage <> c.stage FROM seg_changes c
    UNION ALL SELECT c.id, 'tier:' || c.old_tier, 'left', c.old_tier <> '', c.old_tier <> c.tier FROM seg_changes c
    UNION ALL SELECT c.id, 'tier:' || c.tier, 'entered', TRUE, c.old_tier <> c.tier FROM seg_changes c
) x CROSS JOIN (SELECT {now} AS at) n
WHERE keep AND moved AND id > {lo} AND id <= {hi}"#,
        or_fail = or_fail(dialect),
    )
}

/// Apply `seg_changes` rows with ids in `(lo, hi]`; placeholders: now, lo, hi.
pub fn apply_changes(dialect: Dialect) -> String {
    let (now, lo, hi) = match dialect {
        Dialect::Sqlite => ("?", "?", "?"),
        Dialect::Postgres => ("$1", "$2", "$3"),
    };
    format!(
        r#"UPDATE {or_fail}customer_attributes
SET lifecycle = c.stage, value_tier = c.tier, computed_at = {now}
FROM seg_changes c
WHERE c.id = customer_attributes.customer_id AND c.id > {lo} AND c.id <= {hi}"#,
        or_fail = or_fail(dialect),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::{RecomputeMode, SegmentsFile};
    use chrono::TimeZone;

    fn plan() -> SegmentPlan {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
        SegmentPlan::new(
            &SegmentsFile::defaults(),
            &[],
            chrono_tz::Asia::Shanghai,
            now,
            RecomputeMode::Full,
            None,
        )
    }

    #[test]
    fn the_figure_columns_are_the_key_the_figures_and_when() {
        let listed: Vec<&str> = std::iter::once("customer_id")
            .chain(compared_figures())
            .chain(["computed_day", "computed_at"])
            .collect();
        assert_eq!(FIGURE_COLUMNS, listed.join(", "));
    }

    fn basis(today: i64) -> RankBasis {
        RankBasis {
            today,
            since: [1_000, 2_000, 3_000, 4_000],
            thresholds: [10, 20, 30, 40, 1, 2, 3, 4, 100, 200, 300, 400, 900, 500],
        }
    }

    #[test]
    fn nothing_moved_means_no_scan() {
        let bases = [StoreBases {
            store_key: "SH-001".into(),
            previous: basis(20_780),
            current: basis(20_780),
        }];
        for moved in [Moved::StageOrTier, Moved::Score] {
            assert_eq!(
                candidate_ranges(&plan(), &bases, moved, Dialect::Sqlite),
                None
            );
        }
    }

    /// `moved_ranges` finds each threshold's column by name.
    #[test]
    fn every_thresholded_column_is_a_ranged_column() {
        for (_, col) in THRESHOLD_COLUMNS {
            assert!(RANGED_COLUMNS.contains(&col), "{col}");
        }
    }

    #[test]
    fn moved_thresholds_and_days_become_ranges() {
        let mut current = basis(20_781);
        current.thresholds[1] = 18; // r2 moved down: [18, 20)
        current.thresholds[13] = 550; // t2 moved up: [500, 550)
        current.since[1] += 86_400_000;
        let bases = [
            StoreBases {
                store_key: "SH-001".into(),
                previous: basis(20_780),
                current,
            },
            StoreBases {
                store_key: "BJ-001".into(),
                previous: basis(20_780),
                current: basis(20_780),
            },
        ];
        let p = plan();
        let l = &p.rules.lifecycle;
        let day = |d: u32| i64::from(d);
        let range = |column: usize, lo: i64, hi: i64| MovedRange { column, lo, hi };
        // A store where nothing moved is not scanned. A score threshold
        // moved scores only, a tier threshold or the date stages and tiers.
        assert_eq!(
            moved_ranges(&p, &bases, Moved::Score),
            [StoreRanges {
                store_key: "SH-001".into(),
                ranges: vec![range(0, 18, 20)],
            }]
        );
        let moved = moved_ranges(&p, &bases, Moved::StageOrTier);
        assert_eq!(
            moved,
            [StoreRanges {
                store_key: "SH-001".into(),
                ranges: vec![
                    range(3, 500, 550),
                    range(
                        0,
                        20_780 - day(l.active_within_days),
                        20_781 - day(l.active_within_days)
                    ),
                    range(
                        0,
                        20_780 - day(l.at_risk_within_days),
                        20_781 - day(l.at_risk_within_days)
                    ),
                    range(
                        0,
                        20_780 - day(l.lapsed_within_days),
                        20_781 - day(l.lapsed_within_days)
                    ),
                    range(4, 2_000, 2_000 + 86_400_000),
                ],
            }]
        );
        // SQLite: one parameter, the ranges themselves.
        let (sql, params) =
            candidate_ranges(&p, &bases, Moved::StageOrTier, Dialect::Sqlite).unwrap();
        assert_eq!(
            sql,
            "seg_candidate(?, a.store_key, a.last_order_day, a.order_count, a.total_spent_fen, \
             a.spent_365d_fen, a.joined_at)"
        );
        let [SqlParam::Text(spec)] = params.as_slice() else {
            panic!("{params:?}")
        };
        assert_eq!(
            serde_json::from_str::<Vec<StoreRanges>>(spec).unwrap(),
            moved
        );
        // PostgreSQL: the store key, then each range's bounds in the order
        // they appear, numbered; instants compared as instants.
        let (pg, pg_params) =
            candidate_ranges(&p, &bases, Moved::StageOrTier, Dialect::Postgres).unwrap();
        let mut expected = vec![SqlParam::Text("SH-001".into())];
        for r in &moved[0].ranges {
            expected.extend([SqlParam::Int(r.lo), SqlParam::Int(r.hi)]);
        }
        assert_eq!(pg_params, expected);
        assert!(pg.starts_with(
            "(a.store_key = $1 AND ((a.spent_365d_fen >= $2 AND a.spent_365d_fen < $3)"
        ));
        assert!(
            pg.contains("a.joined_at >= 'epoch'::timestamptz + $10 * interval '1 millisecond'")
        );
    }
}
