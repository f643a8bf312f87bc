//! `seg_figures(...)`: the order figures of one customer as one SQLite
//! aggregate, and `seg_field(figures, i)`, which takes one figure out.
//!
//! Phase A of the segments job gathers fifteen figures per customer from
//! their orders (counts, sums and first/last days, each over its own window).
//! Written as fifteen filtered aggregates, SQLite evaluates some thirty-five
//! comparisons per order: over ten million orders that was most of a full
//! run. This aggregate reads each order once and returns the figures packed
//! in a blob, which the statement takes apart per customer with `seg_field`
//! (see `phase_a_sql`). (The figures were a JSON array at first: writing and
//! parsing a million arrays was an eighth of a full run.) PostgreSQL keeps
//! the filtered aggregates, which it evaluates fast; the store contract tests
//! hold both to the same results.
//!
//! Arguments, per order row: `amount_fen, ordered_at, local_date,
//! local_minute` (all NULL for a customer without orders, under the LEFT
//! JOIN), the store's `today`, and the daypart bounds `morning, noon,
//! afternoon, evening` in minutes (these five are the same for all of a
//! customer's orders, and read at its first). The result holds the
//! [`OrderFigures::FIELDS`] in order, each NULL where a minimum or maximum
//! has no order to come from: [`BLOB_LEN`] bytes, fifteen little-endian
//! 64-bit integers and then a 16-bit little-endian mask of the NULL ones.

use std::ffi::{CStr, c_int};

use libsqlite3_sys as ffi;

use super::functions::{self, Callbacks};

use crate::segments::rules::{RECENT_WINDOW_DAYS, TIER_WINDOW_DAYS};

/// The SQL names.
const NAME: &CStr = c"seg_figures";
const FIELD_NAME: &CStr = c"seg_field";
const ARGS: usize = 9;

/// Bytes of the aggregate's result: the values, then the NULL mask.
pub const BLOB_LEN: usize = OrderFigures::FIELDS.len() * 8 + 2;

/// One order as the aggregate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRow {
    pub amount_fen: i64,
    pub ordered_at: i64,
    pub local_date: i64,
    pub local_minute: i64,
}

/// The store's day and the daypart bounds the figures are taken at.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
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

    /// The figures in the order of [`Self::FIELDS`].
    pub fn values(self) -> [Option<i64>; Self::FIELDS.len()] {
        let visits = self.n > 0;
        [
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
        ]
    }

    /// The aggregate's result (see the module's documentation).
    pub fn to_blob(self) -> [u8; BLOB_LEN] {
        let mut out = [0u8; BLOB_LEN];
        let mut nulls = 0u16;
        for (i, v) in self.values().into_iter().enumerate() {
            match v {
                Some(v) => out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes()),
                None => nulls |= 1 << i,
            }
        }
        out[BLOB_LEN - 2..].copy_from_slice(&nulls.to_le_bytes());
        out
    }
}

/// Figure `i` of a blob made by [`OrderFigures::to_blob`]: `Ok(None)` for a
/// NULL one, `Err` for a blob of another length or an index out of range.
pub fn field(blob: &[u8], i: i64) -> Result<Option<i64>, &'static str> {
    if blob.len() != BLOB_LEN {
        return Err("seg_field: not a seg_figures result");
    }
    let i = usize::try_from(i)
        .ok()
        .filter(|i| *i < OrderFigures::FIELDS.len())
        .ok_or("seg_field: no such figure")?;
    let nulls = u16::from_le_bytes([blob[BLOB_LEN - 2], blob[BLOB_LEN - 1]]);
    if nulls & (1 << i) != 0 {
        return Ok(None);
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&blob[i * 8..i * 8 + 8]);
    Ok(Some(i64::from_le_bytes(v)))
}

/// Register `seg_figures` and `seg_field` on a connection.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the
/// call (sqlx's `LockedSqliteHandle` guarantees both).
pub unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    // SAFETY: as the caller promises; the callbacks never unwind.
    unsafe {
        functions::register(db, NAME, ARGS as c_int, Callbacks::Aggregate(step, finish))?;
        functions::register(db, FIELD_NAME, 2, Callbacks::Scalar(field_func))
    }
}

/// What SQLite keeps per customer: the running figures, and the window,
/// read from the arguments of the customer's first order only: they are the
/// same for all of its orders, and reading them for each order cost about
/// 0.1 s per ten million orders. All zeroes is the empty state.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Running {
    figures: OrderFigures,
    window: FigureWindow,
    has_window: bool,
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
    // SAFETY: `ctx` is this call's context; all-zero bytes are a valid
    // Running (its `Default`).
    let Some(acc) = (unsafe { functions::aggregate_state::<Running>(ctx, true) }) else {
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
    if !acc.has_window {
        acc.window = FigureWindow {
            today: int(4).unwrap_or(i64::MIN),
            morning: int(5).unwrap_or(0),
            noon: int(6).unwrap_or(0),
            afternoon: int(7).unwrap_or(0),
            evening: int(8).unwrap_or(0),
        };
        acc.has_window = true;
    }
    acc.figures.push(
        OrderRow {
            amount_fen,
            ordered_at,
            local_date,
            local_minute,
        },
        acc.window,
    );
}

