-- target_kind and workflow_id filters, in list order (newest first).
CREATE INDEX CONCURRENTLY IF NOT EXISTS schedules_target_kind_idx
    ON schedules (target_kind, created_at DESC, id DESC);
