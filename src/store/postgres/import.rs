//! Imports on PostgreSQL. A batch is encoded once in the binary `COPY`
//! format and tried first as a plain `COPY` into the table, under a
//! savepoint: a first import, or a file of new orders, is then a bulk insert
//! (one WAL record per heap page instead of one per row, no staging table, no
//! speculative insertion). If any row of the batch is already stored, the
//! `COPY` fails on the primary key, the savepoint is rolled back, and the same
//! payload goes into a temporary staging table and is upserted from there
//! (only changed rows are written).
//!
//! After such a conflict the next batches skip the attempt for a while: a
//! re-import would otherwise pay a failed `COPY` for every batch.
//!
//! Each batch marks the customers it touched for the segments job in the
//! same transaction (the tables have no INSERT triggers for it: see the
//! migration `20261126000001`).

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection, Row};

use super::copy_binary::BinaryCopy;
use super::{PgStore, coupons, probe_by_key};
use crate::domain::{Customer, Order};
use crate::store::{
    LoadedTable, OrderBatchOutcome, StoreError, UpsertCounts, counts_from, minute_of_day,
};

/// Batches that go straight to the upsert after a `COPY` met a stored row.
const SKIP_AFTER_CONFLICT: u32 = 16;

/// A load that inserts at least this share of a table's rows (as last
/// counted) is followed by `VACUUM (ANALYZE)`: autovacuum's default
/// threshold for inserts (`autovacuum_vacuum_insert_scale_factor`).
const VACUUM_AFTER_SHARE: f64 = 0.2;

/// Whether the next batch tries a plain `COPY` first (shared by the lanes).
#[derive(Debug, Default)]
pub(super) struct CopyFirst {
    /// Batches left to send straight to the upsert.
    skip: AtomicU32,
}

impl CopyFirst {
    fn should_try(&self) -> bool {
        self.skip
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
    }

    fn conflicted(&self) {
        self.skip.store(SKIP_AFTER_CONFLICT, Ordering::Relaxed);
    }
}

const CUSTOMER_COLUMNS: &str = "id, name, phone, email, wechat_openid, birth_month, birth_day, \
     birth_year, store_code, tags, sms_opt_in, email_opt_in, wechat_opt_in, joined_at, \
     created_at, updated_at";

const STAGE_CUSTOMERS: &str = r#"CREATE TEMP TABLE IF NOT EXISTS stage_customers (
    id TEXT COLLATE "C", name TEXT, phone TEXT, email TEXT, wechat_openid TEXT,
    birth_month INT, birth_day INT, birth_year INT, store_code TEXT COLLATE "C", tags TEXT,
    sms_opt_in BOOLEAN, email_opt_in BOOLEAN, wechat_opt_in BOOLEAN, joined_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ
) ON COMMIT DELETE ROWS"#;

const ORDER_COLUMNS: &str = "id, customer_id, store_code, amount_fen, ordered_at, local_date, \
     local_minute, coupon_code, created_at, updated_at";

const STAGE_ORDERS: &str = r#"CREATE TEMP TABLE IF NOT EXISTS stage_orders (
    id TEXT COLLATE "C", customer_id TEXT COLLATE "C", store_code TEXT COLLATE "C",
    amount_fen BIGINT, ordered_at TIMESTAMPTZ, local_date DATE, local_minute SMALLINT,
    coupon_code TEXT, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ
) ON COMMIT DELETE ROWS"#;

/// Customers as `COPY` rows of [`CUSTOMER_COLUMNS`].
fn encode_customers(batch: &[Customer], now: DateTime<Utc>) -> Vec<u8> {
    let mut copy = BinaryCopy::with_capacity(batch.len() * 200);
    for c in batch {
        copy.row(16)
            .text(Some(c.id.as_str()))
            .text(c.name.as_deref())
            .text(c.phone.as_ref().map(|p| p.as_str()))
            .text(c.email.as_ref().map(|e| e.as_str()))
            .text(c.wechat_openid.as_ref().map(|w| w.as_str()))
            .int4(c.birthday.map(|b| i32::from(b.month())))
            .int4(c.birthday.map(|b| i32::from(b.day())))
            .int4(c.birthday.and_then(|b| b.year()))
            .text(c.store.as_ref().map(|s| s.as_str()))
            .text(Some(&c.tags.to_db()))
            .bool(c.sms_opt_in.to_db())
            .bool(c.email_opt_in.to_db())
            .bool(c.wechat_opt_in.to_db())
            .timestamptz(c.joined_at)
            .timestamptz(Some(now))
            .timestamptz(Some(now));
    }
    copy.finish()
}

