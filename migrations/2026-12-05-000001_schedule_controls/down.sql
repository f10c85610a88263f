ALTER TABLE schedule_runs DROP COLUMN origin;
ALTER TABLE schedules
    DROP COLUMN occurrences_remaining,
    DROP COLUMN max_occurrences,
    DROP COLUMN pause_note,
    DROP COLUMN jitter_seconds;
