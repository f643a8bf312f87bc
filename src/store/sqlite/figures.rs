//! `seg_figures(...)`: a customer's stored order attributes, from its orders,
//! as one SQLite aggregate; `seg_attr(attributes, i)`, which takes one of
//! them out; and `seg_differs(attributes, stored...)`, which tells whether
//! a stored row holds other values.
//!
//! Phase A of the segments job gathers fifteen figures per customer from
//! their orders (counts, sums and first/last days, each over its own window)
//! and derives from them the twelve attributes it stores
//! ([`ATTRIBUTE_COLUMNS`]). Written as fifteen filtered aggregates, SQLite
//! evaluates some thirty-five comparisons per order: over ten million orders
//! that was most of a full run. This aggregate reads each order once and
//! returns the attributes packed in a blob. Most customers' attributes are
//! the same as in the previous run: `seg_differs` compares the blob with the
//! stored row in one call, and only the rows that differ are taken apart
//! with `seg_attr` and written (see `phase_a_sql`). (Taking every figure
//! out with a call of its own and comparing in SQL cost SQLite a copy of the
//! blob per call: a tenth of a warm full run.) PostgreSQL keeps the filtered
//! aggregates and derives in SQL, which it evaluates fast; the store
//! contract tests hold both to the same results.
//!
//! Arguments of `seg_figures`, per order row: `amount_fen, ordered_at,
//! local_date, local_minute` (all NULL for a customer without orders, under
//! the LEFT JOIN; otherwise none is), the store's `today`, and the daypart
//! bounds `morning, noon, afternoon, evening` in minutes (these five are the
//! same for all of a customer's orders, and read at its first). The result
//! holds the [`ATTRIBUTE_COLUMNS`] in order, each NULL where there is
//! nothing to derive it from: [`BLOB_LEN`] bytes, twelve little-endian
//! 64-bit integers (the favourite daypart as its place in [`DAYPARTS`]) and
//! then a 16-bit little-endian mask of the NULL ones.

use std::ffi::{CStr, c_int};

use libsqlite3_sys as ffi;

use super::functions::{self, Callbacks};

use crate::segments::rules::{DAYPARTS, RECENT_WINDOW_DAYS, TIER_WINDOW_DAYS};

/// The SQL names.
const NAME: &CStr = c"seg_figures";
const ATTR_NAME: &CStr = c"seg_attr";
const DIFFERS_NAME: &CStr = c"seg_differs";
const ARGS: usize = 9;

/// The columns of `customer_attributes` the aggregate's result holds, in
/// its order.
use crate::store::segments_sql::ORDER_ATTRIBUTES as ATTRIBUTE_COLUMNS;

/// The place of the one text attribute, `favorite_daypart`.
const DAYPART: usize = 10;

/// Bytes of the aggregate's result: the values, then the NULL mask.
pub const BLOB_LEN: usize = ATTRIBUTE_COLUMNS.len() * 8 + 2;

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

    /// The stored attributes, in the order of [`ATTRIBUTE_COLUMNS`] (the
    /// favourite daypart as its place in [`DAYPARTS`]), derived as
    /// PostgreSQL's statement derives them:
    /// - the average order, the money over the visits rounded half away
    ///   from zero (PostgreSQL's `round` of a numeric);
    /// - the favourite daypart, the one of most visits, the earlier one of
    ///   a tie; none without visits;
    /// - the next change day, the first day an order leaves the 90- or the
    ///   365-day window or a future order comes into view.
    pub fn attributes(self) -> [Option<i64>; ATTRIBUTE_COLUMNS.len()] {
        let visits = self.n > 0;
        let average = visits.then(|| {
            let (spent, n) = (i128::from(self.spent), i128::from(self.n));
            let (q, r) = (spent / n, spent % n);
            let q = if 2 * r.abs() >= n {
                q + spent.signum()
            } else {
                q
            };
            // |q| <= |spent|, which is an i64.
            i64::try_from(q).unwrap_or(i64::MAX)
        });
        let evening = self.n - self.morning - self.noon - self.afternoon;
        let parts = [self.morning, self.noon, self.afternoon, evening];
        let favourite = visits.then(|| {
            // The first of the largest: `max_by_key` keeps the last.
            let best = parts.iter().copied().max().unwrap_or(0);
            parts.iter().position(|p| *p == best).unwrap_or(0) as i64
        });
        let next_change = [
            self.has_min90
                .then(|| self.min90.saturating_add(RECENT_WINDOW_DAYS)),
            self.has_min365
                .then(|| self.min365.saturating_add(TIER_WINDOW_DAYS)),
            self.has_future.then_some(self.future),
        ]
        .into_iter()
        .flatten()
        .min();
        [
            Some(self.n),
            Some(self.spent),
            average,
            Some(self.n90),
            Some(self.s90),
            Some(self.s365),
            visits.then_some(self.first_at),
            visits.then_some(self.last_at),
            visits.then_some(self.first_day),
            visits.then_some(self.last_day),
            favourite,
            next_change,
        ]
    }

    /// The aggregate's result (see the module's documentation).
    pub fn to_blob(self) -> [u8; BLOB_LEN] {
        let mut out = [0u8; BLOB_LEN];
        let mut nulls = 0u16;
        for (i, v) in self.attributes().into_iter().enumerate() {
            match v {
                Some(v) => out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes()),
                None => nulls |= 1 << i,
            }
        }
        out[BLOB_LEN - 2..].copy_from_slice(&nulls.to_le_bytes());
        out
    }
}