/// The orders at `valid` as `COPY` rows of [`ORDER_COLUMNS`].
fn encode_orders(batch: &[Order], valid: &[usize], now: DateTime<Utc>) -> Vec<u8> {
    let mut copy = BinaryCopy::with_capacity(valid.len() * 110);
    for o in valid.iter().map(|&i| &batch[i]) {
        copy.row(10)
            .text(Some(o.id.as_str()))
            .text(Some(o.customer_id.as_str()))
            .text(Some(o.store.as_str()))
            .int8(Some(o.amount.fen()))
            .timestamptz(Some(o.ordered_at))
            .date(o.local_time.date())
            .int2(i16::try_from(minute_of_day(o)).unwrap_or(i16::MAX)) // 0..1439
            .text(o.coupon_code.as_deref())
            .timestamptz(Some(now))
            .timestamptz(Some(now));
    }
    copy.finish()
}

/// `COPY` `payload` into `table`.
async fn copy_in(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    payload: &[u8],
) -> Result<u64, sqlx::Error> {
    let statement = format!("COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary)");
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(payload).await?;
    copy.finish().await
}

/// Try `payload` as new rows of `table`: `true` if all were inserted,
/// `false` (with nothing written) if one of them is already stored.
async fn copy_new(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    payload: &[u8],
) -> Result<bool, StoreError> {
    sqlx::query("SAVEPOINT copy_new")
        .execute(&mut *conn)
        .await?;
    match copy_in(conn, table, columns, payload).await {
        Ok(_) => {
            sqlx::query("RELEASE SAVEPOINT copy_new")
                .execute(&mut *conn)
                .await?;
            Ok(true)
        }
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            sqlx::query("ROLLBACK TO SAVEPOINT copy_new")
                .execute(&mut *conn)
                .await?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

impl PgStore {
    /// `VACUUM (ANALYZE)` of `table` after a load that inserted
    /// `inserted` rows, when they are at least [`VACUUM_AFTER_SHARE`] of the
    /// rows it had when last counted, or it never was. A first import
    /// leaves the planner without statistics and no page all-visible (hint
    /// bits unset, every index read going to the table) until autovacuum
    /// comes by, if it runs at all; the segments job's full run took 10 %
    /// longer on such tables.
    pub(super) async fn vacuum_after_load(
        &self,
        table: LoadedTable,
        inserted: u64,
    ) -> Result<(), StoreError> {
        if inserted == 0 {
            return Ok(());
        }
        let counted: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
                .bind(table.name())
                .fetch_one(&self.pool)
                .await?;
        if counted >= 0.0 && (inserted as f64) < f64::from(counted) * VACUUM_AFTER_SHARE {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let sql = match table {
            LoadedTable::Customers => "VACUUM (ANALYZE) customers",
            LoadedTable::Orders => "VACUUM (ANALYZE) orders",
        };
        sqlx::query(sql).execute(&self.pool).await?;
        tracing::info!(
            table = table.name(),
            inserted,
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "vacuumed and analyzed after the load"
        );
        Ok(())
    }

    pub(super) async fn import_customers(
        &self,
        batch: &[Customer],
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        if batch.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let payload = encode_customers(batch, now);
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let counts = if self
            .insert_if_new(&mut tx, "customers", CUSTOMER_COLUMNS, &payload)
            .await?
        {
            // New customers: none of them can be marked already.
            let ids: Vec<&str> = batch.iter().map(|c| c.id.as_str()).collect();
            sqlx::query("INSERT INTO segment_dirty (customer_id) SELECT unnest($1::text[])")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            counts_from(batch.len(), 0, batch.len() as u64)
        } else {
            upsert_customers(&mut tx, &payload, batch.len()).await?
        };
        tx.commit().await?;
        Ok(counts)
    }

    /// Try `payload` as new rows of `table` (see [`copy_new`]), unless a
    /// recent batch met stored rows: `true` if all of them were inserted.
    async fn insert_if_new(
        &self,
        conn: &mut PgConnection,
        table: &str,
        columns: &str,
        payload: &[u8],
    ) -> Result<bool, StoreError> {
        if !self.copy_first.should_try() {
            return Ok(false);
        }
        let inserted = copy_new(conn, table, columns, payload).await?;
        if !inserted {
            self.copy_first.conflicted();
        }
        Ok(inserted)
    }

    pub(super) async fn import_orders(
        &self,
        batch: &[Order],
        now: DateTime<Utc>,
    ) -> Result<OrderBatchOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(OrderBatchOutcome::default());
        }
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // The batch's distinct customers are probed, not its rows: a file
        // lists a customer's orders together, so a batch of 20,000 orders
        // names about 2,000 customers. Nearly always none is unknown.
        let mut customers: Vec<&str> = batch.iter().map(|o| o.customer_id.as_str()).collect();
        customers.sort_unstable();
        customers.dedup();
        probe_by_key(&mut tx).await?;
        let mut missing: Vec<String> = sqlx::query_scalar(
            r#"SELECT u.id FROM unnest($1::text[]) AS u(id)
               WHERE NOT EXISTS (SELECT 1 FROM customers AS c WHERE c.id = u.id)"#,
        )
        .bind(&customers)
        .fetch_all(&mut *tx)
        .await?;
        missing.sort_unstable();
        let (valid, unknown): (Vec<usize>, Vec<usize>) = (0..batch.len()).partition(|&i| {
            missing
                .binary_search_by(|m| m.as_str().cmp(batch[i].customer_id.as_str()))
                .is_err()
        });
        let payload = encode_orders(batch, &valid, now);
        let counts = if valid.is_empty() {
            UpsertCounts::default()
        } else if self
            .insert_if_new(&mut tx, "orders", ORDER_COLUMNS, &payload)
            .await?
        {
            customers.retain(|c| missing.binary_search_by(|m| m.as_str().cmp(c)).is_err());
            mark_dirty(&mut tx, &customers).await?;
            counts_from(valid.len(), 0, valid.len() as u64)
        } else {
            upsert_orders(&mut tx, &payload, valid.len()).await?
        };
        let coupons = coupons::redeem(&mut tx, batch, &valid).await?;
        tx.commit().await?;
        Ok(OrderBatchOutcome {
            counts,
            unknown_customers: unknown,
            coupons,
        })
    }
}

/// How a mark meets a customer marked already: it locks the mark until the
/// writer commits, without writing it. A segments batch unmarking that
/// customer then waits, and reads the orders this writer adds (see
/// `clear_marks` in store/postgres/segments.rs); `DO NOTHING` takes no lock.
macro_rules! on_marked {
    () => {
        " ON CONFLICT (customer_id) DO UPDATE SET customer_id = EXCLUDED.customer_id WHERE false"
    };
}

/// Mark `customers` (distinct) for the segments job. They may be marked
/// already (see [`on_marked`]), or being unmarked by a segments batch: the
/// insert then waits for that batch and marks them again once it is done.
async fn mark_dirty(conn: &mut PgConnection, customers: &[&str]) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO segment_dirty (customer_id) SELECT unnest($1::text[])",
        on_marked!()
    ))
    .bind(customers)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Upsert the `rows` customers of `payload` through the staging table: only
