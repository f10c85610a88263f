DROP TABLE schedule_stats;
ALTER TABLE schedules DROP COLUMN description, DROP COLUMN labels;
