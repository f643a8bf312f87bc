//! `seg_candidate(spec, store_key, last_order_day, order_count,
//! total_spent_fen, spent_365d_fen, joined_at)`: whether a customer's value
//! lies in one of the ranges a threshold or the date moved over since the
//! previous run, for its store key (see `segments_sql::moved_ranges`).
//!
//! An incremental run scans every row of `customer_attributes` for these
//! customers. Written as comparisons in SQL (a store key test, then two
//! comparisons per range), the condition took about 0.4 µs a row, four
//! fifths of the scan; this function looks the store key up once and tests
//! the row's values in Rust. `spec` is the ranges as JSON, bound as one
//! parameter: it is parsed at the statement's first row and kept by SQLite
//! beside the statement (`sqlite3_set_auxdata`) for the rows after it.

use std::collections::HashMap;
use std::ffi::{CStr, c_int, c_void};

use libsqlite3_sys as ffi;

use super::functions::{self, Callbacks};
use crate::store::segments_sql::{RANGED_COLUMNS, StoreRanges};

const NAME: &CStr = c"seg_candidate";
const ARGS: usize = 2 + RANGED_COLUMNS.len();

/// The ranges of each store key, by column.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Matcher {
    stores: HashMap<Vec<u8>, [Vec<(i64, i64)>; RANGED_COLUMNS.len()]>,
}

impl Matcher {
    /// From the JSON of a list of [`StoreRanges`].
    pub fn parse(spec: &[u8]) -> Result<Matcher, &'static CStr> {
        let stores: Vec<StoreRanges> = serde_json::from_slice(spec)
            .map_err(|_| c"seg_candidate: the ranges are not a list of store ranges")?;
        let mut matcher = Matcher::default();
        for store in stores {
            let columns = matcher
                .stores
                .entry(store.store_key.into_bytes())
                .or_default();
            for r in store.ranges {
                let Some(ranges) = columns.get_mut(r.column) else {
                    return Err(c"seg_candidate: a range names an unknown column");
                };
                ranges.push((r.lo, r.hi));
            }
        }
        Ok(matcher)
    }

    /// Whether one of `values` (in [`RANGED_COLUMNS`] order; `None` for
    /// NULL, which no range holds) lies in a range of `store_key`.
    pub fn matches(&self, store_key: &[u8], values: [Option<i64>; RANGED_COLUMNS.len()]) -> bool {
        let Some(columns) = self.stores.get(store_key) else {
            return false;
        };
        columns
            .iter()
            .zip(values)
            .any(|(ranges, v)| v.is_some_and(|v| ranges.iter().any(|(lo, hi)| *lo <= v && v < *hi)))
    }
}

/// Register `seg_candidate` on a connection.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the
/// call (sqlx's `LockedSqliteHandle` guarantees both).
pub unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    // SAFETY: as the caller promises; the callback never unwinds.
    unsafe { functions::register(db, NAME, ARGS as c_int, Callbacks::Scalar(candidate_func)) }
}

/// Frees a [`Matcher`] that SQLite kept with [`ffi::sqlite3_set_auxdata`].
unsafe extern "C" fn drop_matcher(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: the pointer is one `Box::into_raw` gave, and SQLite calls
        // this exactly once for it.
        drop(unsafe { Box::from_raw(p.cast::<Matcher>()) });
    }
}

