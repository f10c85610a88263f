//! Provides claims, leases and run completion: the transactions that move a run through
//! its lifecycle (claim + lease, start, renew, finish + retry or dead letter, recovery).
//!
//! Each must-not-half-happen change is one transaction here; callers never stitch them.
//! Every update is guarded by the status it expects, so a run that recovery or another
//! node already moved on is never overwritten.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use super::runs::{self, DeadLetterRow, ReceiptRow, RunRow};
use super::schema::{schedule_runs, schedules, worker_leases};
use super::stats::StatsDelta;
use super::{statements, StoreError};
use crate::domain::backoff::{after_failure, AfterFailure};
use crate::domain::ids::{self, RunId, ScheduleId};
use crate::domain::{RetryPolicy, RunStatus};

/// The `error_text` of a run whose owner died while it ran.
pub const LEASE_EXPIRED: &str = "worker lease expired during execution";

/// One row of `worker_leases`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = worker_leases, check_for_backend(diesel::pg::Pg))]
pub struct LeaseRow {
    pub run_id: String,
    pub worker_id: String,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The result of trying to claim one run.
#[derive(Debug)]
pub enum Claim {
    /// Claimed, with a lease, and started; the run row as it is now.
    Won(Box<RunRow>),
    /// The schedule's active runs already fill `max_concurrency` (possibly on other nodes).
    NoCapacity,
    /// The run is no longer waiting (another claimant won, it was skipped, or deleted),
    /// or it is not due yet.
    Gone,
}

/// One run to claim: its id and its schedule's.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub run_id: String,
    pub schedule_id: String,
}

