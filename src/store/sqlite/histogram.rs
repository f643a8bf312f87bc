//! `seg_histogram(...)`: every store's histogram of the four ranked values,
//! counted in one pass by one SQLite aggregate.
//!
//! A full run rebuilds `segment_histogram` from every customer's figures:
//! recency (last order day), frequency (order count) and money (total
//! spent) among customers who ordered, and 365-day spend among all. SQLite
//! groups by sorting; upserting four counts per customer into a keyed table
//! instead took about 3 s on a million customers, a quarter of a warm full
//! run. This aggregate counts into a hash map and returns the histogram as a
//! JSON array of `[metric, store_key, value, n]`, ordered by metric, store
//! key and value, which the statement spreads into rows with `json_each`
//! (see `segments_sql::histogram_by_aggregate`).
//!
//! The map holds one entry per distinct value of each store: a few tens of
//! thousands on the demo shop, but spends exact to the fen can make one per
//! customer. Past [`MAX_ENTRIES`] the aggregate gives up, frees its map and
//! returns NULL, and the caller counts the slow way, in a table on disk, so
//! memory stays bounded whatever the data.
//!
//! Arguments, per customer: `store_key, last_order_day, order_count,
//! total_spent_fen, spent_365d_fen` (`last_order_day` NULL for a customer
//! who never ordered). A NULL or non-text store key or a NULL count is an
//! error: the columns are NOT NULL, so it means the statement is wrong.

use std::collections::HashMap;
use std::ffi::{CStr, c_int};

use libsqlite3_sys as ffi;

use super::functions::{self, Callbacks};

/// The SQL name.
const NAME: &CStr = c"seg_histogram";
const ARGS: usize = 5;

/// One customer's values as the histogram counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranked {
    pub last_order_day: Option<i64>,
    pub order_count: i64,
    pub total_spent_fen: i64,
    pub spent_365d_fen: i64,
}

/// Distinct (metric, store, value) entries the aggregate counts at most:
/// about 20 MB at its peak (map, sorted copy and text).
pub const MAX_ENTRIES: usize = 250_000;

/// Counts per (metric, store key, value); store keys are numbered in the
/// order they are met.
#[derive(Debug)]
pub struct Histogram {
    stores: Vec<String>,
    /// Each store key's number: a chain may have hundreds of stores, and
    /// every customer looks its key up.
    store_numbers: HashMap<Box<[u8]>, u32>,
    counts: HashMap<(u8, u32, i64), i64>,
    limit: usize,
    gave_up: bool,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::with_limit(MAX_ENTRIES)
    }
}

impl Histogram {
    /// A histogram that gives up past `limit` distinct entries.
    pub fn with_limit(limit: usize) -> Histogram {
        Histogram {
            stores: Vec::new(),
            store_numbers: HashMap::new(),
            counts: HashMap::new(),
            limit,
            gave_up: false,
        }
    }

    /// Count one customer of store `store_key`.
    pub fn push(&mut self, store_key: &[u8], v: Ranked) {
        if self.gave_up {
            return;
        }
        let store = match self.store_numbers.get(store_key) {
            Some(&n) => n,
            None => {
                let n = u32::try_from(self.stores.len()).unwrap_or(u32::MAX);
                self.stores
                    .push(String::from_utf8_lossy(store_key).into_owned());
                self.store_numbers.insert(store_key.into(), n);
                n
            }
        };
        let mut count = |metric: u8, value: i64| {
            *self.counts.entry((metric, store, value)).or_insert(0) += 1;
        };
        if let Some(day) = v.last_order_day {
            count(b'r', day);
        }
        if v.order_count > 0 {
            count(b'f', v.order_count);
            count(b'm', v.total_spent_fen);
        }
        count(b't', v.spent_365d_fen);
        if self.counts.len() > self.limit {
            self.gave_up = true;
            self.counts = HashMap::new();
        }
    }

