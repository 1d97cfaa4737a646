//! Why a management action could not be carried out at all (as opposed to a module that failed
//! to start, which is a state: `registry::StartError`). The HTTP rooms map each to a status.

use thiserror::Error;

use crate::manifest::ManifestError;

#[derive(Debug, Error)]
pub enum ActionError {
    #[error("no module '{0}' is installed (no {0}/module.json in MODULES_DIR)")]
    NotInstalled(String),
    #[error("the module system is off (MODULES_ENABLED=false)")]
    ModulesOff,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("module '{name}' needs {}, which {} not running: enable them first, or ask for ?with_dependencies=true", .missing.join(", "), if .missing.len() == 1 { "is" } else { "are" })]
    DependenciesNotRunning { name: String, missing: Vec<String> },
    #[error("{} needs module '{name}': disable {} first, or ask for ?cascade=true", .dependents.join(", "), if .dependents.len() == 1 { "it" } else { "them" })]
    HasDependents {
        name: String,
        dependents: Vec<String>,
    },
    #[error(
        "{variable} is set in the hub's environment, which wins over module.json: change or unset it there (and restart the hub)"
    )]
    SetByEnvironment { variable: String },
    #[error(
        "module '{0}' is not part of the fleet (HUB_FLEET=true): install it as a package through any hub (POST /api/v1/packages)"
    )]
    NotInFleet(String),
    #[error("module '{0}' does not run: enable it first")]
    NotRunning(String),
    #[error("{0}")]
    Migrations(String),
    #[error("the fleet's state in PostgreSQL cannot be read or written: {0}")]
    FleetUnavailable(String),
}