/// Claims a batch of waiting runs and starts the ones won, in one transaction whatever the
/// batch size: lock the batch's schedule rows in id order (serialising claimers of each
/// schedule across nodes, deadlock-free), count each one's active runs, admit the runs
/// still waiting and due in request order while `active < max_concurrency`, move the
/// admitted ones to `running` (claimed by `worker_id`, `started_at` now) and insert their
/// leases. Two claimants can never both win a run, nor together exceed a schedule's
/// capacity, and a run executes only once this is durable. (Claim and start used to be two
/// transactions; a crash between the commit and the execution leaves a `running` run whose
/// lease expires, failed and retried by the rules, as a crash just after the second
/// commit always did.)
///
/// Returns one [`Claim`] per request, in order; `Won` runs are `running` now.
pub fn claim_and_start(
    conn: &mut PgConnection,
    requests: &[ClaimRequest],
    worker_id: &str,
    ttl: Duration,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Vec<Claim>, StoreError> {
    let now = now();
    let mut schedule_ids: Vec<&str> = requests.iter().map(|r| r.schedule_id.as_str()).collect();
    schedule_ids.sort_unstable();
    schedule_ids.dedup();
    let run_ids: Vec<&str> = requests.iter().map(|r| r.run_id.as_str()).collect();
    conn.transaction(|conn| {
        let capacity = lock_capacities(conn, &schedule_ids)?;
        let (active, eligible) = admission(conn, &schedule_ids, &run_ids, now)?;
        let (mut claims, admitted) = admit(requests, &capacity, active, &eligible);
        let won = start_with_leases(conn, &admitted, worker_id, now, now + ttl)?;
        let mut won: HashMap<String, RunRow> = won.into_iter().map(|r| (r.id.clone(), r)).collect();
        for (r, c) in requests.iter().zip(claims.iter_mut()) {
            if c.is_none() {
                *c = Some(match won.remove(&r.run_id) {
                    Some(run) => Claim::Won(Box::new(run)),
                    // Admitted, but no longer waiting (another claimant won, skipped,
                    // deleted) or not due yet.
                    None => Claim::Gone,
                });
            }
        }
        Ok(claims.into_iter().flatten().collect())
    })
}

/// Locks the schedules' rows in id order and reads each one's `max_concurrency`.
/// `FOR NO KEY UPDATE`: claimers of a schedule serialise (and a DELETE waits), while
/// inserts of its runs (triggers, retry rows) take their foreign-key share lock.
fn lock_capacities(
    conn: &mut PgConnection,
    schedule_ids: &[&str],
) -> Result<HashMap<String, i32>, StoreError> {
    Ok(schedules::table
        .filter(schedules::id.eq_any(schedule_ids))
        .select((schedules::id, schedules::max_concurrency))
        .order(schedules::id.asc())
        .for_no_key_update()
        .load::<(String, i32)>(conn)?
        .into_iter()
        .collect())
}

/// One row of [`admission`]: a schedule's active runs (`kind` = `active`, `key` the
/// schedule id) or a requested run still waiting and due (`due`, `key` the run id).
#[derive(QueryableByName)]
struct AdmissionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// What admission needs once the schedules are locked, read in one round trip (a
/// statement started after the locks sees every claim committed before them): each
/// schedule's active runs (claimed or running, on any node), and which requested runs
/// still wait and are due — only those may take a capacity slot ([`start_with_leases`]
/// re-checks against anything else). How the statement reads them:
/// [`statements::Admission`].
fn admission(
    conn: &mut PgConnection,
    schedule_ids: &[&str],
    run_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<(HashMap<String, i64>, HashSet<String>), StoreError> {
    let rows: Vec<AdmissionRow> = statements::Admission {
        schedule_ids,
        run_ids,
        now,
    }
    .load(conn)?;
    let mut active = HashMap::new();
    let mut due = HashSet::new();
    for row in rows {
        if row.kind == "active" {
            active.insert(row.key, row.n);
        } else {
            due.insert(row.key);
        }
    }
    Ok((active, due))
}

/// Admits eligible runs in request order while their schedule has capacity. Returns the
/// decided claims (`None` for an admitted run, decided once it is marked) and the
/// admitted run ids.
fn admit<'r>(
    requests: &'r [ClaimRequest],
    capacity: &HashMap<String, i32>,
    mut active: HashMap<String, i64>,
    eligible: &HashSet<String>,
) -> (Vec<Option<Claim>>, Vec<&'r str>) {
    let mut claims = Vec::with_capacity(requests.len());
    let mut admitted = Vec::new();
    for r in requests {
        let Some(&max) = capacity.get(&r.schedule_id) else {
            claims.push(Some(Claim::Gone));
            continue;
        };
        if !eligible.contains(&r.run_id) {
            claims.push(Some(Claim::Gone));
            continue;
        }
        let n = active.entry(r.schedule_id.clone()).or_insert(0);
        if *n >= i64::from(max) {
            claims.push(Some(Claim::NoCapacity));
        } else {
            *n += 1;
            admitted.push(r.run_id.as_str());
            claims.push(None);
        }
    }
    (claims, admitted)
}

/// Moves the admitted runs that are still waiting and due to `running`, claimed by
/// `worker_id` and started now, and inserts (or takes over) their leases: one statement of
/// one shape whatever the batch size.
fn start_with_leases(
    conn: &mut PgConnection,
    admitted: &[&str],
    worker_id: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<Vec<RunRow>, StoreError> {
    if admitted.is_empty() {
        return Ok(Vec::new());
    }
    Ok(statements::StartWithLeases {
        run_ids: admitted,
        worker_id,
        now,
        expires,
    }
    .load::<RunRow>(conn)?)
}

/// Extends this worker's lease; `false` when the lease is gone (recovered by someone else).
pub fn renew(
    conn: &mut PgConnection,
    run_id: RunId<'_>,
    worker_id: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let expires = now + ttl;
    conn.transaction(|conn| {
        let n = diesel::update(
            worker_leases::table
                .find(run_id.as_str())
                .filter(worker_leases::worker_id.eq(worker_id)),
        )
        .set((
            worker_leases::renewed_at.eq(now),
            worker_leases::expires_at.eq(expires),
        ))
        .execute(conn)?;
        if n == 1 {
            diesel::update(schedule_runs::table.find(run_id.as_str()))
                .set(schedule_runs::claim_expires_at.eq(expires))
                .execute(conn)?;
        }
        Ok(n == 1)
    })
}

/// How an execution ended, as the store records it.
#[derive(Debug, Clone)]
pub struct Completion {
    /// `Succeeded`, `Failed` or `Cancelled`.
    pub status: RunStatus,
    pub http_status_code: Option<i32>,
    pub exit_code: Option<i32>,
    pub result_json: Option<serde_json::Value>,
    pub error_text: Option<String>,
    pub receipts: Vec<ReceiptRow>,
}

impl Completion {
    /// The same outcome with every U+0000 replaced by U+FFFD: a target may print NUL bytes
    /// (binary output, `\u0000` in a JSON result), and PostgreSQL stores NUL in neither
    /// `text` nor `jsonb`. Without this the outcome of such a run could not be recorded.
    fn storable(mut self) -> Completion {
        self.error_text = self.error_text.map(storable_text);
        self.result_json = self.result_json.map(storable_json);
        for r in &mut self.receipts {
            if r.body.contains('\0') {
                r.body = storable_text(std::mem::take(&mut r.body));
            }
        }
        self
    }
}

fn storable_text(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

fn storable_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(storable_text(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (storable_text(k), storable_json(v)))
                .collect(),
        ),
        other => other,
    }
}

/// What finishing a run led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// Recorded with this final status; `retry` is the new `retry_scheduled` run, if any.
    Recorded {
        status: RunStatus,
        retry: Option<(String, DateTime<Utc>)>,
    },
    /// The run had already been moved on (recovered, deleted): nothing written.
    Lost,
}