    /// The result: `[[metric, store_key, value, n], …]` in order; `None`
    /// once past the limit.
    pub fn to_json(&self) -> Option<String> {
        if self.gave_up {
            return None;
        }
        let mut rows: Vec<(&str, &str, i64, i64)> = self
            .counts
            .iter()
            .map(|(&(metric, store, value), &n)| {
                let metric = match metric {
                    b'r' => "r",
                    b'f' => "f",
                    b'm' => "m",
                    _ => "t",
                };
                let store = self.stores.get(store as usize).map_or("", String::as_str);
                (metric, store, value, n)
            })
            .collect();
        rows.sort_unstable();
        Some(serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned()))
    }
}

/// Register `seg_histogram` on a connection.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the
/// call (sqlx's `LockedSqliteHandle` guarantees both).
pub unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    // SAFETY: as the caller promises; the callbacks never unwind.
    unsafe { functions::register(db, NAME, ARGS as c_int, Callbacks::Aggregate(step, finish)) }
}

unsafe extern "C" fn step(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: these are this call's arguments.
    let Some(args) = (unsafe { functions::arguments(argc, argv, ARGS) }) else {
        return;
    };
    // SAFETY: the values are arguments of this call.
    let int = |i: usize| unsafe { functions::int(args[i]) };
    // SAFETY: as above; the key's bytes are not read again in another way.
    let store_key = unsafe { functions::text(args[0]) };
    let (Some(store_key), Some(order_count), Some(total_spent_fen), Some(spent_365d_fen)) =
        (store_key, int(2), int(3), int(4))
    else {
        // SAFETY: `ctx` is this call's context.
        unsafe { functions::error(ctx, c"seg_histogram: a store key or a count is NULL") };
        return;
    };
    // The group's state is a pointer to its histogram, null until the
    // first row (all-zero bytes).
    // SAFETY: `ctx` is this call's context.
    let Some(slot) = (unsafe { functions::aggregate_state::<*mut Histogram>(ctx, true) }) else {
        // SAFETY: as above.
        unsafe { ffi::sqlite3_result_error_nomem(ctx) };
        return;
    };
    if slot.is_null() {
        // Freed in `finish`, which SQLite calls once for every group that
        // stepped, also when the statement stops early.
        *slot = Box::into_raw(Box::default());
    }
    // SAFETY: a non-null slot holds the box made above, which only this
    // group's calls use, one at a time.
    let histogram = unsafe { &mut **slot };
    histogram.push(
        store_key,
        Ranked {
            last_order_day: int(1),
            order_count,
            total_spent_fen,
            spent_365d_fen,
        },
    );
}