unsafe extern "C" fn candidate_func(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: these are this call's arguments.
    let Some(args) = (unsafe { functions::arguments(argc, argv, ARGS) }) else {
        return;
    };
    let mut values = [None; RANGED_COLUMNS.len()];
    for (v, arg) in values.iter_mut().zip(&args[2..]) {
        // SAFETY: the values are arguments of this call.
        *v = unsafe { functions::int(*arg) };
    }
    // SAFETY: as above; the key is read after the numbers, whose reading
    // leaves it alone, and is used before the call returns.
    let store_key = unsafe { functions::text(args[1]) }.unwrap_or_default();
    // SAFETY: `ctx` is this call's context; SQLite keeps the pointer only
    // while argument 0 stays the same (it is a bound parameter).
    let kept = unsafe { ffi::sqlite3_get_auxdata(ctx, 0) }.cast::<Matcher>();
    // SAFETY: a kept pointer is a `Matcher` this function handed over and
    // SQLite has not freed yet (it frees it only after this statement's
    // use of the argument ends).
    let outcome = match unsafe { kept.as_ref() } {
        Some(matcher) => Ok(matcher.matches(store_key, values)),
        None => {
            // SAFETY: argument 0 of this call.
            let spec = unsafe { functions::text(args[0]) }.unwrap_or_default();
            Matcher::parse(spec).map(|matcher| {
                let found = matcher.matches(store_key, values);
                let p = Box::into_raw(Box::new(matcher)).cast::<c_void>();
                // SAFETY: SQLite takes the pointer and calls `drop_matcher`
                // on it exactly once (at once if it cannot keep it); it is
                // not used here afterwards.
                unsafe { ffi::sqlite3_set_auxdata(ctx, 0, p, Some(drop_matcher)) };
                found
            })
        }
    };
    // SAFETY: `ctx` is this call's context.
    unsafe {
        match outcome {
            Ok(found) => ffi::sqlite3_result_int(ctx, c_int::from(found)),
            Err(message) => functions::error(ctx, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::segments_sql::MovedRange;
    use sqlx::{Connection, SqliteConnection};

    fn spec() -> String {
        serde_json::to_string(&[
            StoreRanges {
                store_key: "SH-001".into(),
                ranges: vec![
                    MovedRange {
                        column: 0,
                        lo: 100,
                        hi: 102,
                    },
                    MovedRange {
                        column: 3,
                        lo: 5_000,
                        hi: 5_001,
                    },
                ],
            },
            StoreRanges {
                store_key: String::new(),
                ranges: vec![MovedRange {
                    column: 4,
                    lo: -10,
                    hi: 0,
                }],
            },
        ])
        .unwrap()
    }

    #[test]
    fn ranges_are_half_open_and_per_store_and_column() {
        let m = Matcher::parse(spec().as_bytes()).unwrap();
        let day = |d: i64| [Some(d), None, None, None, None];
        assert!(!m.matches(b"SH-001", day(99)));
        assert!(m.matches(b"SH-001", day(100)));
        assert!(m.matches(b"SH-001", day(101)));
        assert!(!m.matches(b"SH-001", day(102)));
        // Another column's range, another store's, a store without any.
        assert!(m.matches(b"SH-001", [None, None, None, Some(5_000), None]));
        assert!(!m.matches(b"SH-001", [None, Some(5_000), Some(5_000), None, None]));
        assert!(!m.matches(b"SH-001", [None, None, None, None, Some(-5)]));
        assert!(m.matches(b"", [None, None, None, None, Some(-5)]));
        assert!(!m.matches(b"BJ-001", day(100)));
        assert!(!m.matches(b"", day(100)));
    }

    #[test]
    fn a_spec_that_is_not_store_ranges_is_refused() {
        assert!(Matcher::parse(b"{}").is_err());
        assert!(
            Matcher::parse(br#"[{"store_key":"A","ranges":[{"column":5,"lo":1,"hi":2}]}]"#)
                .is_err()
        );
        assert_eq!(Matcher::parse(b"[]").unwrap(), Matcher::default());
    }

    /// In SQL, on every row of a table: the parsed ranges kept from the
    /// first row serve the others; NULLs match nothing; a bad spec is an
    /// error of the statement.
    #[tokio::test]
    async fn the_function_selects_the_rows_in_a_range() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        {
            let mut handle = conn.lock_handle().await.unwrap();
            // SAFETY: the locked handle is open and used by nobody else.
            unsafe { register(handle.as_raw_handle().as_ptr()) }.unwrap();
        }
        sqlx::query(
            "CREATE TABLE a (id INTEGER, store_key TEXT, last_order_day INTEGER, order_count INTEGER, \
             total_spent_fen INTEGER, spent_365d_fen INTEGER, joined_at INTEGER)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO a VALUES (1, 'SH-001', 100, 1, 1, 1, 1), (2, 'SH-001', 99, 1, 1, 5000, 1), \
             (3, 'SH-001', NULL, 0, 0, 0, 1), (4, '', NULL, 0, 0, 0, -1), (5, 'BJ-001', 100, 1, 1, 5000, -1), \
             (6, 'SH-001', 102, 1, 1, 4999, 1)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let sql = "SELECT id FROM a WHERE seg_candidate(?, store_key, last_order_day, order_count, \
                   total_spent_fen, spent_365d_fen, joined_at) ORDER BY id";
        let ids: Vec<i64> = sqlx::query_scalar(sql)
            .bind(spec())
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(ids, [1, 2, 4]);
        let err = sqlx::query_scalar::<_, i64>(sql)
            .bind("not json")
            .fetch_all(&mut conn)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("seg_candidate"), "{err}");
    }
}
