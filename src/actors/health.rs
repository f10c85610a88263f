//! Provides the `HealthBoard`: running aggregates of every schedule actor's health (state
//! counts, the earliest armed timer, restarts, fire lag, the unhealthy list), updated by
//! the actors as they change so that reading it never asks 100,000 actors anything.
//!
//! Shared behind a mutex; actors write on state changes, `/v1/status` and metrics read.
//! Each actor also publishes its live view here (queues, last fire, last error), so that
//! `GET /v1/schedules/{id}` reads it without a message to a possibly busy actor.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::schedule::{ActorSnapshot, ActorState};
use crate::domain::RunStatus;
use crate::metrics::Metrics;

/// A timer this late is reported as overdue.
const OVERDUE_AFTER: Duration = Duration::seconds(5);
/// This many failed runs in a row make a schedule unhealthy.
const FAILURES_UNHEALTHY: u32 = 3;
/// This many restarts make a schedule unhealthy.
const RESTARTS_UNHEALTHY: u32 = 3;
/// Fire lags kept for percentiles.
const LAG_WINDOW: usize = 4096;

const STATES: [ActorState; 5] = [
    ActorState::Armed,
    ActorState::Firing,
    ActorState::Paused,
    ActorState::Finished,
    ActorState::Restarting,
];

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    state: ActorState,
    next_fire: Option<DateTime<Utc>>,
    failures_in_a_row: u32,
    dead_letters: u32,
    restarts: u32,
    /// False until the actor has read its schedule and published (a view of an actor still
    /// loading would show nothing true).
    published: bool,
    /// `next_run_at` as last published.
    next_run_at: Option<DateTime<Utc>>,
    /// The rest of what it last published, with `next_run_at` left out; `None` while all
    /// of it is empty, as for an idle actor that never fired (saves a box per idle actor).
    live: Option<Box<Live>>,
}

/// What an actor last published about itself beyond its state (see
/// [`HealthBoard::publish`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    pub next_run_at: Option<DateTime<Utc>>,
    pub active_runs: u32,
    pub queued_runs: u32,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub last_fire_lag_ms: Option<f64>,
    pub last_error: Option<Box<str>>,
}