unsafe extern "C" fn finish(ctx: *mut ffi::sqlite3_context) {
    // SAFETY: `ctx` is this call's context; a group that never stepped
    // gets no allocation.
    let boxed = unsafe { functions::aggregate_state::<*mut Histogram>(ctx, false) }
        .filter(|p| !p.is_null())
        .map(|p| {
            let raw = std::mem::replace(p, std::ptr::null_mut());
            // SAFETY: the pointer came from Box::into_raw in `step` and is
            // taken out of the slot here, once.
            unsafe { Box::from_raw(raw) }
        });
    let json = match boxed {
        None => "[]".to_owned(),
        Some(h) => match h.to_json() {
            Some(json) => json,
            None => {
                // SAFETY: `ctx` is this call's context.
                unsafe { ffi::sqlite3_result_null(ctx) };
                return;
            }
        },
    };
    let Ok(len) = c_int::try_from(json.len()) else {
        // SAFETY: `ctx` is this call's context.
        unsafe { ffi::sqlite3_result_error_toobig(ctx) };
        return;
    };
    // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes before `json`
    // is dropped.
    unsafe {
        ffi::sqlite3_result_text(ctx, json.as_ptr().cast(), len, ffi::SQLITE_TRANSIENT());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(last_order_day: Option<i64>, n: i64, spent: i64, s365: i64) -> Ranked {
        Ranked {
            last_order_day,
            order_count: n,
            total_spent_fen: spent,
            spent_365d_fen: s365,
        }
    }

    #[test]
    fn buyers_count_in_every_metric_others_in_the_yearly_spend_only() {
        let mut h = Histogram::default();
        h.push(b"SH-001", ranked(Some(20_780), 3, 4_500, 4_500));
        h.push(b"SH-001", ranked(Some(20_780), 1, 900, 0));
        h.push(b"SH-001", ranked(None, 0, 0, 0));
        h.push(b"", ranked(None, 0, -300, -300));
        h.push(b"BJ-001", ranked(Some(20_700), 3, 4_500, 4_500));
        assert_eq!(
            h.to_json().unwrap(),
            r#"[["f","BJ-001",3,1],["f","SH-001",1,1],["f","SH-001",3,1],["m","BJ-001",4500,1],["m","SH-001",900,1],["m","SH-001",4500,1],["r","BJ-001",20700,1],["r","SH-001",20780,2],["t","",-300,1],["t","BJ-001",4500,1],["t","SH-001",0,2],["t","SH-001",4500,1]]"#
        );
    }

    #[test]
    fn a_store_key_is_written_as_json_text() {
        let mut h = Histogram::default();
        h.push(br#"A"B\C"#, ranked(None, 0, 0, 7));
        assert_eq!(h.to_json().unwrap(), r#"[["t","A\"B\\C",7,1]]"#);
    }

    #[test]
    fn past_its_limit_the_histogram_gives_up_and_lets_go_of_its_counts() {
        let mut h = Histogram::with_limit(5);
        // f, m and t: three entries, then two more (same order count).
        h.push(b"S", ranked(None, 1, 10, 10));
        h.push(b"S", ranked(None, 1, 11, 11));
        assert!(h.to_json().is_some());
        h.push(b"S", ranked(None, 1, 12, 12));
        assert!(h.to_json().is_none());
        assert!(h.counts.is_empty());
        h.push(b"S", ranked(None, 1, 10, 10));
        assert!(h.to_json().is_none(), "it does not start again");
    }

    /// Through SQLite: the rows spread with json_each, an empty table, and
    /// a NULL where the columns forbid one.
    #[tokio::test]
    async fn the_registered_aggregate_runs_in_sql() {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        {
            let mut handle = conn.lock_handle().await.unwrap();
            // SAFETY: the handle is open and locked for this call.
            unsafe { register(handle.as_raw_handle().as_ptr()) }.unwrap();
        }
        for sql in [
            "CREATE TABLE a (store_key TEXT, last_order_day INTEGER, order_count INTEGER, \
             total_spent_fen INTEGER, spent_365d_fen INTEGER)",
            "INSERT INTO a VALUES ('SH-001', 100, 2, 50, 50), ('SH-001', 100, 1, 20, 0), \
             ('SH-001', NULL, 0, 0, 0)",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        let spread = "SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3 \
                      FROM json_each((SELECT seg_histogram(store_key, last_order_day, order_count, \
                      total_spent_fen, spent_365d_fen) FROM a)) e";
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as(spread).fetch_all(&mut conn).await.unwrap();
        let want = [
            ("f", 1, 1),
            ("f", 2, 1),
            ("m", 20, 1),
            ("m", 50, 1),
            ("r", 100, 2),
            ("t", 0, 2),
            ("t", 50, 1),
        ];
        assert_eq!(
            rows,
            want.iter()
                .map(|(m, v, n)| ((*m).to_owned(), "SH-001".to_owned(), *v, *n))
                .collect::<Vec<_>>()
        );
        sqlx::query("DELETE FROM a")
            .execute(&mut conn)
            .await
            .unwrap();
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as(spread).fetch_all(&mut conn).await.unwrap();
        assert!(rows.is_empty());
        sqlx::query("INSERT INTO a VALUES (NULL, 1, 1, 1, 1)")
            .execute(&mut conn)
            .await
            .unwrap();
        let refused = sqlx::query_as::<_, (String, String, i64, i64)>(spread)
            .fetch_all(&mut conn)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("NULL"), "{refused}");
    }
}
