//! Provides the schedule commands the HTTP API issues (create, replace, patch, delete,
//! pause, resume, trigger) behind one handle, so handlers never mutate schedule state.
//!
//! Each command validates with the domain, then applies one transaction through the store.

use chrono::{SubsecRound, Utc};
use diesel::Connection;

use crate::domain::ids;
use crate::domain::validation::{
    body_of, merge_patch, parse_schedule, FieldError, ScheduleBody, ValidationContext,
};
use crate::domain::RunStatus;
use crate::store::runs::{self, RunRow};
use crate::store::schedules::{self, ScheduleRecord};
use crate::store::{Store, StoreError};

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("a schedule named {0:?} already exists")]
    NameTaken(String),
    #[error("schedule not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => CommandError::NotFound,
            other => CommandError::Store(other),
        }
    }
}

/// Maps a unique violation on the name onto `NameTaken`.
fn name_conflict(e: StoreError, name: &str) -> CommandError {
    match e {
        StoreError::Conflict(c) if c == "schedules_name_key" => {
            CommandError::NameTaken(name.to_string())
        }
        other => other.into(),
    }
}

/// Cheap to clone; shared by every HTTP worker.
#[derive(Clone)]
pub struct Commands {
    store: Store,
}

impl Commands {
    pub fn new(store: Store) -> Commands {
        Commands { store }
    }

    pub async fn create(&self, body: ScheduleBody) -> Result<ScheduleRecord, CommandError> {
        let now = crate::store::now();
        // The default interval grid sits on whole seconds: keys read cleanly and the first
        // fire is still after creation.
        let ctx = ValidationContext {
            now,
            default_anchor: now.trunc_subsecs(0),
        };
        let spec = parse_schedule(&body, &ctx).map_err(CommandError::Validation)?;
        let record = ScheduleRecord::create(ids::schedule_id(), spec, now);
        let to_insert = record.clone();
        self.store
            .run(move |conn| schedules::insert(conn, &to_insert))
            .await
            .map_err(|e| name_conflict(e, &record.spec.name))?;
        Ok(record)
    }

    /// PUT: the body is a complete definition.
    pub async fn replace(
        &self,
        id: String,
        body: ScheduleBody,
    ) -> Result<ScheduleRecord, CommandError> {
        self.update_with(id, move |_current| body).await
    }

    /// PATCH: fields present change; policy and retry merge field by field.
    pub async fn patch(
        &self,
        id: String,
        patch: ScheduleBody,
    ) -> Result<ScheduleRecord, CommandError> {
        self.update_with(id, move |current| {
            merge_patch(&body_of(&current.spec), &patch)
        })
        .await
    }

    async fn update_with(
        &self,
        id: String,
        make_body: impl FnOnce(&ScheduleRecord) -> ScheduleBody + Send + 'static,
    ) -> Result<ScheduleRecord, CommandError> {
        self.store
            .run(move |conn| {
                conn.transaction(|conn| {
                    let current =
                        schedules::find_for_update(conn, &id).map_err(CommandError::from)?;
                    let now = crate::store::now();
                    let ctx = ValidationContext {
                        now,
                        default_anchor: current.created_at,
                    };
                    let body = make_body(&current);
                    let spec = parse_schedule(&body, &ctx).map_err(CommandError::Validation)?;
                    let next = current.replaced(spec, now);
                    schedules::update(conn, &next)
                        .map_err(|e| name_conflict(e, &next.spec.name))?;
                    Ok(next)
                })
            })
            .await
            .map_err(|e: CommandError| e)
    }

    pub async fn delete(&self, id: String) -> Result<(), CommandError> {
        let deleted = self
            .store
            .run(move |conn| schedules::delete(conn, &id))
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(CommandError::NotFound)
        }
    }

    pub async fn pause(&self, id: String) -> Result<ScheduleRecord, CommandError> {
        self.transition(id, |r, now| r.paused(now)).await
    }

    pub async fn resume(&self, id: String) -> Result<ScheduleRecord, CommandError> {
        self.transition(id, |r, now| r.resumed(now)).await
    }

    async fn transition(
        &self,
        id: String,
        f: impl FnOnce(&ScheduleRecord, chrono::DateTime<Utc>) -> ScheduleRecord + Send + 'static,
    ) -> Result<ScheduleRecord, CommandError> {
        self.store
            .run(move |conn| {
                conn.transaction(|conn| {
                    let current =
                        schedules::find_for_update(conn, &id).map_err(CommandError::from)?;
                    let next = f(&current, crate::store::now());
                    if next != current {
                        schedules::update(conn, &next)?;
                    }
                    Ok(next)
                })
            })
            .await
    }

    /// Records a `pending` manual run keyed `manual:{run_id}`; the cadence is untouched.
    pub async fn trigger(&self, id: String, reason: String) -> Result<RunRow, CommandError> {
        self.store
            .run(move |conn| {
                schedules::find(conn, &id).map_err(CommandError::from)?;
                let now = crate::store::now();
                let mut run = RunRow::new(&id, String::new(), now, now, RunStatus::Pending, 1, now);
                run.occurrence_key = ids::manual_occurrence_key(&run.id);
                run.trigger_reason = Some(reason);
                runs::insert_if_absent(conn, &run)?;
                Ok(run)
            })
            .await
    }
}

impl From<diesel::result::Error> for CommandError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::from(e).into()
    }
}
