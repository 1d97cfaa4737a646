//! What asked for a change to a module (`Action`), how it ended (`Outcome`), and the one log line
//! each action writes: module, version(s), duration, outcome.

use std::time::Duration;

use crate::registry::ModuleEntry;

/// What asked for a change to a module; named in the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Discovery when the hub starts.
    Start,
    Enable,
    Disable,
    Reload,
    /// The database answers again, and the module was waiting for it; or a dependency came up
    /// or went away.
    Retry,
    /// The watcher saw the module's files change.
    FileChange,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Reload => "reload",
            Action::Retry => "retry",
            Action::FileChange => "file change",
        }
    }

    /// The action's name in the audit log.
    pub fn audit_name(self) -> &'static str {
        match self {
            Action::Start => "module.start",
            Action::Enable => "module.enable",
            Action::Disable => "module.disable",
            Action::Reload => "module.reload",
            Action::Retry => "module.retry",
            Action::FileChange => "module.file_change",
        }
    }

    /// Whether a running instance is replaced (enable leaves a running module alone).
    pub fn restarts(self) -> bool {
        matches!(
            self,
            Action::Start | Action::Reload | Action::Retry | Action::FileChange
        )
    }

    /// Whether the action replaces a version (recorded in `reload_history`).
    pub fn is_reload(self) -> bool {
        matches!(self, Action::Reload | Action::FileChange)
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new instance serves.
    Running,
    Disabled,
    /// Nothing serves; `error` says why.
    Failed,
    /// The new version failed; the running one keeps serving.
    Kept,
    /// Already as asked.
    Unchanged,
}

impl Outcome {
    /// The outcome's name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Disabled => "disabled",
            Outcome::Failed => "failed",
            Outcome::Kept => "kept",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// One log line per action: module, version(s), duration, outcome.
pub fn log_action(
    action: Action,
    entry: &ModuleEntry,
    before: Option<&ModuleEntry>,
    outcome: Outcome,
    took: Duration,
) {
    let (module, ms) = (&entry.name, took.as_millis());
    let version = entry.version().unwrap_or("-");
    let old = before.and_then(ModuleEntry::version);
    let error = entry
        .state
        .error()
        .map(ToString::to_string)
        .unwrap_or_default();
    let action = action.as_str();
    match outcome {
        Outcome::Running => {
            let versions = match old {
                Some(old) => format!("{old} → {version}"),
                None => version.to_owned(),
            };
            tracing::info!(module = %module, version, duration_ms = ms, outcome = "running", "{action} {module}: running {versions} ({ms} ms)");
        }
        Outcome::Disabled => {
            tracing::info!(module = %module, version, duration_ms = ms, outcome = "disabled", "{action} {module}: disabled ({ms} ms)");
        }
        Outcome::Unchanged => {
            tracing::info!(module = %module, version, duration_ms = ms, outcome = "unchanged", "{action} {module}: already running {version}");
        }
        Outcome::Failed => {
            tracing::warn!(module = %module, version, duration_ms = ms, outcome = "failed", "{action} {module}: failed ({ms} ms): {error}");
        }
        Outcome::Kept => {
            tracing::warn!(module = %module, version, duration_ms = ms, outcome = "kept", "{action} {module}: failed, the running version keeps serving ({ms} ms): {error}");
        }
    }
}
