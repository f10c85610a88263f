//! Provides the schedule list's filters (`enabled`, `target_kind`, `workflow_id`, a label
//! selector) as diesel predicates, each one an indexed one.
//!
//! The selector arrives parsed (`domain::labels::Selector`); this module only translates
//! it: equality and `in` to `labels @> {…}`, presence to `labels ? key` (the GIN index),
//! their negations to `NOT`. It parses nothing and knows no HTTP.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::schema::schedules;
use crate::domain::labels::{Requirement, Selector};
use crate::domain::TargetKind;

/// What the schedule list selects; every field set must hold.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFilter {
    pub enabled: Option<bool>,
    pub target_kind: Option<TargetKind>,
    /// Workflow targets with this handler id.
    pub workflow_id: Option<String>,
    pub selector: Option<Selector>,
}

type Predicate = Box<dyn BoxableExpression<schedules::table, Pg, SqlType = Bool>>;
type Boxed<'a, ST> = schedules::BoxedQuery<'a, Pg, ST>;

fn has(key: &str, value: &str) -> Predicate {
    let one = serde_json::json!({ key: value });
    Box::new(schedules::labels.contains(one))
}

fn any_of(key: &str, values: &[String]) -> Predicate {
    let mut it = values.iter();
    let Some(first) = it.next() else {
        return Box::new(diesel::dsl::sql::<Bool>("FALSE"));
    };
    it.fold(has(key, first), |acc, v| Box::new(acc.or(has(key, v))))
}

fn predicate(r: &Requirement) -> Predicate {
    match r {
        Requirement::Equals { key, value } => has(key, value),
        Requirement::NotEquals { key, value } => Box::new(diesel::dsl::not(has(key, value))),
        Requirement::In { key, values } => any_of(key, values),
        Requirement::NotIn { key, values } => Box::new(diesel::dsl::not(any_of(key, values))),
        Requirement::Exists { key } => Box::new(schedules::labels.has_key(key.clone())),
        Requirement::NotExists { key } => {
            Box::new(diesel::dsl::not(schedules::labels.has_key(key.clone())))
        }
    }
}

impl ScheduleFilter {
    /// `q` narrowed to what this filter selects.
    pub fn apply<'a, ST: 'a>(&self, mut q: Boxed<'a, ST>) -> Boxed<'a, ST> {
        if let Some(e) = self.enabled {
            q = q.filter(schedules::enabled.eq(e));
        }
        if let Some(k) = self.target_kind {
            q = q.filter(schedules::target_kind.eq(k.as_str()));
        }
        if let Some(w) = &self.workflow_id {
            q = q
                .filter(schedules::target_kind.eq(TargetKind::Workflow.as_str()))
                .filter(
                    schedules::target
                        .retrieve_as_text("workflow_id")
                        .eq(w.clone()),
                );
        }
        if let Some(s) = &self.selector {
            for r in s.requirements() {
                q = q.filter(predicate(r));
            }
        }
        q
    }
}
