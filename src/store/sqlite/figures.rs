//! `seg_figures(...)`: the order figures of one customer as one SQLite
//! aggregate.
//!
//! Phase A of the segments job gathers fifteen figures per customer from
//! their orders (counts, sums and first/last days, each over its own window).
//! Written as fifteen filtered aggregates, SQLite evaluates some thirty-five
//! comparisons per order: over ten million orders that was most of a full
//! run. This aggregate reads each order once and returns the figures as a
//! JSON array, which the statement takes apart per customer (see
//! `phase_a_sql`). PostgreSQL keeps the filtered aggregates, which it
//! evaluates fast; the store contract tests hold both to the same results.
//!
//! Arguments, per order row: `amount_fen, ordered_at, local_date,
//! local_minute` (all NULL for a customer without orders, under the LEFT
//! JOIN), the store's `today`, and the daypart bounds `morning, noon,
//! afternoon, evening` in minutes. The result is the array of
//! [`OrderFigures::FIELDS`], with `null` where a minimum or maximum has no
//! order to come from.

use std::ffi::c_int;
use std::fmt::Write as _;

use libsqlite3_sys as ffi;

use crate::segments::rules::{RECENT_WINDOW_DAYS, TIER_WINDOW_DAYS};

/// The SQL name, NUL-terminated for SQLite.
const NAME: &[u8] = b"seg_figures\0";
const ARGS: c_int = 9;

/// One order as the aggregate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRow {
    pub amount_fen: i64,
    pub ordered_at: i64,
    pub local_date: i64,
    pub local_minute: i64,
}

/// The store's day and the daypart bounds the figures are taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FigureWindow {
    pub today: i64,
    pub morning: i64,
    pub noon: i64,
    pub afternoon: i64,
    pub evening: i64,
}

/// Running figures of one customer. All zeroes is the empty state: SQLite
/// hands the aggregate zeroed memory, and a minimum or maximum counts only
/// once its `has_` flag is set.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OrderFigures {
    /// Orders up to today that are not refunds (visits).
    n: i64,
    /// Money up to today, refunds included.
    spent: i64,
    n90: i64,
    s90: i64,
    s365: i64,
    first_at: i64,
    last_at: i64,
    first_day: i64,
    last_day: i64,
    min90: i64,
    min365: i64,
    future: i64,
    morning: i64,
    noon: i64,
    afternoon: i64,
    has_min90: bool,
    has_min365: bool,
    has_future: bool,
    /// A sum left the range of a 64-bit integer (SQLite's sum() fails too).
    overflow: bool,
}

impl OrderFigures {
    /// The names of the result array's elements, in order.
    pub const FIELDS: [&'static str; 15] = [
        "n",
        "spent",
        "n90",
        "s90",
        "s365",
        "first_at",
        "last_at",
        "first_day",
        "last_day",
        "min90",
        "min365",
        "future",
        "dm",
        "dn",
        "da",
    ];

    /// Count one order. The windows are those of the filtered aggregates
    /// PostgreSQL runs: an order is seen once its local date has come;
    /// refunds (negative amounts) count in the money only.
    pub fn push(&mut self, o: OrderRow, w: FigureWindow) {
        let d = o.local_date;
        if d > w.today {
            if !self.has_future || d < self.future {
                self.future = d;
                self.has_future = true;
            }
            return;
        }
        let in90 = d > w.today - RECENT_WINDOW_DAYS;
        let in365 = d > w.today - TIER_WINDOW_DAYS;
        self.add(|f| &mut f.spent, o.amount_fen);
        if in90 {
            self.add(|f| &mut f.s90, o.amount_fen);
            if !self.has_min90 || d < self.min90 {
                self.min90 = d;
                self.has_min90 = true;
            }
        }
        if in365 {
            self.add(|f| &mut f.s365, o.amount_fen);
            if !self.has_min365 || d < self.min365 {
                self.min365 = d;
                self.has_min365 = true;
            }
        }
        if o.amount_fen < 0 {
            return;
        }
        if self.n == 0 {
            (self.first_at, self.last_at) = (o.ordered_at, o.ordered_at);
            (self.first_day, self.last_day) = (d, d);
        } else {
            self.first_at = self.first_at.min(o.ordered_at);
            self.last_at = self.last_at.max(o.ordered_at);
            self.first_day = self.first_day.min(d);
            self.last_day = self.last_day.max(d);
        }
        self.n += 1;
        if in90 {
            self.n90 += 1;
        }
        let m = o.local_minute;
        self.morning += i64::from(m >= w.morning && m < w.noon);
        self.noon += i64::from(m >= w.noon && m < w.afternoon);
        self.afternoon += i64::from(m >= w.afternoon && m < w.evening);
    }

