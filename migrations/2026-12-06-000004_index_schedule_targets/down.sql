DROP INDEX CONCURRENTLY IF EXISTS schedules_target_kind_idx;
