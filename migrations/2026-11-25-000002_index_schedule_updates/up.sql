-- Each node's supervisor picks up schedules changed by other nodes by updated_at.
CREATE INDEX schedules_updated_idx ON schedules (updated_at);
