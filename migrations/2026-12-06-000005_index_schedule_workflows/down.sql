DROP INDEX CONCURRENTLY IF EXISTS schedules_workflow_id_idx;
