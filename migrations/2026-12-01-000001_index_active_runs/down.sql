DROP INDEX schedule_runs_active_idx;
