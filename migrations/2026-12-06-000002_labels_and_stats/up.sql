-- Labels and a description on schedules, and per-schedule run statistics: running
-- counters written in the same transaction as each run's outcome (never a scan of the
-- ledger). Existing schedules get their counters from the ledger once, here.

ALTER TABLE schedules
    ADD COLUMN labels      jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN description text;

CREATE TABLE schedule_stats (
    schedule_id      text PRIMARY KEY REFERENCES schedules (id) ON DELETE CASCADE,
    runs_total       bigint NOT NULL DEFAULT 0,
    succeeded        bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    dead_lettered    bigint NOT NULL DEFAULT 0,
    cancelled        bigint NOT NULL DEFAULT 0,
    skipped          bigint NOT NULL DEFAULT 0,
    last_status      text,
    last_run_id      text,
    last_finished_at timestamptz,
    last_duration_ms bigint
);

INSERT INTO schedule_stats (schedule_id, runs_total, succeeded, failed, dead_lettered, cancelled, skipped)
SELECT schedule_id,
       count(*),
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'dead_lettered'),
       count(*) FILTER (WHERE status = 'cancelled'),
       count(*) FILTER (WHERE status = 'skipped')
FROM schedule_runs
WHERE status IN ('succeeded', 'failed', 'dead_lettered', 'cancelled', 'skipped')
GROUP BY schedule_id;

-- Every schedule has its row, so ending a run only updates it.
INSERT INTO schedule_stats (schedule_id)
SELECT id FROM schedules
ON CONFLICT (schedule_id) DO NOTHING;

UPDATE schedule_stats s
SET last_status = l.status, last_run_id = l.id, last_finished_at = l.finished_at,
    last_duration_ms = (extract(epoch FROM (l.finished_at - l.started_at)) * 1000)::bigint
FROM (
    SELECT DISTINCT ON (schedule_id) schedule_id, id, status, finished_at, started_at
    FROM schedule_runs
    WHERE status IN ('succeeded', 'failed', 'dead_lettered', 'cancelled') AND finished_at IS NOT NULL
    ORDER BY schedule_id, finished_at DESC, id DESC
) l
WHERE s.schedule_id = l.schedule_id;
