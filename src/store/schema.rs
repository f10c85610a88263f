// @generated automatically by Diesel CLI.

diesel::table! {
    dead_letters (id) {
        id -> Text,
        run_id -> Text,
        schedule_id -> Text,
        occurrence_key -> Text,
        attempt -> Int4,
        reason -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    execution_receipts (id) {
        id -> Text,
        run_id -> Text,
        receipt_kind -> Text,
        content_type -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    schedule_runs (id) {
        id -> Text,
        schedule_id -> Text,
        occurrence_key -> Text,
        nominal_time -> Timestamptz,
        due_time -> Timestamptz,
        status -> Text,
        attempt -> Int4,
        claimed_by_worker_id -> Nullable<Text>,
        claim_expires_at -> Nullable<Timestamptz>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        http_status_code -> Nullable<Int4>,
        exit_code -> Nullable<Int4>,
        result_json -> Nullable<Jsonb>,
        error_text -> Nullable<Text>,
        retry_available_at -> Nullable<Timestamptz>,
        trigger_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        origin -> Text,
    }
}

diesel::table! {
    schedules (id) {
        id -> Text,
        name -> Text,
        enabled -> Bool,
        timezone -> Text,
        schedule_kind -> Text,
        cron_expr -> Nullable<Text>,
        every_seconds -> Nullable<Int8>,
        anchor_at -> Nullable<Timestamptz>,
        once_at -> Nullable<Timestamptz>,
        target_kind -> Text,
        target -> Jsonb,
        overlap_policy -> Text,
        misfire_policy -> Text,
        timeout_seconds -> Int4,
        max_concurrency -> Int4,
        retry_max_attempts -> Int4,
        retry_strategy -> Text,
        retry_initial_delay_seconds -> Int4,
        retry_max_delay_seconds -> Int4,
        start_at -> Nullable<Timestamptz>,
        end_at -> Nullable<Timestamptz>,
        paused_at -> Nullable<Timestamptz>,
        next_run_at -> Nullable<Timestamptz>,
        last_run_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        labels -> Jsonb,
        description -> Nullable<Text>,
        jitter_seconds -> Int4,
        pause_note -> Nullable<Text>,
        max_occurrences -> Nullable<Int4>,
        occurrences_remaining -> Nullable<Int4>,
    }
}

diesel::table! {
    schedule_stats (schedule_id) {
        schedule_id -> Text,
        runs_total -> Int8,
        succeeded -> Int8,
        failed -> Int8,
        dead_lettered -> Int8,
        cancelled -> Int8,
        skipped -> Int8,
        last_status -> Nullable<Text>,
        last_run_id -> Nullable<Text>,
        last_finished_at -> Nullable<Timestamptz>,
        last_duration_ms -> Nullable<Int8>,
    }
}

diesel::table! {
    worker_leases (run_id) {
        run_id -> Text,
        worker_id -> Text,
        acquired_at -> Timestamptz,
        renewed_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(dead_letters -> schedule_runs (run_id));
diesel::joinable!(dead_letters -> schedules (schedule_id));
diesel::joinable!(execution_receipts -> schedule_runs (run_id));
diesel::joinable!(schedule_runs -> schedules (schedule_id));
diesel::joinable!(schedule_stats -> schedules (schedule_id));
diesel::joinable!(worker_leases -> schedule_runs (run_id));

diesel::allow_tables_to_appear_in_same_query!(
    dead_letters,
    execution_receipts,
    schedule_runs,
    schedule_stats,
    schedules,
    worker_leases,
);
