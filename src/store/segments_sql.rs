//! SQL of the segments job's ranking phase, shared by both backends (they
//! differ only in how a boolean becomes 0 or 1).
//!
//! Quintile scores are ranks within the store: a customer whose value has
//! `less` customers strictly below it, among `total`, scores
//! `1 + floor(5 * less / total)` — `RANK()` semantics, so ties share a score.
//! Since `less` only grows with the value, "score > k" is "value >= u_k" for a
//! threshold `u_k` per store. The thresholds come from a window over each
//! store's histogram of values, kept in `segment_histogram` (a few thousand
//! rows: a full run rebuilds it, an incremental run adds the changes of the
//! customers it recomputes), instead of a window sort of every customer; one
//! pass over the customers (or the candidates) then finds those whose score,
//! stage or tier changed.

use crate::expr::Dialect;
use crate::segments::plan::SegmentPlan;

/// Stands for "no threshold": no value reaches it.
const UNREACHABLE: i64 = 1 << 62;

fn as_int(dialect: Dialect, cond: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("({cond})"),
        Dialect::Postgres => format!("({cond})::int"),
    }
}

/// `CREATE TEMP TABLE seg_thr`: one row per store key with the score
/// thresholds `r1..r4`, `f1..f4`, `m1..m4` and the tier thresholds `t1`
/// (vip) and `t2` (core), from `segment_histogram` (a few thousand rows).
pub fn thresholds(plan: &SegmentPlan) -> String {
    let tiers = &plan.rules.tiers;
    let mut cols = Vec::new();
    for m in ["r", "f", "m"] {
        for k in 1..=4 {
            cols.push(format!(
                "COALESCE(MAX(CASE WHEN q.metric = '{m}' AND q.k = {k} THEN q.v END), {UNREACHABLE}) AS {m}{k}"
            ));
        }
    }
    for k in 1..=2 {
        cols.push(format!(
            "COALESCE(MAX(CASE WHEN q.metric = 't' AND q.k = {k} THEN q.v END), {UNREACHABLE}) AS t{k}"
        ));
    }
    format!(
        r#"CREATE TEMP TABLE seg_thr AS
WITH hist AS (
    SELECT metric, store_key, value AS v, n FROM segment_histogram
),
cum AS (
    SELECT metric, store_key, v, n,
           SUM(n) OVER (PARTITION BY metric, store_key ORDER BY v) - n AS less,
           SUM(n) OVER (PARTITION BY metric, store_key) AS total
    FROM hist
),
q AS (
    SELECT c.metric, c.store_key, k.k, MIN(c.v) AS v
    FROM cum c JOIN (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) k
      ON c.metric <> 't' AND 5 * c.less >= k.k * c.total
    GROUP BY c.metric, c.store_key, k.k
    UNION ALL
    SELECT c.metric, c.store_key, k.k, MIN(c.v)
    FROM cum c JOIN (SELECT 1 AS k, {vip} AS p UNION ALL SELECT 2, {vip_core}) k
      ON c.metric = 't' AND (c.total - c.less - c.n) * 100 < k.p * c.total
    GROUP BY c.metric, c.store_key, k.k
)
SELECT t.store_key, {cols}
FROM seg_today t LEFT JOIN q ON q.store_key = t.store_key
GROUP BY t.store_key"#,
        vip = tiers.vip_top_percent,
        vip_core = tiers.vip_top_percent + tiers.core_next_percent,
        cols = cols.join(",\n    "),
    )
}