/// changed customers are written.
async fn upsert_customers(
    conn: &mut PgConnection,
    payload: &[u8],
    rows: usize,
) -> Result<UpsertCounts, StoreError> {
    sqlx::query(STAGE_CUSTOMERS).execute(&mut *conn).await?;
    copy_in(conn, "stage_customers", CUSTOMER_COLUMNS, payload).await?;
    let row = sqlx::query(concat!(
        r#"WITH up AS (
             INSERT INTO customers (id, name, phone, email, wechat_openid, birth_month,
                 birth_day, birth_year, store_code, tags, sms_opt_in, email_opt_in,
                 wechat_opt_in, joined_at, created_at, updated_at)
             SELECT id, name, phone, email, wechat_openid, birth_month, birth_day,
                 birth_year, store_code, tags, sms_opt_in, email_opt_in, wechat_opt_in,
                 joined_at, created_at, updated_at
             FROM stage_customers
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
                 email = EXCLUDED.email, wechat_openid = EXCLUDED.wechat_openid,
                 birth_month = EXCLUDED.birth_month, birth_day = EXCLUDED.birth_day,
                 birth_year = EXCLUDED.birth_year, store_code = EXCLUDED.store_code,
                 tags = EXCLUDED.tags, sms_opt_in = EXCLUDED.sms_opt_in,
                 email_opt_in = EXCLUDED.email_opt_in, wechat_opt_in = EXCLUDED.wechat_opt_in,
                 joined_at = EXCLUDED.joined_at, updated_at = EXCLUDED.updated_at
             WHERE (customers.name, customers.phone, customers.email, customers.wechat_openid,
                    customers.birth_month, customers.birth_day, customers.birth_year,
                    customers.store_code, customers.tags, customers.sms_opt_in,
                    customers.email_opt_in, customers.wechat_opt_in, customers.joined_at)
               IS DISTINCT FROM
                   (EXCLUDED.name, EXCLUDED.phone, EXCLUDED.email, EXCLUDED.wechat_openid,
                    EXCLUDED.birth_month, EXCLUDED.birth_day, EXCLUDED.birth_year,
                    EXCLUDED.store_code, EXCLUDED.tags, EXCLUDED.sms_opt_in,
                    EXCLUDED.email_opt_in, EXCLUDED.wechat_opt_in, EXCLUDED.joined_at)
             RETURNING id, (xmax = 0) AS inserted),
           -- Updated customers are marked by the UPDATE trigger.
           marked AS (
             INSERT INTO segment_dirty (customer_id)
             SELECT id FROM up WHERE inserted"#,
        on_marked!(),
        r#")
           SELECT count(*) FILTER (WHERE inserted) AS inserted,
                  count(*) FILTER (WHERE NOT inserted) AS updated
           FROM up"#,
    ))
    .fetch_one(&mut *conn)
    .await?;
    upsert_counts(&row, rows)
}

