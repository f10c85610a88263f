//! wakeplane: a durable scheduling control plane. Schedules (cron, interval, once) fire
//! typed targets (HTTP, shell, in-process workflows) under overlap, misfire, timeout,
//! concurrency and retry policies, with every occurrence and run recorded in PostgreSQL.
//!
//! Embedding: build a `Config`, register workflow handlers on a `WorkflowRegistry`, and
//! start an [`startup::Application`]. The `wakeplane` binary is exactly that plus a CLI.

pub mod actors;
pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod domain;
pub mod executors;
pub mod metrics;
pub mod pg;
pub mod security;
pub mod startup;
pub mod store;
pub mod telemetry;
