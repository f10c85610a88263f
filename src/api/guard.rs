//! Provides the checks a schedule write (create, replace, patch) passes before it reaches
//! the Supervisor: choosing a shell command needs the admin role, and the target must be
//! one this server's target policy allows (shell targets on, command allowlisted, no
//! literal denied address).
//!
//! It reads the current schedule (for PUT and PATCH) but never changes anything; the
//! executors check the policy again before every run.

use std::borrow::Cow;

use actix_web::{HttpMessage, HttpRequest};

use super::auth::Role;
use super::error::ApiError;
use super::AppState;
use crate::commands::CommandError;
use crate::domain::schedule::Target;
use crate::domain::validation::{
    body_of, merge_patch, parse_schedule, FieldError, ScheduleBody, TargetBody, ValidationContext,
};
use crate::security::{shell, ShellMode, TargetPolicy};
use crate::store::schedules;

/// Which write is being checked.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    Create,
    Replace { id: &'a str },
    Patch { id: &'a str },
}

/// 403 when the request's role may not make this change to the target, 400
/// `validation_failed` (with every other problem of the body) when the resulting target
/// breaks the target policy. With auth off there are no roles: only the policy applies.
pub async fn check_write(
    state: &AppState,
    req: &HttpRequest,
    write: Write<'_>,
    body: &ScheduleBody,
) -> Result<(), ApiError> {
    let role = req.extensions().get::<Role>().copied();
    let current = match write {
        Write::Create => None,
        Write::Replace { id } | Write::Patch { id } => {
            let id = id.to_string();
            let record = state
                .store
                .run(move |conn| schedules::find(conn, &id))
                .await
                .map_err(CommandError::from)?;
            Some(record)
        }
    };
    // What the schedule would become: a PATCH is merged onto the current definition.
    let full = match (&write, &current) {
        (Write::Patch { .. }, Some(current)) => {
            Cow::Owned(merge_patch(&body_of(&current.spec), body))
        }
        _ => Cow::Borrowed(body),
    };
    let Some(target) = full.target.as_ref().and_then(Option::as_ref) else {
        return Ok(()); // validation reports the missing target
    };
    let old = current.as_ref().map(|c| &c.spec.target);
    if let Some(reason) = admin_needed(role, target, old) {
        return Err(ApiError::Forbidden(reason));
    }
    let mut errors = policy_errors(&state.targets, target);
    if errors.is_empty() {
        return Ok(());
    }
    // Report every problem at once, as validation does.
    let now = crate::store::now();
    let ctx = ValidationContext {
        now,
        default_anchor: now,
    };
    if let Err(mut all) = parse_schedule(&full, &ctx) {
        all.retain(|e| !errors.contains(e));
        all.append(&mut errors);
        errors = all;
    }
    Err(ApiError::Validation(errors))
}

/// Why `role` may not set `new` as the target (replacing `old`, if any): a shell target's
/// command decides what runs on the server's host, so creating one, turning another
/// target into one, or changing its command or args needs admin. Keeping an existing
/// shell target exactly as it is (changing only the cadence, policy, …) does not.
fn admin_needed(role: Option<Role>, new: &TargetBody, old: Option<&Target>) -> Option<String> {
    let role = role?;
    if role >= Role::Admin || new.kind.as_deref().map(str::trim) != Some("shell") {
        return None;
    }
    let command = new.command.as_deref().map(str::trim);
    let args = new.args.as_deref().unwrap_or_default();
    let change = match old {
        None => "create a shell target",
        Some(Target::Shell {
            command: c,
            args: a,
        }) if command == Some(c.as_str()) && args == a.as_slice() => return None,
        Some(Target::Shell { .. }) => "change a shell target's command or args",
        Some(_) => "turn a schedule's target into a shell command",
    };
    Some(format!(
        "role {} may not {change}: shell targets run commands on the server's host and need the admin role",
        role.as_str()
    ))
}

/// The target's problems under this server's policy, as validation details.
fn policy_errors(policy: &TargetPolicy, target: &TargetBody) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match target.kind.as_deref().map(str::trim) {
        Some("shell") if policy.shell.mode == ShellMode::Off => {
            errors.push(FieldError::new("target.kind", shell::disabled_message()));
        }
        Some("shell") => {
            // A missing or blank command is validation's to report.
            let command = target.command.as_deref().map(str::trim);
            let command = command.filter(|c| !c.is_empty());
            if let (Some(allow), Some(command)) = (&policy.shell.allow, command) {
                if let Err(message) = allow.check(command) {
                    errors.push(FieldError::new("target.command", message));
                }
            }
        }
        Some("http") => {
            let url = target.url.as_deref().map(str::trim).unwrap_or("");
            if let Ok(url) = reqwest::Url::parse(url) {
                if let Err(refusal) = policy.net.check_url_literal(&url) {
                    errors.push(FieldError::new("target.url", refusal.to_string()));
                }
            }
        }
        _ => {}
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(command: &str, args: &[&str]) -> TargetBody {
        TargetBody {
            kind: Some("shell".into()),
            command: Some(command.into()),
            args: Some(args.iter().map(|a| a.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn operators_may_keep_but_not_choose_a_shell_command() {
        let op = Some(Role::Operator);
        let old = Target::Shell {
            command: "/bin/echo".into(),
            args: vec!["hi".into()],
        };
        let workflow = Target::Workflow {
            workflow_id: "builtin.noop".into(),
            input: serde_json::Value::Null,
        };
        let new = shell("/bin/echo", &["hi"]);
        assert!(admin_needed(op, &new, None)
            .unwrap()
            .starts_with("role operator may not create a shell target"));
        assert_eq!(admin_needed(op, &new, Some(&old)), None);
        assert_eq!(
            admin_needed(op, &shell(" /bin/echo ", &["hi"]), Some(&old)),
            None
        );
        assert!(admin_needed(op, &shell("/bin/echo", &["bye"]), Some(&old))
            .unwrap()
            .contains("change a shell target's command or args"));
        assert!(admin_needed(op, &shell("/bin/sh", &["hi"]), Some(&old)).is_some());
        assert!(admin_needed(op, &new, Some(&workflow))
            .unwrap()
            .contains("turn a schedule's target into a shell command"));
        // Admins, and servers without auth, choose freely; other kinds are not guarded.
        assert_eq!(admin_needed(Some(Role::Admin), &new, None), None);
        assert_eq!(admin_needed(None, &new, None), None);
        let http = TargetBody {
            kind: Some("http".into()),
            ..Default::default()
        };
        assert_eq!(admin_needed(op, &http, Some(&old)), None);
    }

    #[test]
    fn policy_errors_name_the_field_and_the_setting() {
        let mut policy = TargetPolicy::unrestricted();
        policy.net = crate::security::NetPolicy::default();
        let metadata = TargetBody {
            kind: Some("http".into()),
            method: Some("GET".into()),
            url: Some("http://169.254.169.254/latest/meta-data/".into()),
            ..Default::default()
        };
        assert_eq!(
            policy_errors(&policy, &metadata),
            [FieldError::new(
                "target.url",
                "address 169.254.169.254 is refused by WAKEPLANE_HTTP_TARGET_DENY rule 169.254.0.0/16"
            )]
        );
        assert!(policy_errors(&policy, &shell("/bin/sh", &[])).is_empty());
        policy.shell.allow = Some(crate::security::CommandAllowList::parse("/opt/*").unwrap());
        let errors = policy_errors(&policy, &shell("/bin/sh", &[]));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "target.command");
        policy.shell.mode = ShellMode::Off;
        assert_eq!(
            policy_errors(&policy, &shell("/opt/x", &[])),
            [FieldError::new(
                "target.kind",
                "shell targets are disabled on this server (WAKEPLANE_SHELL_TARGETS=off)"
            )]
        );
    }
}
