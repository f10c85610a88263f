//! Provides manifests (create bodies read from YAML/JSON files, directories or stdin) and
//! `apply`: the by-name diff between manifests and the server's schedules, and its execution.
//!
//! It must not validate schedules itself (the server does, and its errors are reported as
//! they are) nor touch schedules the manifests do not name unless `--prune` is given.
//!
//! Parts: `load` reads manifests, `diff` compares one with the server, `plan` orders and
//! renders the steps, `execute` fetches and applies them.

mod diff;
mod execute;
mod load;
mod plan;
#[cfg(test)]
mod tests;

pub use diff::{diff, policy_defaults, retry_defaults, Change};
pub use execute::{execute, fetch_existing, labels_of, to_json, Outcome};
pub use load::{load, parse_documents, Manifest};
pub use plan::{check_names, plan, render_plan, summary, Action, Step};
