//! A module's state, as an enum that carries what each state has: a running module its instance,
//! a failed one why it failed. `StartError` says what failed when a module could not start (or a
//! new version could not replace the running one), and decides whether the hub retries it.

use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;

use crate::config::module::{Safety, SettingsError};
use crate::db::migrate::MigrationError;
use crate::instance::Instance;
use crate::loader::LoadError;
use crate::manifest::ManifestError;

/// The three states of a module, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Serving requests.
    Running,
    /// `enabled` is false.
    Disabled,
    /// `enabled` is true (or unknown) but the module could not start; `error` says why.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Disabled => "disabled",
            State::Failed => "failed",
        }
    }
}

/// Where a module is, with what that state holds.
#[derive(Clone)]
pub enum ModuleState {
    /// Serving requests on `instance`. `error` is why the last attempt to replace it failed (the
    /// instance kept serving), if it did.
    Running {
        instance: Arc<Instance>,
        safety: Safety,
        error: Option<Arc<StartError>>,
    },
    /// `enabled` is false. The safety switches, when they could be read.
    Disabled { safety: Option<Safety> },
    /// Could not start. The safety switches, when they could be read.
    Failed {
        error: Arc<StartError>,
        safety: Option<Safety>,
    },
}

impl ModuleState {
    pub fn kind(&self) -> State {
        match self {
            ModuleState::Running { .. } => State::Running,
            ModuleState::Disabled { .. } => State::Disabled,
            ModuleState::Failed { .. } => State::Failed,
        }
    }

    /// The running instance, if the module runs.
    pub fn instance(&self) -> Option<&Arc<Instance>> {
        match self {
            ModuleState::Running { instance, .. } => Some(instance),
            _ => None,
        }
    }

    /// Why the module failed, or why the last attempt to replace the running version failed.
    pub fn error(&self) -> Option<&StartError> {
        match self {
            ModuleState::Running { error, .. } => error.as_deref(),
            ModuleState::Failed { error, .. } => Some(error),
            ModuleState::Disabled { .. } => None,
        }
    }

    pub fn safety(&self) -> Option<Safety> {
        match self {
            ModuleState::Running { safety, .. } => Some(*safety),
            ModuleState::Disabled { safety } | ModuleState::Failed { safety, .. } => *safety,
        }
    }
}

/// Why a module could not start, or why a new version did not replace the running one. The
/// variant decides what happens next: [`StartError::waits_for_database`] modules are started
/// again when the database answers; the others wait for a change (an action, a file, a
/// dependency coming up).
#[derive(Debug, Error)]
pub enum StartError {
    /// `module.json` is missing, unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A `MODULES__{NAME}__…` setting cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(
        "table prefix '{prefix}' overlaps '{reserved}', the prefix of the hub's or PostgreSQL's own tables (one starts with the other): choose another \"table_prefix\""
    )]
    ReservedPrefix {
        prefix: String,
        reserved: &'static str,
    },
    #[error(
        "table prefix '{prefix}' overlaps module '{other}'s '{theirs}': give one of them another \"table_prefix\""
    )]
    PrefixOverlap {
        prefix: String,
        other: String,
        theirs: String,
    },
    /// The module is part of a cycle of dependencies, spelled `a → b → a`.
    #[error("dependency cycle {0}")]
    Cycle(String),
    /// Dependencies missing, disabled, failed or out of range, one problem each.
    #[error("{}", .0.join("; "))]
    Unmet(Vec<String>),
    #[error(
        "module.json accepts plugin-api {range} (hub_api), but this hub has plugin-api {have}: rebuild the module against it and widen hub_api"
    )]
    HubApi { range: String, have: &'static str },
    /// The library cannot be read or opened, or is built against another plugin-api.
    #[error(transparent)]
    Library(#[from] LoadError),
    #[error(
        "module.json says version {manifest} but {library_path} is version {library}: make them equal (the library reports its crate's version)"
    )]
    Version {
        manifest: String,
        library_path: String,
        library: String,
    },
    /// The module's declarations (migrations, templates, static files) could not be read.
    #[error("{0}")]
    Declarations(String),
    /// The module's `init` failed or panicked.
    #[error("{0}")]
    Init(String),
    /// The module's routes or templates are unusable.
    #[error("{0}")]
    Routes(String),
    #[error("loading was interrupted: {0}")]
    Interrupted(String),
    #[error("module '{module}' has migrations but the hub has no database: set DATABASE_URL")]
    NoDatabase { module: String },
    /// The database could not be reached (or its own migrations failed) when the module needed it.
    #[error("{0}")]
    DatabaseUnavailable(String),
    /// A migration failed, was refused or changed.
    #[error(transparent)]
    Migration(MigrationError),
    /// The module's PostgreSQL roles could not be set up.
    #[error("{0}")]
    Roles(String),
    #[error("unhealthy at start: {0}")]
    Unhealthy(String),
    /// The new version failed after migrations were applied, some of them not expand: an older
    /// version may not work on the schema they left, so none keeps serving.
    #[error(
        "version {version} failed after its migrations {} were applied ({} not marked `-- hub: expand`, so no older version is kept serving on the new schema): {error}; fix this version and reload",
        .applied.join(", "),
        .contracting.join(", ")
    )]
    AfterMigrations {
        version: String,
        applied: Vec<String>,
        contracting: Vec<String>,
        error: Box<StartError>,
    },
    /// `module.json` says disabled, but running modules need this one: reported, not applied.
    #[error(
        "module.json says disabled, but {} needs it: it keeps running; disable {} first, or POST /api/v1/modules/{module}/disable?cascade=true",
        .dependents.join(", "),
        if .dependents.len() == 1 { "it" } else { "them" }
    )]
    NeededBy {
        module: String,
        dependents: Vec<String>,
    },
    /// The new version is outside the range of a module that needs this one.
    #[error("version {version} is refused: {}; the running version keeps serving", .broken.join(", "))]
    RefusedByDependents {
        version: String,
        broken: Vec<String>,
    },
}

impl StartError {
    /// Whether the module will start once the database answers (it is tried again then).
    pub fn waits_for_database(&self) -> bool {
        matches!(
            self,
            StartError::NoDatabase { .. } | StartError::DatabaseUnavailable(_)
        )
    }

    /// Whether the failed version changed the schema beyond what the running one may work on
    /// (migrations that are not expand): then the running version stops too.
    pub fn leaves_a_new_schema(&self) -> bool {
        matches!(self, StartError::AfterMigrations { .. })
    }

    /// The error itself, without what it says about an older version (when none runs).
    pub fn without_older_version(self) -> StartError {
        match self {
            StartError::AfterMigrations { error, .. } => *error,
            other => other,
        }
    }
}

impl From<MigrationError> for StartError {
    fn from(error: MigrationError) -> StartError {
        match error {
            MigrationError::Unavailable(e) => {
                StartError::DatabaseUnavailable(format!("the database is unavailable: {e}"))
            }
            other => StartError::Migration(other),
        }
    }
}

/// The last reload of a module: when, how it ended, why it failed, how long it took.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadRecord {
    pub at: String,
    /// `ok` (the new version serves) or `failed` (the old one keeps serving, if there was one).
    #[schema(value_type = String)]
    pub outcome: &'static str,
    pub error: Option<String>,
    pub duration_ms: u64,
}
