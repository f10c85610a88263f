DROP TABLE execution_receipts;
DROP TABLE dead_letters;
DROP TABLE worker_leases;
DROP TABLE schedule_runs;
DROP TABLE schedules;
