-- Every claim counts the schedule's active runs under its row lock. The waiting index
-- also holds every pending run, so with a backlog that count read each pending row's
-- heap tuple: O(backlog) per claim. This index holds only the active ones.
CREATE INDEX schedule_runs_active_idx ON schedule_runs (schedule_id)
    WHERE status IN ('claimed', 'running');
