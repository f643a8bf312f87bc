-- Scheduler: the row of a tick is its claim, held under a lease. A process
-- that dies in the middle of a run leaves the tick unfinished; once its lease
-- has run out another process takes the tick over (attempt + 1).
ALTER TABLE job_ticks ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE job_ticks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
-- Recent job runs (ops page, API) and pruning by age.
CREATE INDEX job_ticks_by_start ON job_ticks (started_at);
-- Housekeeping clears provider error texts of old attempts.
CREATE INDEX message_attempts_detail_by_at ON message_attempts (at) WHERE detail IS NOT NULL;
