DROP TRIGGER status_totals_stats_added ON schedule_stats;
DROP TRIGGER status_totals_stats_removed ON schedule_stats;

CREATE CONSTRAINT TRIGGER status_totals_stats_added
    AFTER INSERT ON schedule_stats DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((NEW.succeeded, NEW.failed, NEW.dead_lettered, NEW.cancelled, NEW.skipped)
                       IS DISTINCT FROM (0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint))
    EXECUTE FUNCTION status_totals_on_stats();
CREATE CONSTRAINT TRIGGER status_totals_stats_removed
    AFTER DELETE ON schedule_stats DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((OLD.succeeded, OLD.failed, OLD.dead_lettered, OLD.cancelled, OLD.skipped)
                       IS DISTINCT FROM (0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint))
    EXECUTE FUNCTION status_totals_on_stats();
