-- Leases of jobs that must not run twice at once (the segments job: two
-- runs would rank the same customers from the same old values and record
-- each change twice). A run holds the row of its job's name and renews it;
-- a process that dies lets it run out (`until_ms` past) and another run
-- takes it over.
CREATE TABLE run_leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);