impl Entry {
    /// Why this schedule is unhealthy, apart from an overdue timer (which `armed` shows).
    fn unhealthy_reason(&self) -> Option<String> {
        if self.state == ActorState::Restarting || self.restarts >= RESTARTS_UNHEALTHY {
            Some(format!("restarted {} times", self.restarts))
        } else if self.dead_letters > 0 {
            Some(format!(
                "{} dead-lettered runs since the last success",
                self.dead_letters
            ))
        } else if self.failures_in_a_row >= FAILURES_UNHEALTHY {
            Some(format!("{} failed runs in a row", self.failures_in_a_row))
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Board {
    /// Keyed by the actor's own id (one shared allocation per schedule, see
    /// `ScheduleActor::new`), as is `armed`.
    entries: HashMap<Arc<str>, Entry>,
    /// Ids whose entry has an `unhealthy_reason`, kept up to date on every change so that
    /// a status read never walks every entry.
    unhealthy: BTreeSet<String>,
    counts: [usize; 5],
    armed: BTreeSet<(DateTime<Utc>, Arc<str>)>,
    restarts_total: u64,
    lags_ms: VecDeque<f64>,
    max_mailbox: usize,
    last_tick_at: Option<DateTime<Utc>>,
    workers_active: usize,
    workers_capacity: usize,
}

impl Board {
    /// Re-files `id` in the unhealthy set after its entry changed.
    fn track(&mut self, id: &str) {
        match self.entries.get(id).and_then(Entry::unhealthy_reason) {
            Some(_) => {
                if !self.unhealthy.contains(id) {
                    self.unhealthy.insert(id.to_string());
                }
            }
            None => {
                self.unhealthy.remove(id);
            }
        }
    }
}

fn slot(state: ActorState) -> usize {
    STATES.iter().position(|s| *s == state).unwrap_or(0)
}

/// One unhealthy schedule and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unhealthy {
    pub schedule_id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub state: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FireLag {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The `actors` block of `/v1/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActorsView {
    pub total: usize,
    pub armed: usize,
    pub paused: usize,
    pub firing: usize,
    pub finished: usize,
    pub restarting: usize,
    pub restarts_total: u64,
    pub max_mailbox: usize,
    pub fire_lag_ms: FireLag,
    pub unhealthy: Vec<Unhealthy>,
}

/// Scheduler-wide figures for `/v1/status`.
#[derive(Debug, Clone)]
pub struct BoardView {
    pub actors: ActorsView,
    pub next_due: Option<(String, DateTime<Utc>)>,
    pub last_tick_at: Option<DateTime<Utc>>,
    pub workers_active: usize,
    pub workers_capacity: usize,
}

pub struct HealthBoard {
    board: Mutex<Board>,
    metrics: Metrics,
}

impl HealthBoard {
    pub fn new(metrics: Metrics) -> HealthBoard {
        // Every state's series exists from the start, so a scrape shows 0, not nothing.
        for state in STATES {
            metrics
                .schedule_actors
                .with_label_values(&[state.as_str()])
                .set(0);
        }
        HealthBoard {
            board: Mutex::new(Board::default()),
            metrics,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> T {
        let mut guard = match self.board.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Records an actor's state and (when armed) its next fire; registers it if new.
    pub fn set_state(
        &self,
        id: &Arc<str>,
        name: &str,
        state: ActorState,
        next_fire: Option<DateTime<Utc>>,
        restarts: u32,
    ) {
        let next_fire = next_fire.filter(|_| state == ActorState::Armed);
        let metrics = &self.metrics;
        self.with(|b| {
            let previous = b.entries.get(&**id).map(|e| (e.state, e.next_fire));
            let entry = b.entries.entry(id.clone()).or_insert_with(|| Entry {
                name: String::new(),
                state,
                next_fire: None,
                failures_in_a_row: 0,
                dead_letters: 0,
                restarts,
                published: false,
                next_run_at: None,
                live: None,
            });
            if entry.name != name {
                entry.name = name.to_string();
            }
            entry.state = state;
            entry.restarts = restarts;
            entry.next_fire = next_fire;
            if let Some((old_state, old_fire)) = previous {
                if let Some(f) = old_fire {
                    b.armed.remove(&(f, id.clone()));
                }
                b.counts[slot(old_state)] = b.counts[slot(old_state)].saturating_sub(1);
                metrics
                    .schedule_actors
                    .with_label_values(&[old_state.as_str()])
                    .set(b.counts[slot(old_state)] as i64);
            }
            if let Some(f) = next_fire {
                b.armed.insert((f, id.clone()));
            }
            b.counts[slot(state)] += 1;
            metrics
                .schedule_actors
                .with_label_values(&[state.as_str()])
                .set(b.counts[slot(state)] as i64);
            b.track(id);
        });
    }

    pub fn remove(&self, id: &str) {
        let metrics = &self.metrics;
        self.with(|b| {
            b.unhealthy.remove(id);
            if let Some((key, e)) = b.entries.remove_entry(id) {
                b.counts[slot(e.state)] = b.counts[slot(e.state)].saturating_sub(1);
                if let Some(f) = e.next_fire {
                    b.armed.remove(&(f, key));
                }
                metrics
                    .schedule_actors
                    .with_label_values(&[e.state.as_str()])
                    .set(b.counts[slot(e.state)] as i64);
            }
        });
    }

    /// Counts wake-ups' occurrences found already materialised (a doubled timer).
    pub fn record_conflicts(&self, n: usize) {
        self.metrics.materialise_conflicts_total.inc_by(n as u64);
    }

    /// Records what actor `id` shows of itself now (an actor calls it whenever its queues,
    /// last fire or last error may have changed). Ignored for an unknown id.
    pub fn publish(&self, id: &str, live: Live) {
        self.with(|b| {
            if let Some(e) = b.entries.get_mut(id) {
                e.published = true;
                e.next_run_at = live.next_run_at;
                let rest = Live {
                    next_run_at: None,
                    ..live
                };
                match &mut e.live {
                    _ if rest == Live::default() => e.live = None,
                    Some(old) if **old == rest => {}
                    Some(old) => **old = rest,
                    None => e.live = Some(Box::new(rest)),
                }
            }
        });
    }

    /// The actor block of `GET /v1/schedules/{id}` as last published; `None` when no actor
    /// runs the schedule on this node, or it has not read its schedule yet.
    pub fn actor_view(&self, id: &str, now: DateTime<Utc>) -> Option<ActorSnapshot> {
        self.with(|b| {
            let e = b.entries.get(id).filter(|e| e.published)?;
            let idle = Live::default();
            let live = e.live.as_deref().unwrap_or(&idle);
            let next = e
                .next_run_at
                .filter(|_| e.state == ActorState::Armed || e.state == ActorState::Firing);
            Some(ActorSnapshot {
                state: e.state.as_str(),
                next_fire_in_ms: next.map(|n| (n - now).num_milliseconds().max(0)),
                active_runs: live.active_runs as usize,
                queued_runs: live.queued_runs as usize,
                last_fire_at: live.last_fire_at,
                last_fire_lag_ms: live.last_fire_lag_ms,
                restarts: e.restarts,
                last_error: live.last_error.as_deref().map(str::to_string),
            })
        })
    }

    pub fn record_fire_lag(&self, lag_ms: f64) {
        self.metrics
            .schedule_fire_lag_seconds
            .observe(lag_ms / 1000.0);
        self.with(|b| {
            if b.lags_ms.len() == LAG_WINDOW {
                b.lags_ms.pop_front();
            }
            b.lags_ms.push_back(lag_ms);
        });
    }

    pub fn record_run_end(&self, id: &str, status: RunStatus) {
        self.with(|b| {
            if let Some(e) = b.entries.get_mut(id) {
                match status {
                    RunStatus::Succeeded => {
                        e.failures_in_a_row = 0;
                        e.dead_letters = 0;
                    }
                    RunStatus::Failed => e.failures_in_a_row += 1,
                    RunStatus::DeadLettered => {
                        e.failures_in_a_row += 1;
                        e.dead_letters += 1;
                    }
                    _ => {}
                }
            }
            b.track(id);
        });
    }

    pub fn record_restart(&self) {
        self.metrics.schedule_actor_restarts_total.inc();
        self.with(|b| b.restarts_total += 1);
    }

    pub fn set_tick(&self, at: DateTime<Utc>, max_mailbox: usize) {
        self.with(|b| {
            b.last_tick_at = Some(at);
            b.max_mailbox = max_mailbox;
        });
    }

    pub fn set_workers(&self, active: usize, capacity: usize) {
        self.with(|b| {
            b.workers_active = active;
            b.workers_capacity = capacity;
        });
    }

    /// The actor state of each of `ids` on this node (`None`: no actor runs it here), for
    /// a page of schedules; one lookup each, no actor is asked.
    pub fn states_of(&self, ids: &[&str]) -> Vec<Option<&'static str>> {
        self.with(|b| {
            ids.iter()
                .map(|id| b.entries.get(*id).map(|e| e.state.as_str()))
                .collect()
        })
    }

    /// Everything `/v1/status` shows, from the aggregates (no per-actor scan).
    pub fn view(&self, now: DateTime<Utc>) -> BoardView {
        self.with(|b| {
            let mut unhealthy = Vec::new();
            for (fire, id) in b
                .armed
                .iter()
                .take_while(|(f, _)| *f < now - OVERDUE_AFTER)
                .take(50)
            {
                let name = b
                    .entries
                    .get(id)
                    .map(|e| e.name.clone())
                    .unwrap_or_default();
                unhealthy.push(Unhealthy {
                    schedule_id: id.to_string(),
                    name,
                    state: "armed",
                    reason: format!("timer overdue by {} ms", (now - *fire).num_milliseconds()),
                });
            }
            for id in &b.unhealthy {
                if unhealthy.len() >= 100 {
                    break;
                }
                if unhealthy.iter().any(|u| u.schedule_id == *id) {
                    continue; // one line per schedule: its overdue timer is already listed
                }
                let Some(e) = b.entries.get(id.as_str()) else {
                    continue;
                };
                if let Some(reason) = e.unhealthy_reason() {
                    unhealthy.push(Unhealthy {
                        schedule_id: id.clone(),
                        name: e.name.clone(),
                        state: e.state.as_str(),
                        reason,
                    });
                }
            }
            let mut lags: Vec<f64> = b.lags_ms.iter().copied().collect();
            lags.sort_by(|a, b| a.total_cmp(b));
            let pct = |p: f64| -> f64 {
                if lags.is_empty() {
                    return 0.0;
                }
                let i = ((lags.len() as f64 - 1.0) * p).round() as usize;
                (lags[i.min(lags.len() - 1)] * 1000.0).round() / 1000.0
            };
            BoardView {
                actors: ActorsView {
                    total: b.entries.len(),
                    armed: b.counts[slot(ActorState::Armed)],
                    paused: b.counts[slot(ActorState::Paused)],
                    firing: b.counts[slot(ActorState::Firing)],
                    finished: b.counts[slot(ActorState::Finished)],
                    restarting: b.counts[slot(ActorState::Restarting)],
                    restarts_total: b.restarts_total,
                    max_mailbox: b.max_mailbox,
                    fire_lag_ms: FireLag {
                        p50: pct(0.5),
                        p99: pct(0.99),
                        max: pct(1.0),
                    },
                    unhealthy,
                },
                next_due: b.armed.iter().next().map(|(f, id)| (id.to_string(), *f)),
                last_tick_at: b.last_tick_at,
                workers_active: b.workers_active,
                workers_capacity: b.workers_capacity,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhealthy_ids(board: &HealthBoard) -> Vec<String> {
        board
            .view(Utc::now())
            .actors
            .unhealthy
            .into_iter()
            .map(|u| u.schedule_id)
            .collect()
    }

    #[test]
    fn the_unhealthy_list_follows_each_change_without_a_scan() {
        let board = HealthBoard::new(Metrics::new());
        for id in ["sch_a", "sch_b", "sch_c"] {
            board.set_state(&id.into(), id, ActorState::Armed, None, 0);
        }
        assert!(unhealthy_ids(&board).is_empty());
        for _ in 0..FAILURES_UNHEALTHY {
            board.record_run_end("sch_b", RunStatus::Failed);
        }
        board.record_run_end("sch_c", RunStatus::DeadLettered);
        assert_eq!(unhealthy_ids(&board), ["sch_b", "sch_c"]);
        let view = board.view(Utc::now());
        assert_eq!(view.actors.unhealthy[0].reason, "3 failed runs in a row");
        board.record_run_end("sch_b", RunStatus::Succeeded);
        assert_eq!(unhealthy_ids(&board), ["sch_c"]);
        board.set_state(&"sch_a".into(), "sch_a", ActorState::Restarting, None, 1);
        assert_eq!(unhealthy_ids(&board), ["sch_a", "sch_c"]);
        board.remove("sch_c");
        board.set_state(&"sch_a".into(), "sch_a", ActorState::Armed, None, 1);
        assert!(unhealthy_ids(&board).is_empty());
    }
}

#[cfg(test)]
mod live_tests {
    use super::*;

    #[test]
    fn the_actor_view_is_what_was_last_published() {
        let board = HealthBoard::new(Metrics::new());
        let now = Utc::now();
        assert!(board.actor_view("sch_a", now).is_none(), "no actor yet");
        // Published before the actor registered: ignored.
        board.publish("sch_a", Live::default());
        assert!(board.actor_view("sch_a", now).is_none());
        let next = now + Duration::seconds(30);
        board.set_state(&"sch_a".into(), "a", ActorState::Armed, Some(next), 2);
        assert!(
            board.actor_view("sch_a", now).is_none(),
            "registered but not loaded yet: no view"
        );
        board.publish(
            "sch_a",
            Live {
                next_run_at: Some(next),
                active_runs: 1,
                queued_runs: 3,
                last_fire_at: Some(now),
                last_fire_lag_ms: Some(1.5),
                last_error: Some("run r ended failed".into()),
            },
        );
        let v = board.actor_view("sch_a", now).expect("a view");
        assert_eq!(v.state, "armed");
        assert_eq!(v.next_fire_in_ms, Some(30_000));
        assert_eq!((v.active_runs, v.queued_runs, v.restarts), (1, 3, 2));
        assert_eq!(v.last_fire_at, Some(now));
        assert_eq!(v.last_fire_lag_ms, Some(1.5));
        assert_eq!(v.last_error.as_deref(), Some("run r ended failed"));
        // Paused: no next fire shown; the rest stays until the actor publishes again.
        board.set_state(&"sch_a".into(), "a", ActorState::Paused, None, 2);
        let v = board.actor_view("sch_a", now).expect("a view");
        assert_eq!((v.state, v.next_fire_in_ms), ("paused", None));
        board.remove("sch_a");
        assert!(board.actor_view("sch_a", now).is_none(), "deleted");
    }

    #[test]
    fn an_idle_actor_is_viewed_without_a_boxed_live() {
        let board = HealthBoard::new(Metrics::new());
        let now = Utc::now();
        let next = now + Duration::seconds(10);
        board.set_state(&"sch_i".into(), "i", ActorState::Armed, Some(next), 0);
        let idle = Live {
            next_run_at: Some(next),
            ..Live::default()
        };
        board.publish("sch_i", idle.clone());
        let boxed = |b: &HealthBoard| b.with(|b| b.entries["sch_i"].live.is_some());
        assert!(!boxed(&board), "nothing but a next run: no box");
        let v = board
            .actor_view("sch_i", now)
            .expect("a view once published");
        assert_eq!(v.next_fire_in_ms, Some(10_000));
        assert_eq!((v.active_runs, v.queued_runs, v.last_fire_at), (0, 0, None));
        board.publish(
            "sch_i",
            Live {
                active_runs: 1,
                ..idle.clone()
            },
        );
        assert!(boxed(&board));
        assert_eq!(
            board.actor_view("sch_i", now).map(|v| v.active_runs),
            Some(1)
        );
        board.publish("sch_i", idle);
        assert!(!boxed(&board), "idle again: the box goes");
        assert_eq!(
            board.actor_view("sch_i", now).map(|v| v.active_runs),
            Some(0)
        );
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn board_entry_sizes() {
        eprintln!("size_of Entry: {}", std::mem::size_of::<Entry>());
        eprintln!("size_of Live: {}", std::mem::size_of::<Live>());
    }
}
