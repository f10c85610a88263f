-- The workflow_id filter: workflow targets by handler id, in list order.
CREATE INDEX CONCURRENTLY IF NOT EXISTS schedules_workflow_id_idx
    ON schedules ((target ->> 'workflow_id'), created_at DESC, id DESC)
    WHERE target_kind = 'workflow';