/// Records how a batch of this worker's runs ended, in ONE transaction: each run's outcome
/// and receipts, its retry row or dead letter, and the release of the leases. All or
/// nothing: if any write fails, none is kept (the caller may then record them one by one).
/// Returns one [`Finished`] per item, in order; `Lost` for a run already moved on
/// (recovered, deleted), for which nothing is written.
pub fn finish(
    conn: &mut PgConnection,
    items: Vec<(String, Completion)>,
    worker_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Finished>, StoreError> {
    conn.transaction(|conn| {
        let ids: Vec<&str> = items.iter().map(|(id, _)| id.as_str()).collect();
        let mut runs: HashMap<String, RunRow> = schedule_runs::table
            .filter(schedule_runs::id.eq_any(&ids))
            .filter(schedule_runs::status.eq_any(RunStatus::ACTIVE))
            .filter(schedule_runs::claimed_by_worker_id.eq(worker_id))
            .select(RunRow::as_select())
            .order(schedule_runs::id.asc())
            .for_update()
            .load(conn)?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut schedule_ids: Vec<&str> = runs.values().map(|r| r.schedule_id.as_str()).collect();
        schedule_ids.sort_unstable();
        schedule_ids.dedup();
        let policies = retry_policies_of(conn, &schedule_ids)?;
        let released: Vec<String> = runs.keys().cloned().collect();
        let mut stats = StatsDelta::default();
        let mut outcomes = Outcomes::default();
        let mut out = Vec::with_capacity(items.len());
        for (id, completion) in items {
            let Some(run) = runs.remove(&id) else {
                out.push(Finished::Lost);
                continue;
            };
            let policy = policies
                .get(&run.schedule_id)
                .cloned()
                .ok_or(StoreError::NotFound)?;
            out.push(end_run(
                conn,
                &run,
                completion,
                policy,
                now,
                &mut outcomes,
                &mut stats,
            )?);
        }
        outcomes.write(conn, now)?;
        diesel::delete(worker_leases::table.filter(worker_leases::run_id.eq_any(&released)))
            .execute(conn)?;
        stats.apply(conn)?;
        Ok(out)
    })
}

/// The retry policies of `schedule_ids`, in one query.
fn retry_policies_of(
    conn: &mut PgConnection,
    schedule_ids: &[&str],
) -> Result<HashMap<String, RetryPolicy>, StoreError> {
    if schedule_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i32, String, i32, i32)> = schedules::table
        .filter(schedules::id.eq_any(schedule_ids))
        .select((
            schedules::id,
            schedules::retry_max_attempts,
            schedules::retry_strategy,
            schedules::retry_initial_delay_seconds,
            schedules::retry_max_delay_seconds,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, max_attempts, strategy, initial, max)| {
            Ok((
                id,
                RetryPolicy {
                    max_attempts,
                    strategy: strategy.parse().map_err(StoreError::Corrupt)?,
                    initial_delay_seconds: initial,
                    max_delay_seconds: max,
                },
            ))
        })
        .collect()
}

fn retry_policy_of(conn: &mut PgConnection, schedule_id: &str) -> Result<RetryPolicy, StoreError> {
    retry_policies_of(conn, &[schedule_id])?
        .remove(schedule_id)
        .ok_or(StoreError::NotFound)
}

