//! What an action should do to a module, decided before anything is opened: the pure checks
//! (disabled but needed, dependencies met, cycle, dependents accept the new version, settings
//! readable, table prefix its own) over a snapshot of the registry. The effectful start is
//! `start.rs`'s.

use std::collections::BTreeMap;

use crate::config::module::{Safety, SettingsError};
use crate::deps::checks::{self, Node};
use crate::manifest::Manifest;
use crate::registry::StartError;

/// The prefixes a module's table prefix may not start with: the hub's tables and PostgreSQL's.
const RESERVED_PREFIXES: [&str; 3] = ["hub_", "module_", "pg_"];

/// What to do. `R` is the running version, when there is one.
#[derive(Debug)]
pub enum Plan<R> {
    /// Start a new instance with these safety switches.
    Start(Safety),
    /// Stop routing to the module: its manifest says disabled.
    Disable,
    /// It already runs, and the action does not restart it.
    Unchanged(R),
    /// The running version keeps serving; the new one is refused for this reason.
    Keep(R, StartError),
    /// Nothing runs, for this reason.
    Fail(StartError),
}

/// The module `name` as its folder has it now.
pub struct Candidate<'a, R> {
    pub name: &'a str,
    pub manifest: &'a Manifest,
    /// Its effective safety switches, or why they cannot be read.
    pub safety: &'a Result<Safety, SettingsError>,
    /// The version of it that runs now.
    pub running: Option<R>,
    /// The action replaces a running version (`Action::restarts`).
    pub restarts: bool,
}

/// Decide what happens to `module`, given every module's state in `modules` and the manifests
/// on disk (read only when a dependency does not run).
pub fn decide<N: Node, R>(
    module: Candidate<'_, R>,
    modules: &BTreeMap<String, N>,
    on_disk: impl FnOnce() -> BTreeMap<String, Manifest>,
) -> Plan<R> {
    let Candidate {
        name,
        manifest,
        safety,
        running,
        restarts,
    } = module;
    let refuse = |running: Option<R>, error| match running {
        Some(running) => Plan::Keep(running, error),
        None => Plan::Fail(error),
    };
    let dependents = checks::running_dependents(modules, name);
    if !manifest.enabled {
        // An edit of module.json cannot be refused like an API call; it is reported instead.
        if let (Some(running), false) = (running, dependents.is_empty()) {
            let error = StartError::NeededBy {
                module: name.to_owned(),
                dependents,
            };
            return Plan::Keep(running, error);
        }
        return Plan::Disable;
    }
    // Its dependencies: no cycle, each running in range. Unmet, it does not run.
    if !manifest.dependencies.is_empty() {
        let unmet = checks::unmet_dependencies(manifest, modules);
        if let Some(cycle) = checks::cycle(name, manifest, modules, unmet.is_empty(), on_disk) {
            return Plan::Fail(StartError::Cycle(cycle));
        }
        if !unmet.is_empty() {
            return Plan::Fail(StartError::Unmet(unmet));
        }
    }
    let running = match running {
        Some(running) => {
            // A new version must stay in the range of every module that needs it.
            let broken = checks::refusing_dependents(modules, name, &manifest.version, &dependents);
            if !broken.is_empty() {
                let error = StartError::RefusedByDependents {
                    version: manifest.version.clone(),
                    broken,
                };
                return Plan::Keep(running, error);
            }
            if !restarts {
                return Plan::Unchanged(running);
            }
            Some(running)
        }
        None => None,
    };
    let safety = match safety {
        Ok(safety) => *safety,
        Err(error) => return refuse(running, StartError::Settings(error.clone())),
    };
    if let Err(error) = check_table_prefix(name, manifest, modules) {
        return refuse(running, error);
    }
    Plan::Start(safety)
}