    fn add(&mut self, field: impl FnOnce(&mut Self) -> &mut i64, v: i64) {
        let sum = field(self);
        match sum.checked_add(v) {
            Some(s) => *sum = s,
            None => self.overflow = true,
        }
    }

    /// The result array (see [`Self::FIELDS`]).
    pub fn to_json(self) -> String {
        let visits = self.n > 0;
        let values: [Option<i64>; Self::FIELDS.len()] = [
            Some(self.n),
            Some(self.spent),
            Some(self.n90),
            Some(self.s90),
            Some(self.s365),
            visits.then_some(self.first_at),
            visits.then_some(self.last_at),
            visits.then_some(self.first_day),
            visits.then_some(self.last_day),
            self.has_min90.then_some(self.min90),
            self.has_min365.then_some(self.min365),
            self.has_future.then_some(self.future),
            Some(self.morning),
            Some(self.noon),
            Some(self.afternoon),
        ];
        let mut out = String::with_capacity(128);
        for (i, v) in values.into_iter().enumerate() {
            out.push(if i == 0 { '[' } else { ',' });
            match v {
                // Writing to a String cannot fail.
                Some(v) => {
                    let _ = write!(out, "{v}");
                }
                None => out.push_str("null"),
            }
        }
        out.push(']');
        out
    }
}

/// Register `seg_figures` on a connection.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the
/// call (sqlx's `LockedSqliteHandle` guarantees both).
pub unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    // SAFETY: the name is NUL-terminated and static; the callbacks are
    // `extern "C"` functions that never unwind; there is no user data.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            NAME.as_ptr().cast(),
            ARGS,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
            std::ptr::null_mut(),
            None,
            Some(step),
            Some(finish),
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// The running figures of the group `ctx` aggregates, if SQLite could give
/// memory for them (`None` on out of memory, already reported).
///
/// # Safety
/// `ctx` must be the context SQLite passed to the callback.
unsafe fn state<'a>(ctx: *mut ffi::sqlite3_context, size: c_int) -> Option<&'a mut OrderFigures> {
    // SAFETY: SQLite returns either NULL or a zeroed, suitably aligned
    // (8-byte) block of `size` bytes that lives until xFinal returns and
    // belongs to this group alone; all-zero bytes are a valid OrderFigures.
    unsafe {
        let p = ffi::sqlite3_aggregate_context(ctx, size).cast::<OrderFigures>();
        p.as_mut()
    }
}

const STATE_SIZE: c_int = std::mem::size_of::<OrderFigures>() as c_int;

unsafe extern "C" fn step(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    if argc != ARGS || argv.is_null() {
        return;
    }
    // SAFETY: SQLite passes `argc` valid value pointers for this call.
    let args = unsafe { std::slice::from_raw_parts(argv, ARGS as usize) };
    // SAFETY: the values are valid for the duration of the call.
    let int = |i: usize| unsafe {
        (ffi::sqlite3_value_type(args[i]) != ffi::SQLITE_NULL)
            .then(|| ffi::sqlite3_value_int64(args[i]))
    };
    // SAFETY: `ctx` is this call's context.
    let Some(acc) = (unsafe { state(ctx, STATE_SIZE) }) else {
        // SAFETY: as above.
        unsafe { ffi::sqlite3_result_error_nomem(ctx) };
        return;
    };
    // A customer without orders is one row of NULLs under the LEFT JOIN.
    let (Some(amount_fen), Some(ordered_at), Some(local_date), Some(local_minute)) =
        (int(0), int(1), int(2), int(3))
    else {
        return;
    };
    let window = FigureWindow {
        today: int(4).unwrap_or(i64::MIN),
        morning: int(5).unwrap_or(0),
        noon: int(6).unwrap_or(0),
        afternoon: int(7).unwrap_or(0),
        evening: int(8).unwrap_or(0),
    };
    acc.push(
        OrderRow {
            amount_fen,
            ordered_at,
            local_date,
            local_minute,
        },
        window,
    );
}