/// Statements that rebuild `segment_histogram` from every customer's
/// attributes (after a full run's order figures).
pub fn histogram_rebuild(dialect: Dialect) -> [String; 2] {
    [
        "DELETE FROM segment_histogram".to_owned(),
        format!(
            "INSERT INTO segment_histogram (metric, store_key, value, n)\nSELECT metric, store_key, v, n FROM (\n{}\n) h",
            histograms(dialect)
        ),
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
/// `(lo, hi]` as they are now, with sign `d`; placeholders: lo, hi.
pub fn histogram_rows(dialect: Dialect, d: i32) -> String {
    let (lo, hi) = match dialect {
        Dialect::Sqlite => ("?", "?"),
        Dialect::Postgres => ("$1", "$2"),
    };
    format!(
        "INSERT INTO seg_hist_rows SELECT a.store_key, a.last_order_day, a.order_count, \
         a.total_spent_fen, a.spent_365d_fen, {d} FROM seg_todo x \
         {join} customer_attributes a ON a.customer_id = x.id WHERE x.id > {lo} AND x.id <= {hi}",
        // SQLite's CROSS JOIN keeps the (few) batch ids as the outer loop.
        join = match dialect {
            Dialect::Sqlite => "CROSS JOIN",
            Dialect::Postgres => "JOIN",
        },
    )
}

/// Statements that add the changes recorded in `seg_hist_rows` to
/// `segment_histogram` and drop the values nobody has any more. The same
/// filters as [`histograms`]: recency, frequency and money among customers
/// who ordered, 365-day spend among all.
pub fn histogram_apply() -> [&'static str; 2] {
    [
        r#"INSERT INTO segment_histogram (metric, store_key, value, n)
SELECT metric, store_key, v, sum(d) FROM (
    SELECT 'r' AS metric, store_key, last_order_day AS v, d FROM seg_hist_rows WHERE last_order_day IS NOT NULL
    UNION ALL SELECT 'f', store_key, order_count, d FROM seg_hist_rows WHERE order_count > 0
    UNION ALL SELECT 'm', store_key, total_spent_fen, d FROM seg_hist_rows WHERE order_count > 0
    UNION ALL SELECT 't', store_key, spent_365d_fen, d FROM seg_hist_rows
) x
GROUP BY metric, store_key, v HAVING sum(d) <> 0
ON CONFLICT (metric, store_key, value) DO UPDATE SET n = segment_histogram.n + excluded.n"#,
        "DELETE FROM segment_histogram WHERE n = 0",
    ]
}

/// Each store's histogram of recency (last order day), frequency and money
/// among customers who ordered, and of 365-day spend among all: rows of
/// (metric, store_key, v, n). SQLite reads each from its index; PostgreSQL
/// hashes all four in one pass with grouping sets.
fn histograms(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            r#"    SELECT 'r' AS metric, store_key, last_order_day AS v, count(*) AS n
      FROM customer_attributes WHERE last_order_day IS NOT NULL GROUP BY store_key, last_order_day
    UNION ALL
    SELECT 'f', store_key, order_count, count(*)
      FROM customer_attributes WHERE order_count > 0 GROUP BY store_key, order_count
    UNION ALL
    SELECT 'm', store_key, total_spent_fen, count(*)
      FROM customer_attributes WHERE order_count > 0 GROUP BY store_key, total_spent_fen
    UNION ALL
    SELECT 't', store_key, spent_365d_fen, count(*)
      FROM customer_attributes GROUP BY store_key, spent_365d_fen"#
        }
        Dialect::Postgres => {
            r#"    SELECT metric, store_key, v, n FROM (
        SELECT store_key,
            CASE WHEN GROUPING(last_order_day) = 0 THEN 'r'
                 WHEN GROUPING(order_count) = 0 THEN 'f'
                 WHEN GROUPING(total_spent_fen) = 0 THEN 'm'
                 ELSE 't' END AS metric,
            COALESCE(last_order_day::bigint, order_count::bigint, total_spent_fen, spent_365d_fen) AS v,
            buyer, count(*) AS n
        FROM (SELECT store_key, last_order_day, order_count, total_spent_fen, spent_365d_fen,
                     order_count > 0 AS buyer FROM customer_attributes) c
        GROUP BY GROUPING SETS ((store_key, last_order_day), (store_key, order_count),
                                (store_key, total_spent_fen, buyer), (store_key, spent_365d_fen))
    ) g
    WHERE (metric = 'r' AND v IS NOT NULL) OR (metric = 'f' AND v > 0)
       OR (metric = 'm' AND buyer) OR metric = 't'"#
        }
    }
}

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

