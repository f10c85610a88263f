-- Schedule controls beyond cron (issue 11): jitter, pause notes, limited schedules, and
-- where a run came from (so dispatch can tell backfilled runs, which never skip or cancel).
ALTER TABLE schedules
    ADD COLUMN jitter_seconds        integer NOT NULL DEFAULT 0 CHECK (jitter_seconds BETWEEN 0 AND 3600),
    ADD COLUMN pause_note            text,
    ADD COLUMN max_occurrences       integer CHECK (max_occurrences >= 1),
    ADD COLUMN occurrences_remaining integer CHECK (occurrences_remaining >= 0);

ALTER TABLE schedule_runs
    ADD COLUMN origin text NOT NULL DEFAULT 'schedule' CHECK (origin IN ('schedule', 'manual', 'backfill'));
-- Runs made before this migration: manual triggers are recognisable by their key.
UPDATE schedule_runs SET origin = 'manual' WHERE occurrence_key LIKE 'manual:%';
