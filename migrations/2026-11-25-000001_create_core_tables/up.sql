-- The scheduler's durable state: schedules, the append-only run ledger, leases,
-- dead letters and execution receipts. Every child row cascades with its schedule.

CREATE TABLE schedules (
    id                          text PRIMARY KEY,
    name                        text NOT NULL,
    enabled                     boolean NOT NULL,
    timezone                    text NOT NULL,
    schedule_kind               text NOT NULL CHECK (schedule_kind IN ('cron', 'interval', 'once')),
    cron_expr                   text,
    every_seconds               bigint CHECK (every_seconds > 0),
    anchor_at                   timestamptz,
    once_at                     timestamptz,
    target_kind                 text NOT NULL CHECK (target_kind IN ('http', 'shell', 'workflow')),
    target                      jsonb NOT NULL,
    overlap_policy              text NOT NULL CHECK (overlap_policy IN ('forbid', 'allow', 'queue_latest', 'replace')),
    misfire_policy              text NOT NULL CHECK (misfire_policy IN ('skip', 'run_once_if_late', 'catch_up')),
    timeout_seconds             integer NOT NULL CHECK (timeout_seconds > 0),
    max_concurrency             integer NOT NULL CHECK (max_concurrency >= 1),
    retry_max_attempts          integer NOT NULL CHECK (retry_max_attempts >= 0),
    retry_strategy              text NOT NULL CHECK (retry_strategy IN ('exponential', 'none')),
    retry_initial_delay_seconds integer NOT NULL,
    retry_max_delay_seconds     integer NOT NULL,
    start_at                    timestamptz,
    end_at                      timestamptz,
    paused_at                   timestamptz,
    next_run_at                 timestamptz,
    last_run_at                 timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    CONSTRAINT schedules_name_key UNIQUE (name),
    CONSTRAINT schedules_cadence_shape CHECK (
        (schedule_kind = 'cron' AND cron_expr IS NOT NULL)
        OR (schedule_kind = 'interval' AND every_seconds IS NOT NULL AND anchor_at IS NOT NULL)
        OR (schedule_kind = 'once' AND once_at IS NOT NULL)
    )
);
CREATE INDEX schedules_listing_idx ON schedules (created_at DESC, id DESC);
CREATE INDEX schedules_next_run_idx ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;

CREATE TABLE schedule_runs (
    id                   text PRIMARY KEY,
    schedule_id          text NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    occurrence_key       text NOT NULL,
    nominal_time         timestamptz NOT NULL,
    due_time             timestamptz NOT NULL,
    status               text NOT NULL CHECK (status IN ('pending', 'claimed', 'running', 'succeeded', 'failed',
                                                         'retry_scheduled', 'dead_lettered', 'cancelled', 'skipped')),
    attempt              integer NOT NULL CHECK (attempt >= 1),
    claimed_by_worker_id text,
    claim_expires_at     timestamptz,
    started_at           timestamptz,
    finished_at          timestamptz,
    http_status_code     integer,
    exit_code            integer,
    result_json          jsonb,
    error_text           text,
    retry_available_at   timestamptz,
    trigger_reason       text,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    CONSTRAINT schedule_runs_occurrence_attempt_key UNIQUE (occurrence_key, attempt)
);
CREATE INDEX schedule_runs_listing_idx ON schedule_runs (created_at DESC, id DESC);
CREATE INDEX schedule_runs_schedule_listing_idx ON schedule_runs (schedule_id, created_at DESC, id DESC);
CREATE INDEX schedule_runs_status_idx ON schedule_runs (status, created_at DESC, id DESC);
-- Runs that still have to happen, in due order (claiming and start-up recovery).
CREATE INDEX schedule_runs_waiting_idx ON schedule_runs (schedule_id, due_time)
    WHERE status IN ('pending', 'retry_scheduled', 'claimed', 'running');

CREATE TABLE worker_leases (
    run_id      text PRIMARY KEY REFERENCES schedule_runs (id) ON DELETE CASCADE,
    worker_id   text NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX worker_leases_expiry_idx ON worker_leases (expires_at);
CREATE INDEX worker_leases_worker_idx ON worker_leases (worker_id);

CREATE TABLE dead_letters (
    id             text PRIMARY KEY,
    run_id         text NOT NULL REFERENCES schedule_runs (id) ON DELETE CASCADE,
    schedule_id    text NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    occurrence_key text NOT NULL,
    attempt        integer NOT NULL,
    reason         text NOT NULL,
    payload        jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    CONSTRAINT dead_letters_run_key UNIQUE (run_id)
);
CREATE INDEX dead_letters_schedule_idx ON dead_letters (schedule_id, created_at DESC);

CREATE TABLE execution_receipts (
    id           text PRIMARY KEY,
    run_id       text NOT NULL REFERENCES schedule_runs (id) ON DELETE CASCADE,
    receipt_kind text NOT NULL CHECK (receipt_kind IN ('stdout', 'stderr', 'http_response', 'workflow_result', 'summary')),
    content_type text NOT NULL,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX execution_receipts_run_idx ON execution_receipts (run_id, created_at, id);