/// Writes the terminal state of `run` plus its retry row or dead letter, and counts it in
/// `stats` (which the caller applies last). Part of a caller's transaction.
/// The outcomes of a batch of ended runs and their receipts, written set-based by
/// [`Outcomes::write`]: one `UPDATE … FROM unnest(…)` for every run, one multi-row insert
/// for every receipt, however many runs the batch holds.
#[derive(Default)]
struct Outcomes {
    ids: Vec<String>,
    statuses: Vec<&'static str>,
    http_status_codes: Vec<Option<i32>>,
    exit_codes: Vec<Option<i32>>,
    results: Vec<Option<serde_json::Value>>,
    errors: Vec<Option<String>>,
    receipts: Vec<ReceiptRow>,
}

impl Outcomes {
    fn push(&mut self, run_id: &str, status: RunStatus, c: Completion) {
        self.ids.push(run_id.to_string());
        self.statuses.push(status.as_str());
        self.http_status_codes.push(c.http_status_code);
        self.exit_codes.push(c.exit_code);
        self.results.push(c.result_json);
        self.errors.push(c.error_text);
        self.receipts.extend(c.receipts);
    }

    /// Writes every outcome (status, finish time, results; the claim's expiry cleared)
    /// and every receipt. Part of the caller's transaction.
    fn write(self, conn: &mut PgConnection, now: DateTime<Utc>) -> Result<(), StoreError> {
        use diesel::sql_types::{Array, Int4, Jsonb, Nullable, Text, Timestamptz};
        if !self.ids.is_empty() {
            diesel::sql_query(
                "UPDATE schedule_runs AS r SET status = u.status, finished_at = $7, \
                 http_status_code = u.http_status_code, exit_code = u.exit_code, \
                 result_json = u.result_json, error_text = u.error_text, \
                 claim_expires_at = NULL, updated_at = $7 \
                 FROM unnest($1::text[], $2::text[], $3::int4[], $4::int4[], $5::jsonb[], \
                 $6::text[]) AS u(id, status, http_status_code, exit_code, result_json, \
                 error_text) WHERE r.id = u.id",
            )
            .bind::<Array<Text>, _>(&self.ids)
            .bind::<Array<Text>, _>(&self.statuses)
            .bind::<Array<Nullable<Int4>>, _>(&self.http_status_codes)
            .bind::<Array<Nullable<Int4>>, _>(&self.exit_codes)
            .bind::<Array<Nullable<Jsonb>>, _>(&self.results)
            .bind::<Array<Nullable<Text>>, _>(&self.errors)
            .bind::<Timestamptz, _>(now)
            .execute(conn)?;
        }
        runs::insert_receipts(conn, &self.receipts)
    }
}

fn end_run(
    conn: &mut PgConnection,
    run: &RunRow,
    c: Completion,
    retry: RetryPolicy,
    now: DateTime<Utc>,
    outcomes: &mut Outcomes,
    stats: &mut StatsDelta,
) -> Result<Finished, StoreError> {
    let c = c.storable();
    let mut status = c.status;
    let mut retry_row = None;
    if status == RunStatus::Failed {
        match after_failure(&retry, run.attempt) {
            AfterFailure::Retry {
                next_attempt,
                delay_seconds,
            } => {
                let due = now + Duration::seconds(delay_seconds);
                let mut next = RunRow::new(
                    ScheduleId(&run.schedule_id),
                    run.occurrence_key.clone(),
                    run.nominal_time,
                    due,
                    RunStatus::RetryScheduled,
                    next_attempt,
                    now,
                );
                next.retry_available_at = Some(due);
                next.trigger_reason = run.trigger_reason.clone();
                next.origin = run.origin.clone();
                if runs::insert_if_absent(conn, &next)? {
                    retry_row = Some((next.id, due));
                }
            }
            AfterFailure::DeadLetter => {
                status = RunStatus::DeadLettered;
                let payload = schedules::table
                    .find(&run.schedule_id)
                    .select(schedules::target)
                    .first::<serde_json::Value>(conn)?;
                runs::insert_dead_letter(
                    conn,
                    &DeadLetterRow {
                        id: ids::dead_letter_id(),
                        run_id: run.id.clone(),
                        schedule_id: run.schedule_id.clone(),
                        occurrence_key: run.occurrence_key.clone(),
                        attempt: run.attempt,
                        reason: c.error_text.clone().unwrap_or_else(|| "failed".into()),
                        payload,
                        created_at: now,
                    },
                )?;
            }
        }
    }
    outcomes.push(&run.id, status, c);
    stats.ended(run, status, now);
    Ok(Finished::Recorded {
        status,
        retry: retry_row,
    })
}

