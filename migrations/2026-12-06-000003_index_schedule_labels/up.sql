-- label_selector filters: @> (equality, in) and ? (exists) on the labels object.
CREATE INDEX CONCURRENTLY IF NOT EXISTS schedules_labels_idx ON schedules USING gin (labels);