/// The module's table prefix must be its own: overlapping neither the hub's or PostgreSQL's
/// (`mod` would cover `module_migrations`, `""` everything) nor another module's (one a prefix of
/// the other).
fn check_table_prefix<N: Node>(
    name: &str,
    manifest: &Manifest,
    modules: &BTreeMap<String, N>,
) -> Result<(), StartError> {
    let prefix = manifest.table_prefix();
    if let Some(reserved) = RESERVED_PREFIXES
        .into_iter()
        .find(|r| prefix.starts_with(r) || r.starts_with(prefix.as_str()))
    {
        return Err(StartError::ReservedPrefix { prefix, reserved });
    }
    for (other, node) in modules.iter().filter(|(other, _)| *other != name) {
        let Some(theirs) = node.manifest().map(Manifest::table_prefix) else {
            continue;
        };
        if prefix.starts_with(&theirs) || theirs.starts_with(&prefix) {
            return Err(StartError::PrefixOverlap {
                prefix,
                other: other.clone(),
                theirs,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::module::{SafetySources, Source};
    use crate::registry::State;

    struct Fake(State, Manifest);

    impl Node for Fake {
        fn state(&self) -> State {
            self.0
        }

        fn manifest(&self) -> Option<&Manifest> {
            Some(&self.1)
        }
    }

    fn manifest(value: serde_json::Value) -> Manifest {
        let name = value["name"].as_str().unwrap().to_owned();
        Manifest::parse(Path::new("m.json"), &name, &value.to_string()).unwrap()
    }

    fn safety() -> Result<Safety, SettingsError> {
        Ok(Safety {
            read_only: true,
            dry_run: true,
            source: SafetySources {
                read_only: Source::Default,
                dry_run: Source::Default,
            },
        })
    }

    fn no_disk() -> BTreeMap<String, Manifest> {
        BTreeMap::new()
    }

    fn decide_for(
        m: &Manifest,
        running: bool,
        restarts: bool,
        modules: &BTreeMap<String, Fake>,
    ) -> Plan<()> {
        let safety = safety();
        let candidate = Candidate {
            name: &m.name,
            manifest: m,
            safety: &safety,
            running: running.then_some(()),
            restarts,
        };
        decide(candidate, modules, no_disk)
    }

    fn message(plan: Plan<()>) -> String {
        match plan {
            Plan::Keep((), e) => format!("keep: {e}"),
            Plan::Fail(e) => format!("fail: {e}"),
            other => format!("{other:?}"),
        }
    }

    fn crm_and_app(app_state: State) -> BTreeMap<String, Fake> {
        let crm = manifest(serde_json::json!({"name": "crm", "version": "1.2.0", "enabled": true}));
        let app = manifest(
            serde_json::json!({"name": "app", "version": "1.0.0", "enabled": true, "dependencies": {"crm": "^1.2"}}),
        );
        BTreeMap::from([
            ("crm".to_owned(), Fake(State::Running, crm)),
            ("app".to_owned(), Fake(app_state, app)),
        ])
    }

    #[test]
    fn a_needed_module_disabled_by_hand_keeps_running() {
        let modules = crm_and_app(State::Running);
        let off =
            manifest(serde_json::json!({"name": "crm", "version": "1.2.0", "enabled": false}));
        assert_eq!(
            message(decide_for(&off, true, true, &modules)),
            "keep: module.json says disabled, but app needs it: it keeps running; disable it first, or POST /api/v1/modules/crm/disable?cascade=true"
        );
        let modules = crm_and_app(State::Failed);
        assert!(matches!(
            decide_for(&off, true, true, &modules),
            Plan::Disable
        ));
    }

    #[test]
    fn a_version_out_of_a_dependents_range_is_refused() {
        let modules = crm_and_app(State::Running);
        let v2 = manifest(serde_json::json!({"name": "crm", "version": "2.0.0", "enabled": true}));
        assert_eq!(
            message(decide_for(&v2, true, true, &modules)),
            "keep: version 2.0.0 is refused: app needs crm ^1.2; the running version keeps serving"
        );
    }

    #[test]
    fn unmet_dependencies_fail_even_a_running_module() {
        let modules = BTreeMap::new();
        let app = manifest(
            serde_json::json!({"name": "app", "version": "1.0.0", "enabled": true, "dependencies": {"crm": "^1.2"}}),
        );
        assert_eq!(
            message(decide_for(&app, true, true, &modules)),
            "fail: needs crm ^1.2, which is not installed"
        );
    }

    #[test]
    fn enabling_what_runs_changes_nothing_and_a_restart_starts() {
        let modules = crm_and_app(State::Running);
        let crm = manifest(serde_json::json!({"name": "crm", "version": "1.2.1", "enabled": true}));
        assert!(matches!(
            decide_for(&crm, true, false, &modules),
            Plan::Unchanged(())
        ));
        assert!(matches!(
            decide_for(&crm, true, true, &modules),
            Plan::Start(_)
        ));
    }

    #[test]
    fn table_prefixes_are_the_modules_own() {
        let modules = crm_and_app(State::Running);
        let hub = manifest(
            serde_json::json!({"name": "x", "version": "1.0.0", "enabled": true, "table_prefix": "hub_x_"}),
        );
        assert_eq!(
            message(decide_for(&hub, false, true, &modules)),
            "fail: table prefix 'hub_x_' overlaps 'hub_', the prefix of the hub's or PostgreSQL's own tables (one starts with the other): choose another \"table_prefix\""
        );
        // Both ways: a prefix that a reserved one starts with covers the hub's tables too.
        for (prefix, reserved) in [("mod", "module_"), ("p", "pg_"), ("", "hub_")] {
            let short = manifest(
                serde_json::json!({"name": "x", "version": "1.0.0", "enabled": true, "table_prefix": prefix}),
            );
            assert_eq!(
                message(decide_for(&short, false, true, &modules)),
                format!(
                    "fail: table prefix '{prefix}' overlaps '{reserved}', the prefix of the hub's or PostgreSQL's own tables (one starts with the other): choose another \"table_prefix\""
                )
            );
        }
        let overlap = manifest(
            serde_json::json!({"name": "crm2", "version": "1.0.0", "enabled": true, "table_prefix": "crm_"}),
        );
        assert_eq!(
            message(decide_for(&overlap, true, true, &modules)),
            "keep: table prefix 'crm_' overlaps module 'crm's 'crm_': give one of them another \"table_prefix\""
        );
    }
}
