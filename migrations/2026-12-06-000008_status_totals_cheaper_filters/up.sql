-- The status totals' "this stats row holds runs" filter, in a form PostgreSQL reads back
-- faster. A trigger's WHEN is stored as a node tree and read back (parsed) once per
-- statement that fires the trigger, and a schedule's delete cascades to its stats row in a
-- statement of its own: every delete parsed the old filter, a ROW(…) IS DISTINCT FROM
-- ROW(0::bigint, …) comparison of five columns (2,860 characters of node tree), for the
-- stats row of the schedule. That was ~5 % of all CPU and ~12 % of PostgreSQL's during the
-- bench's deletes (`perf`, benches/README.md "Deletes: …").
--
-- The new filter is the counters OR-ed bit by bit, compared with 0 (1,341 characters):
-- non-zero exactly when one of them is (the counters are NOT NULL bigint; a | b = 0 only
-- when a = 0 and b = 0, negative values included), so the same rows fire the same
-- function as before. Nothing else changes: the triggers stay deferred row triggers,
-- adding to the connection's shard at commit (see 2026-12-06-000007_status_totals for why
-- that cannot deadlock). Drop and create in one transaction (diesel runs each migration
-- in one), so no writer commits between them uncounted.

DROP TRIGGER status_totals_stats_added ON schedule_stats;
DROP TRIGGER status_totals_stats_removed ON schedule_stats;

-- A create inserts a row of zeros: nothing to add.
CREATE CONSTRAINT TRIGGER status_totals_stats_added
    AFTER INSERT ON schedule_stats DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((NEW.succeeded | NEW.failed | NEW.dead_lettered | NEW.cancelled
                        | NEW.skipped) <> 0)
    EXECUTE FUNCTION status_totals_on_stats();
-- Deleting a schedule cascades here, which takes its runs out of the totals.
CREATE CONSTRAINT TRIGGER status_totals_stats_removed
    AFTER DELETE ON schedule_stats DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((OLD.succeeded | OLD.failed | OLD.dead_lettered | OLD.cancelled
                        | OLD.skipped) <> 0)
    EXECUTE FUNCTION status_totals_on_stats();