/// An attribute as SQL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    Null,
    Int(i64),
    Text(&'static str),
}

/// Why a blob cannot be read.
const NOT_A_RESULT: &str = "not a seg_figures result";

/// Attribute `i` of a blob made by [`OrderFigures::to_blob`]; `Err` for a
/// blob of another length, an index out of range, or a daypart out of
/// [`DAYPARTS`].
pub fn attribute(blob: &[u8], i: usize) -> Result<Attribute, &'static str> {
    if blob.len() != BLOB_LEN {
        return Err(NOT_A_RESULT);
    }
    if i >= ATTRIBUTE_COLUMNS.len() {
        return Err("no such attribute");
    }
    let nulls = u16::from_le_bytes([blob[BLOB_LEN - 2], blob[BLOB_LEN - 1]]);
    if nulls & (1 << i) != 0 {
        return Ok(Attribute::Null);
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&blob[i * 8..i * 8 + 8]);
    let v = i64::from_le_bytes(v);
    if i == DAYPART {
        let name = usize::try_from(v).ok().and_then(|p| DAYPARTS.get(p));
        return name.copied().map(Attribute::Text).ok_or(NOT_A_RESULT);
    }
    Ok(Attribute::Int(v))
}

/// Whether the `stored` values differ from the blob's attributes: a value of
/// another type (a real number, say) differs too.
pub fn differs(blob: &[u8], stored: &[Attribute]) -> Result<bool, &'static str> {
    if stored.len() != ATTRIBUTE_COLUMNS.len() {
        return Err("seg_differs takes the attributes and every stored column");
    }
    for (i, s) in stored.iter().enumerate() {
        if attribute(blob, i)? != *s {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Register `seg_figures`, `seg_attr` and `seg_differs` on a connection.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the
/// call (sqlx's `LockedSqliteHandle` guarantees both).
pub unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    let differs_args = c_int::try_from(ATTRIBUTE_COLUMNS.len() + 1).unwrap_or(-1);
    // SAFETY: as the caller promises; the callbacks never unwind.
    unsafe {
        functions::register(db, NAME, ARGS as c_int, Callbacks::Aggregate(step, finish))?;
        functions::register(db, ATTR_NAME, 2, Callbacks::Scalar(attr_func))?;
        functions::register(
            db,
            DIFFERS_NAME,
            differs_args,
            Callbacks::Scalar(differs_func),
        )
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
    // A customer without orders is one row of NULLs under the LEFT JOIN;
    // otherwise the order's four columns are NOT NULL, and read as they are.
    // SAFETY: the values are arguments of this call.
    if unsafe { ffi::sqlite3_value_type(args[0]) } == ffi::SQLITE_NULL {
        return;
    }
    // SAFETY: as above.
    let int = |i: usize| unsafe { ffi::sqlite3_value_int64(args[i]) };
    // SAFETY: `ctx` is this call's context; all-zero bytes are a valid
    // Running (its `Default`).
    let Some(acc) = (unsafe { functions::aggregate_state::<Running>(ctx, true) }) else {
        // SAFETY: as above.
        unsafe { ffi::sqlite3_result_error_nomem(ctx) };
        return;
    };
    if !acc.has_window {
        // SAFETY: as above.
        let arg = |i: usize| unsafe { functions::int(args[i]) };
        acc.window = FigureWindow {
            today: arg(4).unwrap_or(i64::MIN),
            morning: arg(5).unwrap_or(0),
            noon: arg(6).unwrap_or(0),
            afternoon: arg(7).unwrap_or(0),
            evening: arg(8).unwrap_or(0),
        };
        acc.has_window = true;
    }
    acc.figures.push(
        OrderRow {
            amount_fen: int(0),
            ordered_at: int(1),
            local_date: int(2),
            local_minute: int(3),
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

/// An argument as an [`Attribute`]; `None` for a real number or a blob,
/// which no attribute is.
///
/// # Safety
/// `value` must be an argument of the current call.
unsafe fn stored(value: *mut ffi::sqlite3_value) -> Option<Attribute> {
    // SAFETY: as the caller promises.
    unsafe {
        match ffi::sqlite3_value_type(value) {
            ffi::SQLITE_NULL => Some(Attribute::Null),
            ffi::SQLITE_INTEGER => Some(Attribute::Int(ffi::sqlite3_value_int64(value))),
            ffi::SQLITE_TEXT => {
                let text = functions::text(value).unwrap_or_default();
                // Only a daypart name can be equal to an attribute.
                DAYPARTS
                    .iter()
                    .find(|d| d.as_bytes() == text)
                    .copied()
                    .map(Attribute::Text)
            }
            _ => None,
        }
    }
}

/// Report `message` as the call's error.
///
/// # Safety
/// `ctx` must be the context SQLite passed to the callback.
unsafe fn fail(ctx: *mut ffi::sqlite3_context, message: &str) {
    // SAFETY: as the caller promises; the message is passed with its
    // length, NUL-free.
    unsafe {
        ffi::sqlite3_result_error(
            ctx,
            message.as_ptr().cast(),
            c_int::try_from(message.len()).unwrap_or(0),
        );
    }
}

unsafe extern "C" fn attr_func(
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
        let i = usize::try_from(ffi::sqlite3_value_int64(args[1])).unwrap_or(usize::MAX);
        attribute(blob, i)
    };
    // SAFETY: `ctx` is this call's context; a daypart name is static text,
    // passed with its length.
    unsafe {
        match outcome {
            Ok(Attribute::Null) => ffi::sqlite3_result_null(ctx),
            Ok(Attribute::Int(v)) => ffi::sqlite3_result_int64(ctx, v),
            Ok(Attribute::Text(t)) => ffi::sqlite3_result_text(
                ctx,
                t.as_ptr().cast(),
                c_int::try_from(t.len()).unwrap_or(0),
                ffi::SQLITE_STATIC(),
            ),
            Err(message) => fail(ctx, &format!("seg_attr: {message}")),
        }
    }
}

unsafe extern "C" fn differs_func(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    const N: usize = ATTRIBUTE_COLUMNS.len();
    // SAFETY: these are this call's arguments.
    let Some(args) = (unsafe { functions::arguments(argc, argv, N + 1) }) else {
        return;
    };
    let mut values = [Attribute::Null; N];
    let mut other_type = false;
    for (v, arg) in values.iter_mut().zip(&args[1..]) {
        // SAFETY: the values are arguments of this call.
        match unsafe { stored(*arg) } {
            Some(a) => *v = a,
            None => other_type = true,
        }
    }
    // SAFETY: as above; the blob is read after the other arguments, whose
    // reading leaves it alone.
    let blob = unsafe { functions::blob(args[0]) }.unwrap_or_default();
    let outcome = differs(blob, &values).map(|d| d || other_type);
    // SAFETY: `ctx` is this call's context.
    unsafe {
        match outcome {
            Ok(d) => ffi::sqlite3_result_int(ctx, c_int::from(d)),
            Err(message) => fail(ctx, &format!("seg_differs: {message}")),
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

    fn shown(a: Attribute) -> String {
        match a {
            Attribute::Null => "null".to_owned(),
            Attribute::Int(v) => v.to_string(),
            Attribute::Text(t) => t.to_owned(),
        }
    }

    /// What `seg_attr` reads back from the blob, attribute by attribute.
    fn read_back(f: OrderFigures) -> String {
        let blob = f.to_blob();
        let values: Vec<String> = (0..ATTRIBUTE_COLUMNS.len())
            .map(|i| shown(attribute(&blob, i).unwrap()))
            .collect();
        format!("[{}]", values.join(","))
    }

    fn figures(orders: &[OrderRow]) -> OrderFigures {
        let mut f = OrderFigures::default();
        for o in orders {
            f.push(*o, W);
        }
        f
    }

    #[test]
    fn the_daypart_is_where_its_column_is() {
        assert_eq!(ATTRIBUTE_COLUMNS[DAYPART], "favorite_daypart");
    }

    #[test]
    fn no_orders_gives_zeroes_and_nulls() {
        assert_eq!(
            read_back(OrderFigures::default()),
            "[0,0,null,0,0,0,null,null,null,null,null,null]"
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
        let (first_at, last_at) = (
            400_i64 * 86_400_000 + 480 * 60_000,
            1000_i64 * 86_400_000 + 1100 * 60_000,
        );
        // n, spent, average, n90, s90, s365, first and last order, their
        // days, a four-way tie of dayparts, and the next change: the
        // future order (day 1001) before 950 + 90 and 700 + 365.
        assert_eq!(
            read_back(f),
            format!("[4,6200,1550,2,3200,5200,{first_at},{last_at},400,1000,morning,1001]")
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
    fn the_favourite_daypart_is_the_earliest_of_the_most_visits() {
        let favourite = |minutes: &[i64]| {
            let orders: Vec<OrderRow> = minutes.iter().map(|m| order(100, 999, *m)).collect();
            shown(attribute(&figures(&orders).to_blob(), DAYPART).unwrap())
        };
        assert_eq!(favourite(&[700, 900, 900, 1100, 1100]), "afternoon");
        assert_eq!(favourite(&[700, 1100, 100]), "evening");
        assert_eq!(favourite(&[700, 1100]), "noon");
        assert_eq!(favourite(&[400, 1100, 900]), "morning");
        assert_eq!(favourite(&[900, 1100]), "afternoon");
    }

    #[test]
    fn the_average_order_rounds_half_away_from_zero() {
        let average = |amounts: &[i64]| {
            let orders: Vec<OrderRow> = amounts.iter().map(|a| order(*a, 999, 600)).collect();
            attribute(&figures(&orders).to_blob(), 2).unwrap()
        };
        assert_eq!(average(&[1000, 1001]), Attribute::Int(1001));
        assert_eq!(average(&[1000, 1000, 1001]), Attribute::Int(1000));
        assert_eq!(average(&[1000, 1001, 1001]), Attribute::Int(1001));
        // Refunds larger than the visits: -1001 over two visits.
        assert_eq!(average(&[1000, 1000, -3001]), Attribute::Int(-501));
        assert_eq!(average(&[1, 1, -5]), Attribute::Int(-2));
        assert_eq!(average(&[i64::MAX]), Attribute::Int(i64::MAX));
        assert_eq!(average(&[-300]), Attribute::Null);
    }

    #[test]
    fn the_next_change_is_the_first_day_a_window_or_a_future_order_moves() {
        let next = |orders: &[OrderRow]| attribute(&figures(orders).to_blob(), 11).unwrap();
        // 950 leaves the 90-day window on 1040, 700 the year on 1065.
        assert_eq!(
            next(&[order(1, 950, 0), order(1, 700, 0)]),
            Attribute::Int(1040)
        );
        assert_eq!(next(&[order(1, 700, 0)]), Attribute::Int(1065));
        assert_eq!(next(&[order(1, 1005, 0)]), Attribute::Int(1005));
        // Older than a year, nothing to come: no change by the date alone.
        assert_eq!(next(&[order(1, 500, 0)]), Attribute::Null);
        assert_eq!(next(&[]), Attribute::Null);
    }

    #[test]
    fn only_refunds_leave_the_dates_empty() {
        assert_eq!(
            read_back(figures(&[order(-300, 990, 600)])),
            "[0,-300,null,0,-300,-300,null,null,null,null,null,1080]"
        );
    }

    #[test]
    fn every_bit_of_a_value_survives_the_blob_and_a_bad_blob_is_refused() {
        let mut f = figures(&[order(i64::MAX, 999, 0)]);
        f.first_at = i64::MIN;
        let blob = f.to_blob();
        assert_eq!(attribute(&blob, 1), Ok(Attribute::Int(i64::MAX)));
        assert_eq!(attribute(&blob, 6), Ok(Attribute::Int(i64::MIN)));
        assert_eq!(attribute(&blob, DAYPART), Ok(Attribute::Text("evening")));
        assert!(attribute(&blob, ATTRIBUTE_COLUMNS.len()).is_err());
        assert!(attribute(&blob[1..], 0).is_err());
        assert!(attribute(b"", 0).is_err());
        let mut bad = blob;
        bad[DAYPART * 8] = 4;
        assert_eq!(attribute(&bad, DAYPART), Err(NOT_A_RESULT));
    }

    #[test]
    fn a_stored_row_differs_where_any_value_does() {
        let f = figures(&[order(700, 999, 480), order(-100, 998, 480)]);
        let blob = f.to_blob();
        let same: Vec<Attribute> = (0..ATTRIBUTE_COLUMNS.len())
            .map(|i| attribute(&blob, i).unwrap())
            .collect();
        assert_eq!(differs(&blob, &same), Ok(false));
        for i in 0..same.len() {
            for other in [Attribute::Null, Attribute::Int(1), Attribute::Text("noon")] {
                if other == same[i] {
                    continue;
                }
                let mut stored = same.clone();
                stored[i] = other;
                assert_eq!(differs(&blob, &stored), Ok(true), "{i} {other:?}");
            }
        }
        assert!(differs(&blob, &same[1..]).is_err());
        assert!(differs(&blob[1..], &same).is_err());
    }

    #[test]
    fn an_overflowing_sum_is_an_error_not_a_wrapped_number() {
        let f = figures(&[order(i64::MAX, 999, 0), order(1, 999, 0)]);
        assert!(f.overflow);
    }

    /// The registered functions, through SQLite: a group of orders, a
    /// customer without orders (one row of NULLs), comparisons with stored
    /// values of every type, and the errors.
    #[tokio::test]
    async fn the_registered_functions_run_in_sql() {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        {
            let mut handle = conn.lock_handle().await.unwrap();
            // SAFETY: the handle is open and locked for this call.
            unsafe { register(handle.as_raw_handle().as_ptr()) }.unwrap();
        }
        let each: Vec<String> = (0..ATTRIBUTE_COLUMNS.len())
            .map(|i| format!("coalesce(seg_attr(f, {i}), 'null')"))
            .collect();
        let two_orders = "(SELECT seg_figures(a, at, d, m, 1000, 300, 660, 840, 1020) AS f \
             FROM (SELECT 700 AS a, 5 AS at, 1000 AS d, 1100 AS m UNION ALL SELECT 300, 4, 999, 480))";
        let sql = format!(
            "SELECT '[' || {} || ']' FROM {two_orders}",
            each.join(" || ',' || ")
        );
        let two: String = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(two, "[2,1000,500,2,1000,1000,4,5,999,1000,morning,1089]");
        // The stored row as SQL holds it, then with one value changed, and
        // with a value of a type no attribute has.
        let stored = "2, 1000, 500, 2, 1000, 1000, 4, 5, 999, 1000, 'morning', 1089";
        for (row, want) in [
            (stored.to_owned(), 0),
            (stored.replace("'morning'", "'noon'"), 1),
            (stored.replace("'morning'", "'mornin'"), 1),
            (stored.replace("1089", "NULL"), 1),
            (stored.replace("2, 1000, 500", "2, 1000, 500.0"), 1),
            (stored.replace("2, 1000, 500", "2, 1000, x'00'"), 1),
        ] {
            let sql = format!("SELECT seg_differs(f, {row}) FROM {two_orders}");
            let got: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(got, want, "{row}");
        }
        let (n, first_at, daypart, length): (i64, Option<i64>, Option<String>, i64) =
            sqlx::query_as(
                "SELECT seg_attr(f, 0), seg_attr(f, 6), seg_attr(f, 10), length(f) FROM \
             (SELECT seg_figures(NULL, NULL, NULL, NULL, 1000, 300, 660, 840, 1020) AS f)",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((n, first_at, daypart), (0, None, None));
        assert_eq!(usize::try_from(length).unwrap(), BLOB_LEN);
        for (sql, message) in [
            (
                "SELECT seg_attr(x'00', 0)",
                "seg_attr: not a seg_figures result",
            ),
            (
                "SELECT seg_differs(x'00', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)",
                "seg_differs: not a seg_figures result",
            ),
            (
                "SELECT seg_figures(a, 0, 999, 0, 1000, 300, 660, 840, 1020) \
                 FROM (SELECT 9223372036854775807 AS a UNION ALL SELECT 1)",
                "integer overflow",
            ),
        ] {
            let refused = sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut conn)
                .await
                .unwrap_err();
            assert!(refused.to_string().contains(message), "{refused}");
        }
    }
}
