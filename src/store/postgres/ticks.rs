//! Job ticks on PostgreSQL: a claim is one `INSERT … ON CONFLICT DO UPDATE
//! … WHERE` (the update takes over a tick whose lease ran out); the unique key
//! makes exactly one of several processes get each tick.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::store::StoreError;
use crate::store::ticks::{
    ABANDONED_DETAIL, HOUSEKEEPING_CHUNK, HousekeepingReport, JobRun, Retention, RunLease,
    TickClaim, TickFinish,
};

const COLUMNS: &str = "job, scheduled_for, claimed_by, started_at, finished_at, outcome, detail, attempt, lease_until";

impl PgStore {
    pub(super) async fn tick_claim(&self, c: &TickClaim<'_>) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let attempt: Option<i32> = sqlx::query_scalar(
            "INSERT INTO job_ticks (job, scheduled_for, claimed_by, started_at, lease_until, attempt)
             VALUES ($1, $2, $3, $4, $5, 1)
             ON CONFLICT (job, scheduled_for) DO UPDATE SET
                 claimed_by = excluded.claimed_by, started_at = excluded.started_at,
                 lease_until = excluded.lease_until, attempt = job_ticks.attempt + 1
             WHERE job_ticks.finished_at IS NULL AND job_ticks.lease_until < excluded.started_at
             RETURNING attempt",
        )
        .bind(c.job)
        .bind(c.scheduled_for)
        .bind(c.worker)
        .bind(c.now)
        .bind(c.lease_until)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(attempt.map(i64::from))
    }

    pub(super) async fn tick_renew(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE job_ticks SET lease_until = $1
             WHERE job = $2 AND scheduled_for = $3 AND claimed_by = $4 AND finished_at IS NULL",
        )
        .bind(lease_until)
        .bind(job)
        .bind(scheduled_for)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn tick_finish(&self, f: &TickFinish<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE job_ticks SET finished_at = $1, outcome = $2, detail = $3, lease_until = NULL
             WHERE job = $4 AND scheduled_for = $5 AND claimed_by = $6 AND finished_at IS NULL",
        )
        .bind(f.finished_at)
        .bind(f.outcome.as_str())
        .bind(f.detail)
        .bind(f.job)
        .bind(f.scheduled_for)
        .bind(f.worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn tick_skip(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        worker: &str,
        now: DateTime<Utc>,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO job_ticks (job, scheduled_for, claimed_by, started_at, finished_at, outcome, detail)
             VALUES ($1, $2, $3, $4, $4, 'skipped', $5)
             ON CONFLICT (job, scheduled_for) DO NOTHING",
        )
        .bind(job)
        .bind(scheduled_for)
        .bind(worker)
        .bind(now)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn tick_last(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let last: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT max(scheduled_for) FROM job_ticks WHERE job = $1")
                .bind(job)
                .fetch_one(&self.pool)
                .await?;
        Ok(last)
    }

    pub(super) async fn runs(
        &self,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRun>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM job_ticks WHERE ($1::text IS NULL OR job = $1)
             ORDER BY started_at DESC, job LIMIT $2"
        )))
        .bind(job)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_run).collect()
    }

    pub(super) async fn latest_runs(&self) -> Result<Vec<JobRun>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM job_ticks t
             WHERE scheduled_for = (SELECT max(scheduled_for) FROM job_ticks l WHERE l.job = t.job)
             ORDER BY job"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_run).collect()
    }

    pub(super) async fn housekeep(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
    ) -> Result<HousekeepingReport, StoreError> {
        let mut report = HousekeepingReport::default();
        // Abandoned ticks first, while the later runs that show it are there.
        let mut tx = self.pool.begin().await?;
        report.ticks_abandoned = sqlx::query(
            "UPDATE job_ticks SET finished_at = $1, outcome = 'failed', detail = $2, lease_until = NULL
             WHERE finished_at IS NULL AND lease_until < $1
               AND EXISTS (SELECT 1 FROM job_ticks later
                           WHERE later.job = job_ticks.job
                             AND later.scheduled_for > job_ticks.scheduled_for
                             AND later.finished_at IS NOT NULL)",
        )
        .bind(now)
        .bind(ABANDONED_DETAIL)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        let detail_cutoff = now - Duration::days(i64::from(retention.attempt_detail_days));
        loop {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query(
                "UPDATE message_attempts SET detail = NULL WHERE id IN (
                     SELECT id FROM message_attempts
                     WHERE detail IS NOT NULL AND at < $1 LIMIT $2)",
            )
            .bind(detail_cutoff)
            .bind(HOUSEKEEPING_CHUNK)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            report.attempt_details_cleared += n;
            if n < HOUSEKEEPING_CHUNK as u64 {
                break;
            }
        }
        let runs_cutoff = now - Duration::days(i64::from(retention.job_runs_days));
        loop {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query(
                "DELETE FROM job_ticks WHERE ctid IN (
                     SELECT ctid FROM job_ticks
                     WHERE started_at < $1 AND finished_at IS NOT NULL LIMIT $2)",
            )
            .bind(runs_cutoff)
            .bind(HOUSEKEEPING_CHUNK)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            report.job_runs_deleted += n;
            if n < HOUSEKEEPING_CHUNK as u64 {
                break;
            }
        }
        let expired: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE status = 'sending' AND lease_until < $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        report.expired_message_leases = u64::try_from(expired).unwrap_or(0);
        Ok(report)
    }
}

fn job_run(r: &PgRow) -> Result<JobRun, StoreError> {
    let attempt: i32 = r.try_get("attempt")?;
    Ok(JobRun {
        job: r.try_get("job")?,
        scheduled_for: r.try_get("scheduled_for")?,
        claimed_by: r.try_get("claimed_by")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        outcome: r.try_get("outcome")?,
        detail: r.try_get("detail")?,
        attempt: i64::from(attempt),
        lease_until: r.try_get("lease_until")?,
    })
}

impl PgStore {
    pub(super) async fn run_lease_take(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<RunLease>, StoreError> {
        loop {
            let taken = sqlx::query(
                "INSERT INTO run_leases (name, holder, until) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE run_leases.until < $4 OR run_leases.holder = excluded.holder",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() == 1 {
                return Ok(None);
            }
            // Released since: try again.
            if let Some(row) = sqlx::query("SELECT holder, until FROM run_leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
            {
                return Ok(Some(RunLease {
                    holder: row.try_get("holder")?,
                    until: row.try_get("until")?,
                }));
            }
        }
    }

    pub(super) async fn run_lease_renew(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE run_leases SET until = $1 WHERE name = $2 AND holder = $3")
            .bind(until)
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn run_lease_release(
        &self,
        name: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM run_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
