//! `seg_local_day(instant_ms, time_zone)`: the local date of an instant in
//! a time zone, as days since 1970-01-01 (NULL for a NULL instant).
//!
//! SQLite knows no time zones: a fixed offset (the zone's offset today)
//! dates an instant of another season an hour off, which across midnight
//! is the wrong day. This function uses the zone's rules at the instant.

use std::ffi::{CStr, c_int};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use libsqlite3_sys as ffi;

use super::functions::{self, Callbacks};
use crate::expr::day_number;

const NAME: &CStr = c"seg_local_day";

/// Register `seg_local_day` on a connection.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the
/// call (sqlx's `LockedSqliteHandle` guarantees both).
pub unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    // SAFETY: as the caller promises; the callback never unwinds.
    unsafe { functions::register(db, NAME, 2, Callbacks::Scalar(local_day_func)) }
}

/// The local day of `instant_ms` in the zone named `zone`.
fn local_day(instant_ms: i64, zone: &[u8]) -> Result<i64, &'static CStr> {
    let tz: Tz = std::str::from_utf8(zone)
        .ok()
        .and_then(|z| z.parse().ok())
        .ok_or(c"seg_local_day: not a time zone name")?;
    let at = DateTime::<Utc>::from_timestamp_millis(instant_ms)
        .ok_or(c"seg_local_day: the instant is out of range")?;
    Ok(day_number(at.with_timezone(&tz).date_naive()))
}

unsafe extern "C" fn local_day_func(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: these are this call's arguments.
    let Some(args) = (unsafe { functions::arguments(argc, argv, 2) }) else {
        return;
    };
    // SAFETY: the values are arguments of this call; the zone's bytes are
    // used before it returns.
    let (instant, zone) = unsafe { (functions::int(args[0]), functions::text(args[1])) };
    // SAFETY: `ctx` is this call's context.
    unsafe {
        match instant.map(|ms| local_day(ms, zone.unwrap_or_default())) {
            None => ffi::sqlite3_result_null(ctx),
            Some(Ok(day)) => ffi::sqlite3_result_int64(ctx, day),
            Some(Err(message)) => functions::error(ctx, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, SqliteConnection};

    async fn connection() -> SqliteConnection {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut handle = conn.lock_handle().await.unwrap();
        // SAFETY: the locked handle is open and used by this thread alone.
        unsafe { register(handle.as_raw_handle().as_ptr()) }.unwrap();
        drop(handle);
        conn
    }

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[tokio::test]
    async fn dates_an_instant_by_the_offset_of_its_season() {
        let mut conn = connection().await;
        let day = |s: &str| day_number(s.parse().unwrap());
        for (instant, zone, date) in [
            // Sydney's winter (UTC+10) and summer (UTC+11), half an hour
            // from midnight: today's offset would give the other day.
            (
                "2026-06-30T23:30:00+10:00",
                "Australia/Sydney",
                "2026-06-30",
            ),
            (
                "2026-01-15T00:30:00+11:00",
                "Australia/Sydney",
                "2026-01-15",
            ),
            ("2026-11-23T23:59:59+08:00", "Asia/Shanghai", "2026-11-23"),
            ("2026-11-23T16:00:00Z", "Asia/Shanghai", "2026-11-24"),
            ("1969-12-31T23:00:00Z", "UTC", "1969-12-31"),
        ] {
            let got: i64 = sqlx::query_scalar("SELECT seg_local_day(?, ?)")
                .bind(ms(instant))
                .bind(zone)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(got, day(date), "{instant} in {zone}");
        }
        let none: Option<i64> = sqlx::query_scalar("SELECT seg_local_day(NULL, 'UTC')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(none, None);
    }

    #[tokio::test]
    async fn an_unknown_zone_is_an_error() {
        let mut conn = connection().await;
        for zone in ["'Mars/Olympus'", "NULL", "x'ff'"] {
            let err = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT seg_local_day(0, {zone})"
            )))
            .execute(&mut conn)
            .await
            .unwrap_err();
            assert!(
                err.to_string().contains("not a time zone name"),
                "{zone}: {err}"
            );
        }
    }
}