unsafe extern "C" fn finish(ctx: *mut ffi::sqlite3_context) {
    // Size 0: a group that never stepped gets no allocation, only NULL.
    // SAFETY: `ctx` is this call's context.
    let figures = unsafe { state(ctx, 0) }.copied().unwrap_or_default();
    if figures.overflow {
        // SAFETY: the message is NUL-terminated; -1 reads up to the NUL.
        unsafe { ffi::sqlite3_result_error(ctx, c"integer overflow".as_ptr(), -1) };
        return;
    }
    let json = figures.to_json();
    let Ok(len) = c_int::try_from(json.len()) else {
        // SAFETY: as above.
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

    const W: FigureWindow = FigureWindow {
        today: 1000,
        morning: 300,
        noon: 660,
        afternoon: 840,
        evening: 1020,
    };

    fn order(amount_fen: i64, local_date: i64, local_minute: i64) -> OrderRow {
        OrderRow {
            amount_fen,
            ordered_at: local_date * 86_400_000 + local_minute * 60_000,
            local_date,
            local_minute,
        }
    }

    fn figures(orders: &[OrderRow]) -> OrderFigures {
        let mut f = OrderFigures::default();
        for o in orders {
            f.push(*o, W);
        }
        f
    }

    #[test]
    fn no_orders_gives_zeroes_and_nulls() {
        assert_eq!(
            OrderFigures::default().to_json(),
            "[0,0,0,0,0,null,null,null,null,null,null,null,0,0,0]"
        );
    }

    #[test]
    fn windows_refunds_and_future_orders_are_counted_as_in_sql() {
        let f = figures(&[
            order(1000, 400, 480),  // a year and more ago, morning
            order(2000, 700, 700),  // within 365 days, noon
            order(3000, 950, 900),  // within 90 days, afternoon
            order(-500, 960, 1100), // a refund: money only
            order(700, 1000, 1100), // today, evening
            order(9000, 1002, 480), // after today: only its day is noted
            order(9000, 1001, 480),
        ]);
        let json = f.to_json();
        // n, spent, n90, s90, s365
        assert!(json.starts_with("[4,6200,2,3200,5200,"), "{json}");
        let (first_at, last_at) = (
            400_i64 * 86_400_000 + 480 * 60_000,
            1000_i64 * 86_400_000 + 1100 * 60_000,
        );
        assert_eq!(
            json,
            format!("[4,6200,2,3200,5200,{first_at},{last_at},400,1000,950,700,1001,1,1,1]")
        );
    }

    #[test]
    fn the_window_edges_are_half_open_like_the_filters() {
        // today - 90 is outside the 90-day window, today - 89 inside.
        let f = figures(&[order(100, 910, 0), order(100, 911, 0)]);
        assert_eq!(f.n90, 1);
        assert_eq!(f.min90, 911);
        // today - 365 is outside the 365-day window.
        let f = figures(&[order(100, 635, 0), order(100, 636, 0)]);
        assert_eq!((f.s365, f.min365), (100, 636));
        // Daypart bounds: a minute equal to a bound belongs to the later part;
        // before morning and from evening on is neither of the three.
        let f = figures(&[
            order(1, 1000, 299),
            order(1, 1000, 300),
            order(1, 1000, 660),
            order(1, 1000, 840),
            order(1, 1000, 1020),
        ]);
        assert_eq!((f.morning, f.noon, f.afternoon), (1, 1, 1));
    }

    #[test]
    fn only_refunds_leave_the_dates_empty() {
        let json = figures(&[order(-300, 990, 600)]).to_json();
        assert_eq!(
            json,
            "[0,-300,0,-300,-300,null,null,null,null,990,990,null,0,0,0]"
        );
    }

    #[test]
    fn an_overflowing_sum_is_an_error_not_a_wrapped_number() {
        let f = figures(&[order(i64::MAX, 999, 0), order(1, 999, 0)]);
        assert!(f.overflow);
    }

    /// The registered function, through SQLite: a group of orders, a
    /// customer without orders (one row of NULLs), and an overflow.
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
        let sql = "SELECT seg_figures(a, at, d, m, 1000, 300, 660, 840, 1020) ->> 0, \
                          seg_figures(a, at, d, m, 1000, 300, 660, 840, 1020) \
                   FROM (SELECT ? AS a, ? AS at, ? AS d, ? AS m UNION ALL SELECT ?, ?, ?, ?)";
        let (n, json): (i64, String) = sqlx::query_as(sql)
            .bind(700_i64)
            .bind(5_i64)
            .bind(1000_i64)
            .bind(1100_i64)
            .bind(300_i64)
            .bind(4_i64)
            .bind(999_i64)
            .bind(480_i64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(json, "[2,1000,2,1000,1000,4,5,999,1000,999,999,null,1,0,0]");
        let none: String = sqlx::query_scalar(
            "SELECT seg_figures(NULL, NULL, NULL, NULL, 1000, 300, 660, 840, 1020)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(none, OrderFigures::default().to_json());
        let overflow = sqlx::query_scalar::<_, String>(
            "SELECT seg_figures(a, 0, 999, 0, 1000, 300, 660, 840, 1020) \
             FROM (SELECT 9223372036854775807 AS a UNION ALL SELECT 1)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
        assert!(
            overflow.to_string().contains("integer overflow"),
            "{overflow}"
        );
    }
}
