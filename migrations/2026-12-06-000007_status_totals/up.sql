-- Running totals behind /v1/status and /v1/metrics, so neither counts the schedules nor
-- sums every schedule_stats row per request: how many schedules exist and are enabled, and
-- how many runs ended in each terminal status (the sums of schedule_stats).
--
-- Kept by deferred row triggers on `schedules` and `schedule_stats`, so every path that
-- changes those rows (creates, deletes and their cascades, pause/resume, each batch of
-- outcomes and skips) is counted in its own transaction, with no Rust caller to forget.
-- The totals are split over 256 shard rows, and a transaction adds to the row of its
-- connection (`pg_backend_pid() % 256`): concurrent transactions on different pool
-- connections never wait for each other here, and a transaction locks exactly one totals
-- row, at commit (the triggers are deferred), after all its other writes, so these locks
-- can never close a deadlock cycle. A shard may go negative (a schedule created on one
-- connection and deleted on another); only the sum means anything.

-- No writer may commit between the triggers' creation and the backfill uncounted.
LOCK TABLE schedules, schedule_stats IN SHARE MODE;

CREATE TABLE status_totals (
    shard         smallint PRIMARY KEY CHECK (shard >= 0 AND shard < 256),
    schedules     bigint NOT NULL DEFAULT 0,
    enabled       bigint NOT NULL DEFAULT 0,
    succeeded     bigint NOT NULL DEFAULT 0,
    failed        bigint NOT NULL DEFAULT 0,
    dead_lettered bigint NOT NULL DEFAULT 0,
    cancelled     bigint NOT NULL DEFAULT 0,
    skipped       bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION status_totals_on_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE status_totals SET schedules = schedules + 1, enabled = enabled + NEW.enabled::int
        WHERE shard = pg_backend_pid() % 256;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE status_totals SET schedules = schedules - 1, enabled = enabled - OLD.enabled::int
        WHERE shard = pg_backend_pid() % 256;
    ELSE
        UPDATE status_totals SET enabled = enabled + NEW.enabled::int - OLD.enabled::int
        WHERE shard = pg_backend_pid() % 256;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION status_totals_on_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE status_totals SET succeeded = succeeded + NEW.succeeded,
            failed = failed + NEW.failed, dead_lettered = dead_lettered + NEW.dead_lettered,
            cancelled = cancelled + NEW.cancelled, skipped = skipped + NEW.skipped
        WHERE shard = pg_backend_pid() % 256;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE status_totals SET succeeded = succeeded - OLD.succeeded,
            failed = failed - OLD.failed, dead_lettered = dead_lettered - OLD.dead_lettered,
            cancelled = cancelled - OLD.cancelled, skipped = skipped - OLD.skipped
        WHERE shard = pg_backend_pid() % 256;
    ELSE
        UPDATE status_totals SET succeeded = succeeded + NEW.succeeded - OLD.succeeded,
            failed = failed + NEW.failed - OLD.failed,
            dead_lettered = dead_lettered + NEW.dead_lettered - OLD.dead_lettered,
            cancelled = cancelled + NEW.cancelled - OLD.cancelled,
            skipped = skipped + NEW.skipped - OLD.skipped
        WHERE shard = pg_backend_pid() % 256;
    END IF;
    RETURN NULL;
END
$$;

-- TRUNCATE fires no row triggers: start the affected totals again from zero.
CREATE FUNCTION status_totals_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'schedules' THEN
        UPDATE status_totals SET schedules = 0, enabled = 0;
    ELSE
        UPDATE status_totals SET succeeded = 0, failed = 0, dead_lettered = 0, cancelled = 0,
            skipped = 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER status_totals_schedule_added_or_removed
    AFTER INSERT OR DELETE ON schedules DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION status_totals_on_schedules();
CREATE CONSTRAINT TRIGGER status_totals_schedule_enabled
    AFTER UPDATE OF enabled ON schedules DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled)
    EXECUTE FUNCTION status_totals_on_schedules();
-- A create inserts a row of zeros: nothing to add.
CREATE CONSTRAINT TRIGGER status_totals_stats_added
    AFTER INSERT ON schedule_stats DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((NEW.succeeded, NEW.failed, NEW.dead_lettered, NEW.cancelled, NEW.skipped)
                       IS DISTINCT FROM (0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint))
    EXECUTE FUNCTION status_totals_on_stats();
CREATE CONSTRAINT TRIGGER status_totals_stats_changed
    AFTER UPDATE ON schedule_stats DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((OLD.succeeded, OLD.failed, OLD.dead_lettered, OLD.cancelled, OLD.skipped)
                       IS DISTINCT FROM
                       (NEW.succeeded, NEW.failed, NEW.dead_lettered, NEW.cancelled, NEW.skipped))
    EXECUTE FUNCTION status_totals_on_stats();
-- Deleting a schedule cascades here, which takes its runs out of the totals.
CREATE CONSTRAINT TRIGGER status_totals_stats_removed
    AFTER DELETE ON schedule_stats DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((OLD.succeeded, OLD.failed, OLD.dead_lettered, OLD.cancelled, OLD.skipped)
                       IS DISTINCT FROM (0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint))
    EXECUTE FUNCTION status_totals_on_stats();
CREATE TRIGGER status_totals_schedules_truncated AFTER TRUNCATE ON schedules
    FOR EACH STATEMENT EXECUTE FUNCTION status_totals_on_truncate();
CREATE TRIGGER status_totals_stats_truncated AFTER TRUNCATE ON schedule_stats
    FOR EACH STATEMENT EXECUTE FUNCTION status_totals_on_truncate();

-- Backfill: the existing rows go to shard 0, the other shards start at zero.
INSERT INTO status_totals (shard) SELECT generate_series(1, 255);
INSERT INTO status_totals (shard, schedules, enabled, succeeded, failed, dead_lettered,
                           cancelled, skipped)
SELECT 0,
       (SELECT count(*) FROM schedules),
       (SELECT count(*) FROM schedules WHERE enabled),
       coalesce(sum(succeeded), 0), coalesce(sum(failed), 0), coalesce(sum(dead_lettered), 0),
       coalesce(sum(cancelled), 0), coalesce(sum(skipped), 0)
FROM schedule_stats;