unsafe extern "C" fn finish(ctx: *mut ffi::sqlite3_context) {
    // SAFETY: `ctx` is this call's context; a group that never stepped
    // gets no allocation, and the defaults.
    let figures = unsafe { functions::aggregate_state::<Running>(ctx, false) }
        .map(|r| r.figures)
        .unwrap_or_default();
    if figures.overflow {
        // SAFETY: `ctx` is this call's context.
        unsafe { functions::error(ctx, c"integer overflow") };
        return;
    }
    let blob = figures.to_blob();
    // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes before `blob`
    // is dropped; BLOB_LEN fits a c_int.
    unsafe {
        ffi::sqlite3_result_blob(
            ctx,
            blob.as_ptr().cast(),
            BLOB_LEN as c_int,
            ffi::SQLITE_TRANSIENT(),
        );
    }
}

unsafe extern "C" fn field_func(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: these are this call's arguments.
    let Some(args) = (unsafe { functions::arguments(argc, argv, 2) }) else {
        return;
    };
    // SAFETY: the values are arguments of this call; the blob is read
    // before the index.
    let outcome = unsafe {
        let blob = functions::blob(args[0]).unwrap_or_default();
        field(blob, ffi::sqlite3_value_int64(args[1]))
    };
    // SAFETY: `ctx` is this call's context; the messages are NUL-free
    // static strings, passed with their length.
    unsafe {
        match outcome {
            Ok(Some(v)) => ffi::sqlite3_result_int64(ctx, v),
            Ok(None) => ffi::sqlite3_result_null(ctx),
            Err(message) => ffi::sqlite3_result_error(
                ctx,
                message.as_ptr().cast(),
                c_int::try_from(message.len()).unwrap_or(0),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::AssertSqlSafe;

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

    /// The figures as a list, `null` for a NULL one, as they read in SQL.
    fn shown(values: impl IntoIterator<Item = Option<i64>>) -> String {
        let values: Vec<String> = values
            .into_iter()
            .map(|v| v.map_or("null".to_owned(), |v| v.to_string()))
            .collect();
        format!("[{}]", values.join(","))
    }

    /// What `seg_field` reads back from the blob, figure by figure.
    fn read_back(f: OrderFigures) -> String {
        let blob = f.to_blob();
        let n = i64::try_from(OrderFigures::FIELDS.len()).unwrap();
        shown((0..n).map(|i| field(&blob, i).unwrap()))
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
            read_back(OrderFigures::default()),
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
        let json = read_back(f);
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
        let json = read_back(figures(&[order(-300, 990, 600)]));
        assert_eq!(
            json,
            "[0,-300,0,-300,-300,null,null,null,null,990,990,null,0,0,0]"
        );
    }

    #[test]
    fn every_bit_of_a_figure_survives_the_blob_and_a_bad_blob_is_refused() {
        let mut f = figures(&[order(i64::MAX, 999, 0)]);
        f.first_at = i64::MIN;
        let blob = f.to_blob();
        assert_eq!(field(&blob, 1), Ok(Some(i64::MAX)));
        assert_eq!(field(&blob, 5), Ok(Some(i64::MIN)));
        assert_eq!(field(&blob, 11), Ok(None));
        assert!(field(&blob, 15).is_err());
        assert!(field(&blob, -1).is_err());
        assert!(field(&blob[1..], 0).is_err());
        assert!(field(b"", 0).is_err());
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
        let each: Vec<String> = (0..OrderFigures::FIELDS.len())
            .map(|i| format!("coalesce(seg_field(f, {i}), 'null')"))
            .collect();
        let sql = format!(
            "SELECT '[' || {} || ']' FROM (SELECT seg_figures(a, at, d, m, 1000, 300, 660, 840, 1020) AS f \
             FROM (SELECT ? AS a, ? AS at, ? AS d, ? AS m UNION ALL SELECT ?, ?, ?, ?))",
            each.join(" || ',' || ")
        );
        let two: String = sqlx::query_scalar(AssertSqlSafe(sql))
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
        assert_eq!(two, "[2,1000,2,1000,1000,4,5,999,1000,999,999,null,1,0,0]");
        let (n, first_at, length): (i64, Option<i64>, i64) = sqlx::query_as(
            "SELECT seg_field(f, 0), seg_field(f, 5), length(f) FROM \
             (SELECT seg_figures(NULL, NULL, NULL, NULL, 1000, 300, 660, 840, 1020) AS f)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!((n, first_at), (0, None));
        assert_eq!(usize::try_from(length).unwrap(), BLOB_LEN);
        let refused = sqlx::query_scalar::<_, i64>("SELECT seg_field(x'00', 0)")
            .fetch_one(&mut conn)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("not a seg_figures result"),
            "{refused}"
        );
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
