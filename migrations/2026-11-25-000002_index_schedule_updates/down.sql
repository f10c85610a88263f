DROP INDEX schedules_updated_idx;