/// The counts of an upsert whose statement returns `inserted` and `updated`.
fn upsert_counts(row: &PgRow, rows: usize) -> Result<UpsertCounts, StoreError> {
    let inserted: i64 = row.try_get("inserted")?;
    let updated: i64 = row.try_get("updated")?;
    Ok(counts_from(
        rows,
        rows as i64 - inserted,
        (inserted + updated) as u64,
    ))
}

/// Upsert the `rows` orders of `payload` through the staging table: only
/// changed orders are written, and a re-imported order whose coupon code
/// changed releases the coupon it had redeemed.
async fn upsert_orders(
    conn: &mut PgConnection,
    payload: &[u8],
    rows: usize,
) -> Result<UpsertCounts, StoreError> {
    sqlx::query(STAGE_ORDERS).execute(&mut *conn).await?;
    copy_in(conn, "stage_orders", ORDER_COLUMNS, payload).await?;
    let row = sqlx::query(concat!(
        r#"WITH up AS (
             INSERT INTO orders (id, customer_id, store_code, amount_fen, ordered_at,
                 local_date, local_minute, coupon_code, created_at, updated_at)
             SELECT s.id, s.customer_id, s.store_code, s.amount_fen, s.ordered_at,
                 s.local_date, s.local_minute, s.coupon_code, s.created_at, s.updated_at
             FROM stage_orders AS s
             ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                 store_code = EXCLUDED.store_code, amount_fen = EXCLUDED.amount_fen,
                 ordered_at = EXCLUDED.ordered_at, local_date = EXCLUDED.local_date,
                 local_minute = EXCLUDED.local_minute, coupon_code = EXCLUDED.coupon_code,
                 updated_at = EXCLUDED.updated_at
             WHERE (orders.customer_id, orders.store_code, orders.amount_fen,
                    orders.ordered_at, orders.local_date, orders.local_minute,
                    orders.coupon_code)
               IS DISTINCT FROM
                   (EXCLUDED.customer_id, EXCLUDED.store_code, EXCLUDED.amount_fen,
                    EXCLUDED.ordered_at, EXCLUDED.local_date, EXCLUDED.local_minute,
                    EXCLUDED.coupon_code)
             RETURNING id, customer_id, coupon_code, (xmax = 0) AS inserted),
           marked AS (
             INSERT INTO segment_dirty (customer_id)
             SELECT DISTINCT customer_id FROM up"#,
        on_marked!(),
        r#"),
           -- Every part of the statement sees the orders as they were, so
           -- this finds re-imported orders whose code changed and
           -- releases the coupon each had redeemed.
           changed AS (
             SELECT o.id, o.coupon_code AS old_code
             FROM up JOIN orders AS o ON o.id = up.id
             WHERE NOT up.inserted AND o.coupon_code IS NOT NULL
               AND o.coupon_code IS DISTINCT FROM up.coupon_code),
           released AS (
             UPDATE coupons AS c SET redeemed_order_id = NULL, redeemed_at = NULL
             FROM changed
             WHERE c.code = changed.old_code AND c.redeemed_order_id = changed.id
             RETURNING c.code)
           SELECT count(*) FILTER (WHERE inserted) AS inserted,
                  count(*) FILTER (WHERE NOT inserted) AS updated
           FROM up"#,
    ))
    .fetch_one(&mut *conn)
    .await?;
    upsert_counts(&row, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_skips_the_copy_for_a_while_then_tries_again() {
        let first = CopyFirst::default();
        assert!(first.should_try());
        first.conflicted();
        let skipped = (0..SKIP_AFTER_CONFLICT)
            .filter(|_| !first.should_try())
            .count();
        assert_eq!(skipped, SKIP_AFTER_CONFLICT as usize);
        assert!(first.should_try());
    }
}