/// Statements that fill `seg_cand` (an empty table of ids) with every
/// customer an incremental run must re-rank: those recomputed from their
/// orders (`seg_todo`), those whose value lies between a threshold's old and
/// new position, and those whose stage may have moved with the date since the
/// previous run (`segment_run_state`). Anyone else keeps score, stage and tier.
pub fn candidates(plan: &SegmentPlan, dialect: Dialect) -> Vec<String> {
    let (insert, tail, least, greatest) = match dialect {
        Dialect::Sqlite => ("INSERT OR IGNORE INTO seg_cand (id)", "", "min", "max"),
        Dialect::Postgres => (
            "INSERT INTO seg_cand (id)",
            " ON CONFLICT DO NOTHING",
            "LEAST",
            "GREATEST",
        ),
    };
    let mut out = vec![format!("{insert} SELECT id FROM seg_todo{tail}")];
    for (thr, col) in THRESHOLD_COLUMNS {
        out.push(format!(
            "{insert} SELECT a.customer_id FROM segment_run_state p \
             JOIN seg_thr s ON s.store_key = p.store_key AND s.{thr} <> p.{thr} \
             JOIN customer_attributes a ON a.store_key = p.store_key \
              AND a.{col} >= {least}(p.{thr}, s.{thr}) AND a.{col} < {greatest}(p.{thr}, s.{thr}){tail}"
        ));
    }
    let l = &plan.rules.lifecycle;
    for days in [
        l.active_within_days,
        l.at_risk_within_days,
        l.lapsed_within_days,
    ] {
        out.push(format!(
            "{insert} SELECT a.customer_id FROM segment_run_state p \
             JOIN seg_today t ON t.store_key = p.store_key AND t.today <> p.today \
             JOIN customer_attributes a ON a.store_key = p.store_key \
              AND a.last_order_day >= p.today - {days} AND a.last_order_day < t.today - {days}{tail}"
        ));
    }
    for since in ["new_since", "active_since", "at_risk_since", "lapsed_since"] {
        out.push(format!(
            "{insert} SELECT a.customer_id FROM segment_run_state p \
             JOIN seg_today t ON t.store_key = p.store_key AND t.{since} <> p.{since} \
             JOIN customer_attributes a ON a.store_key = p.store_key \
              AND a.joined_at >= p.{since} AND a.joined_at < t.{since}{tail}"
        ));
    }
    out
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

/// `CREATE TEMP TABLE seg_changes`: customers whose scores, stage or tier
/// differ from what is stored, with old and new values; only among
/// `seg_cand` when `restricted`.
pub fn changes(plan: &SegmentPlan, dialect: Dialect, restricted: bool) -> String {
    let l = &plan.rules.lifecycle;
    let score = |col: &str, m: &str| {
        let steps: Vec<String> = (1..=4)
            .map(|k| as_int(dialect, &format!("a.{col} >= s.{m}{k}")))
            .collect();
        format!(
            "CASE WHEN a.order_count > 0 THEN 1 + {} END",
            steps.join(" + ")
        )
    };
    let within = |days: u32, since: &str| {
        format!(
            "((a.order_count > 0 AND a.last_order_day >= t.today - {days}) \
             OR (a.order_count = 0 AND a.joined_at >= t.{since}))"
        )
    };
    format!(
        r#"CREATE TEMP TABLE seg_changes AS
SELECT id, old_stage, stage, old_tier, tier, r, f, m FROM (
    SELECT a.customer_id AS id, a.lifecycle AS old_stage, a.value_tier AS old_tier,
        a.r_score AS old_r, a.f_score AS old_f, a.m_score AS old_m,
        {r} AS r, {f} AS f, {m} AS m,
        CASE WHEN a.spent_365d_fen > 0 AND a.spent_365d_fen >= s.t1 THEN 'vip'
             WHEN a.spent_365d_fen > 0 AND a.spent_365d_fen >= s.t2 THEN 'core'
             ELSE 'regular' END AS tier,
        CASE WHEN a.joined_at >= t.new_since AND a.order_count <= {new_max} THEN 'new'
             WHEN {active} THEN 'active'
             WHEN {at_risk} THEN 'at_risk'
             WHEN {lapsed} THEN 'lapsed'
             ELSE 'churned' END AS stage
    FROM {source}
    JOIN seg_today t ON t.store_key = a.store_key
    JOIN seg_thr s ON s.store_key = a.store_key
) x
WHERE old_r IS DISTINCT FROM r OR old_f IS DISTINCT FROM f OR old_m IS DISTINCT FROM m
   OR old_stage <> stage OR old_tier <> tier"#,
        // SQLite's CROSS JOIN keeps the (few) candidates as the outer loop.
        source = match (restricted, dialect) {
            (true, Dialect::Sqlite) => {
                "seg_cand x0 CROSS JOIN customer_attributes a ON a.customer_id = x0.id"
            }
            (true, Dialect::Postgres) => {
                "seg_cand x0 JOIN customer_attributes a ON a.customer_id = x0.id"
            }
            (false, _) => "customer_attributes a",
        },
        r = score("last_order_day", "r"),
        f = score("order_count", "f"),
        m = score("total_spent_fen", "m"),
        new_max = l.new_max_orders,
        active = within(l.active_within_days, "active_since"),
        at_risk = within(l.at_risk_within_days, "at_risk_since"),
        lapsed = within(l.lapsed_within_days, "lapsed_since"),
    )
    .replace(
        " IS DISTINCT FROM ",
        match dialect {
            Dialect::Sqlite => " IS NOT ",
            Dialect::Postgres => " IS DISTINCT FROM ",
        },
    )
}

/// Transitions for the stage and tier changes of `seg_changes` rows with
/// ids in `(lo, hi]`; placeholders: now, lo, hi (in that order, each once).
pub fn transitions(dialect: Dialect) -> String {
    let (now, lo, hi) = match dialect {
        Dialect::Sqlite => ("?", "?", "?"),
        Dialect::Postgres => ("$1", "$2", "$3"),
    };
    format!(
        r#"INSERT INTO segment_transitions (customer_id, segment, change, at)
SELECT id, segment, change, at FROM (
    SELECT c.id, 'lifecycle:' || c.old_stage AS segment, 'left' AS change, c.old_stage <> '' AS keep, c.old_stage <> c.stage AS moved
      FROM seg_changes c
    UNION ALL SELECT c.id, 'lifecycle:' || c.stage, 'entered', TRUE, c.old_stage <> c.stage FROM seg_changes c
    UNION ALL SELECT c.id, 'tier:' || c.old_tier, 'left', c.old_tier <> '', c.old_tier <> c.tier FROM seg_changes c
    UNION ALL SELECT c.id, 'tier:' || c.tier, 'entered', TRUE, c.old_tier <> c.tier FROM seg_changes c
) x CROSS JOIN (SELECT {now} AS at) n
WHERE keep AND moved AND id > {lo} AND id <= {hi}"#
    )
}

/// Apply `seg_changes` rows with ids in `(lo, hi]`; placeholders: now, lo, hi.
pub fn apply_changes(dialect: Dialect) -> String {
    let (now, lo, hi, rfm) = match dialect {
        Dialect::Sqlite => ("?", "?", "?", "c.r || c.f || c.m"),
        Dialect::Postgres => ("$1", "$2", "$3", "c.r::text || c.f::text || c.m::text"),
    };
    format!(
        r#"UPDATE customer_attributes
SET r_score = c.r, f_score = c.f, m_score = c.m,
    rfm = CASE WHEN c.r IS NULL THEN NULL ELSE {rfm} END,
    lifecycle = c.stage, value_tier = c.tier, computed_at = {now}
FROM seg_changes c
WHERE c.id = customer_attributes.customer_id AND c.id > {lo} AND c.id <= {hi}"#
    )
}
