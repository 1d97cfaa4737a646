-- Background jobs: one row per run, taken by one hub at a time (FOR UPDATE SKIP LOCKED) and
-- held for a lease; a recurring job's run of a period is one row for the whole fleet (unique
-- module, name and period).
CREATE TABLE IF NOT EXISTS hub_jobs (
    id bigserial PRIMARY KEY,
    module text NOT NULL,
    name text NOT NULL,
    payload jsonb NOT NULL DEFAULT 'null',
    -- queued, running, done, failed, cancelled
    state text NOT NULL DEFAULT 'queued',
    attempts integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    hub text,
    last_error text,
    -- The period of a recurring job's run; NULL for an enqueued one.
    period timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);

CREATE UNIQUE INDEX IF NOT EXISTS hub_jobs_period ON hub_jobs (module, name, period)
    WHERE period IS NOT NULL;
CREATE INDEX IF NOT EXISTS hub_jobs_due ON hub_jobs (run_at) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS hub_jobs_module ON hub_jobs (module, id DESC);