/// A run moved on by recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub run_id: String,
    pub schedule_id: String,
    /// `pending` (was claimed, never started) or the failed run's final status.
    pub status: RunStatus,
}

/// Recovers runs whose lease expired before `now`, or (at start-up) every lease held by
/// `own_worker` whatever its expiry: a `claimed` run goes back to `pending`; a `running` run
/// fails with [`LEASE_EXPIRED`] and is retried or dead-lettered. One transaction per run,
/// with `SKIP LOCKED` so several reapers never fight over a lease.
pub fn recover_expired(
    conn: &mut PgConnection,
    own_worker: Option<&str>,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<Recovered>, StoreError> {
    let mut out = Vec::new();
    loop {
        let step = conn.transaction(|conn| {
            let own = own_worker.unwrap_or("").to_string();
            let leases: Vec<LeaseRow> = worker_leases::table
                .select(LeaseRow::as_select())
                .filter(
                    worker_leases::expires_at
                        .lt(now)
                        .or(worker_leases::worker_id
                            .eq(own)
                            .and(own_worker.is_some().into_sql::<diesel::sql_types::Bool>())),
                )
                .limit(batch)
                .for_update()
                .skip_locked()
                .load(conn)?;
            let mut recovered = Vec::new();
            let mut stats = StatsDelta::default();
            let mut outcomes = Outcomes::default();
            for lease in &leases {
                let run: Option<RunRow> = schedule_runs::table
                    .find(&lease.run_id)
                    .select(RunRow::as_select())
                    .for_update()
                    .first(conn)
                    .optional()?;
                diesel::delete(worker_leases::table.find(&lease.run_id)).execute(conn)?;
                let Some(run) = run else { continue };
                match run.status {
                    RunStatus::Claimed => {
                        diesel::update(schedule_runs::table.find(&run.id))
                            .set((
                                schedule_runs::status.eq(RunStatus::Pending),
                                schedule_runs::claimed_by_worker_id.eq(None::<String>),
                                schedule_runs::claim_expires_at.eq(None::<DateTime<Utc>>),
                                schedule_runs::updated_at.eq(now),
                            ))
                            .execute(conn)?;
                        recovered.push(Recovered {
                            run_id: run.id,
                            schedule_id: run.schedule_id,
                            status: RunStatus::Pending,
                        });
                    }
                    RunStatus::Running => {
                        let retry = retry_policy_of(conn, &run.schedule_id)?;
                        let completion = Completion {
                            status: RunStatus::Failed,
                            http_status_code: None,
                            exit_code: None,
                            result_json: None,
                            error_text: Some(LEASE_EXPIRED.to_string()),
                            receipts: Vec::new(),
                        };
                        let ended = end_run(
                            conn,
                            &run,
                            completion,
                            retry,
                            now,
                            &mut outcomes,
                            &mut stats,
                        )?;
                        let status = match ended {
                            Finished::Recorded { status, .. } => status,
                            Finished::Lost => RunStatus::Failed,
                        };
                        recovered.push(Recovered {
                            run_id: run.id,
                            schedule_id: run.schedule_id,
                            status,
                        });
                    }
                    _ => {}
                }
            }
            outcomes.write(conn, now)?;
            stats.apply(conn)?;
            Ok::<_, StoreError>((leases.len(), recovered))
        })?;
        out.extend(step.1);
        if (step.0 as i64) < batch {
            return Ok(out);
        }
    }
}

/// Number of leases held now, and of those already expired.
pub fn lease_counts(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<(i64, i64), StoreError> {
    let active = worker_leases::table.count().get_result(conn)?;
    let expired = worker_leases::table
        .filter(worker_leases::expires_at.lt(now))
        .count()
        .get_result(conn)?;
    Ok((active, expired))
}
