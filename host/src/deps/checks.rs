//! The dependency questions the lifecycle asks, as functions over a snapshot of the modules (name
//! → state and manifest): are a module's dependencies met, is it in a cycle, which running modules
//! need it, which of its dependencies do not run, does a new version stay in its dependents'
//! ranges. Pure: they read what they are given, so they are tested without a hub.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Graph, satisfies};
use crate::manifest::Manifest;
use crate::registry::{ModuleEntry, State};

/// What the dependency questions need to know of a module.
pub trait Node {
    fn state(&self) -> State;
    /// The last manifest that parsed.
    fn manifest(&self) -> Option<&Manifest>;
}

impl Node for ModuleEntry {
    fn state(&self) -> State {
        self.kind()
    }

    fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }
}

impl<T: Node> Node for Arc<T> {
    fn state(&self) -> State {
        T::state(self)
    }

    fn manifest(&self) -> Option<&Manifest> {
        T::manifest(self)
    }
}

fn needs(node: &impl Node, name: &str) -> bool {
    node.manifest()
        .is_some_and(|m| m.dependencies.contains_key(name))
}

/// Why `dependency` (as `node`) does not satisfy `range`, if it does not.
pub fn unmet(dependency: &str, range: &str, node: Option<&impl Node>) -> Option<String> {
    let Some(node) = node else {
        return Some(format!(
            "needs {dependency} {range}, which is not installed"
        ));
    };
    match node.state() {
        State::Disabled => return Some(format!("needs {dependency}, which is disabled")),
        State::Failed => return Some(format!("needs {dependency}, which failed")),
        State::Running => {}
    }
    let version = node.manifest().map(|m| m.version.as_str()).unwrap_or("?");
    if satisfies(version, range) {
        None
    } else {
        Some(format!("needs {dependency} {range}, found {version}"))
    }
}

/// Why `manifest`'s dependencies are not met, one problem each; empty when every one runs in
/// range.
pub fn unmet_dependencies<N: Node>(
    manifest: &Manifest,
    modules: &BTreeMap<String, N>,
) -> Vec<String> {
    manifest
        .dependencies
        .iter()
        .filter_map(|(dependency, range)| unmet(dependency, range, modules.get(dependency)))
        .collect()
}

/// A cycle through module `name` (with `manifest`), spelled `a → b → a`. With every dependency
/// running (`dependencies_met`), a cycle would run through what runs, so the snapshot's
/// manifests tell; otherwise the manifests on disk do (modules of a cycle never run), read only
/// then.
pub fn cycle<N: Node>(
    name: &str,
    manifest: &Manifest,
    modules: &BTreeMap<String, N>,
    dependencies_met: bool,
    on_disk: impl FnOnce() -> BTreeMap<String, Manifest>,
) -> Option<String> {
    let disk;
    let mut manifests: BTreeMap<&str, &Manifest> = if dependencies_met {
        modules
            .iter()
            .filter_map(|(n, node)| Some((n.as_str(), node.manifest()?)))
            .collect()
    } else {
        disk = on_disk();
        disk.iter().map(|(n, m)| (n.as_str(), m)).collect()
    };
    manifests.insert(name, manifest);
    Graph::new(manifests).cycle_through(name)
}

/// The running modules that need `name`, directly or not, dependents of dependents first.
pub fn running_dependents<N: Node>(modules: &BTreeMap<String, N>, name: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![name.to_owned()];
    while let Some(current) = frontier.pop() {
        for (other, node) in modules {
            if node.state() == State::Running
                && needs(node, &current)
                && other != name
                && !found.contains(other)
            {
                found.push(other.clone());
                frontier.push(other.clone());
            }
        }
    }
    // Reverse start order: a dependent before what it needs.
    let manifests = modules
        .iter()
        .filter_map(|(n, node)| Some((n.as_str(), node.manifest()?)));
    let order = Graph::new(manifests).start_order();
    let mut ordered: Vec<String> = order
        .into_iter()
        .rev()
        .filter(|n| found.contains(n))
        .collect();
    let rest: Vec<String> = found.into_iter().filter(|n| !ordered.contains(n)).collect();
    ordered.extend(rest);
    ordered
}

/// The dependencies of `name` (from the manifests on disk), transitively, that do not run, in the
/// order they must start.
pub fn missing_dependencies<N: Node>(
    on_disk: &BTreeMap<String, Manifest>,
    modules: &BTreeMap<String, N>,
    name: &str,
) -> Vec<String> {
    let mut needed: Vec<String> = Vec::new();
    let mut frontier = vec![name.to_owned()];
    while let Some(current) = frontier.pop() {
        let Some(manifest) = on_disk.get(&current) else {
            continue;
        };
        for dependency in manifest.dependencies.keys() {
            if !needed.contains(dependency) && dependency != name {
                needed.push(dependency.clone());
                frontier.push(dependency.clone());
            }
        }
    }
    let running = |n: &String| modules.get(n).is_some_and(|e| e.state() == State::Running);
    Graph::new(on_disk.iter().map(|(n, m)| (n.as_str(), m)))
        .start_order()
        .into_iter()
        .filter(|n| needed.contains(n) && !running(n))
        .chain(needed.iter().filter(|n| !on_disk.contains_key(*n)).cloned())
        .collect()
}

/// The modules whose manifests need `name` (in any state), by name.
pub fn dependents<N: Node>(modules: &BTreeMap<String, N>, name: &str) -> Vec<String> {
    modules
        .iter()
        .filter(|(_, node)| needs(*node, name))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The failed modules that need `name`: started again when it comes up.
pub fn failed_dependents<N: Node>(modules: &BTreeMap<String, N>, name: &str) -> Vec<String> {
    modules
        .iter()
        .filter(|(_, node)| node.state() == State::Failed && needs(*node, name))
        .map(|(n, _)| n.clone())
        .collect()
}

/// Which of `dependents` would not accept version `version` of `name`, as `d needs name range`.
pub fn refusing_dependents<N: Node>(
    modules: &BTreeMap<String, N>,
    name: &str,
    version: &str,
    dependents: &[String],
) -> Vec<String> {
    dependents
        .iter()
        .filter_map(|d| {
            let range = modules.get(d)?.manifest()?.dependencies.get(name)?;
            (!satisfies(version, range)).then(|| format!("{d} needs {name} {range}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    struct Fake {
        state: State,
        manifest: Manifest,
    }

    impl Node for Fake {
        fn state(&self) -> State {
            self.state
        }

        fn manifest(&self) -> Option<&Manifest> {
            Some(&self.manifest)
        }
    }

    fn manifest(name: &str, version: &str, deps: &[(&str, &str)]) -> Manifest {
        let deps: serde_json::Map<String, serde_json::Value> = deps
            .iter()
            .map(|(n, r)| ((*n).to_owned(), serde_json::Value::from(*r)))
            .collect();
        let text =
            serde_json::json!({"name": name, "version": version, "dependencies": deps}).to_string();
        Manifest::parse(Path::new("m.json"), name, &text).unwrap()
    }

    /// (name, state, version, dependencies)
    type Row<'a> = (&'a str, State, &'a str, &'a [(&'a str, &'a str)]);

    fn snapshot(modules: &[Row<'_>]) -> BTreeMap<String, Fake> {
        modules
            .iter()
            .map(|(name, state, version, deps)| {
                let fake = Fake {
                    state: *state,
                    manifest: manifest(name, version, deps),
                };
                ((*name).to_owned(), fake)
            })
            .collect()
    }

    #[test]
    fn dependencies_are_met_only_when_running_in_range() {
        let modules = snapshot(&[
            ("crm", State::Running, "1.2.0", &[]),
            ("acct", State::Disabled, "1.0.0", &[]),
            ("old", State::Running, "0.9.0", &[]),
            ("broken", State::Failed, "1.0.0", &[]),
        ]);
        let app = manifest(
            "app",
            "1.0.0",
            &[
                ("crm", "^1.2"),
                ("acct", "^1"),
                ("old", "^1"),
                ("broken", "^1"),
                ("gone", "^1"),
            ],
        );
        assert_eq!(
            unmet_dependencies(&app, &modules),
            [
                "needs acct, which is disabled",
                "needs broken, which failed",
                "needs gone ^1, which is not installed",
                "needs old ^1, found 0.9.0",
            ]
        );
        let fine = manifest("fine", "1.0.0", &[("crm", "^1")]);
        assert!(unmet_dependencies(&fine, &modules).is_empty());
    }

    #[test]
    fn a_cycle_is_found_in_the_snapshot_or_on_disk() {
        let modules = snapshot(&[("b", State::Running, "1.0.0", &[("a", "*")])]);
        let a = manifest("a", "1.0.0", &[("b", "*")]);
        let untouched = || -> BTreeMap<String, Manifest> { panic!("disk read while all run") };
        assert_eq!(
            cycle("a", &a, &modules, true, untouched).as_deref(),
            Some("a → b → a")
        );
        let disk = || {
            BTreeMap::from([
                ("a".to_owned(), manifest("a", "1.0.0", &[("c", "*")])),
                ("c".to_owned(), manifest("c", "1.0.0", &[("a", "*")])),
            ])
        };
        let a = manifest("a", "1.0.0", &[("c", "*")]);
        assert_eq!(
            cycle("a", &a, &snapshot(&[]), false, disk).as_deref(),
            Some("a → c → a")
        );
        let free = manifest("free", "1.0.0", &[("b", "*")]);
        assert_eq!(cycle("free", &free, &modules, true, untouched), None);
    }

    #[test]
    fn running_dependents_come_dependents_first() {
        let modules = snapshot(&[
            ("base", State::Running, "1.0.0", &[]),
            ("mid", State::Running, "1.0.0", &[("base", "*")]),
            ("top", State::Running, "1.0.0", &[("mid", "*")]),
            ("off", State::Disabled, "1.0.0", &[("base", "*")]),
        ]);
        assert_eq!(running_dependents(&modules, "base"), ["top", "mid"]);
        assert_eq!(dependents(&modules, "base"), ["mid", "off"]);
        assert!(running_dependents(&modules, "top").is_empty());
    }

    #[test]
    fn missing_dependencies_come_in_start_order() {
        let disk = BTreeMap::from([
            ("app".to_owned(), manifest("app", "1.0.0", &[("crm", "*")])),
            ("crm".to_owned(), manifest("crm", "1.0.0", &[("acct", "*")])),
            ("acct".to_owned(), manifest("acct", "1.0.0", &[])),
        ]);
        let none = snapshot(&[]);
        assert_eq!(missing_dependencies(&disk, &none, "app"), ["acct", "crm"]);
        let acct_runs = snapshot(&[("acct", State::Running, "1.0.0", &[])]);
        assert_eq!(missing_dependencies(&disk, &acct_runs, "app"), ["crm"]);
    }

    #[test]
    fn a_new_version_must_stay_in_its_dependents_ranges() {
        let modules = snapshot(&[
            ("crm", State::Running, "1.2.0", &[]),
            ("app", State::Running, "1.0.0", &[("crm", "^1.2")]),
            ("web", State::Running, "1.0.0", &[("crm", "*")]),
        ]);
        let dependents = ["app".to_owned(), "web".to_owned()];
        assert_eq!(
            refusing_dependents(&modules, "crm", "2.0.0", &dependents),
            ["app needs crm ^1.2"]
        );
        assert!(refusing_dependents(&modules, "crm", "1.3.0", &dependents).is_empty());
    }

    #[test]
    fn failed_dependents_are_the_ones_to_wake() {
        let modules = snapshot(&[
            ("crm", State::Running, "1.0.0", &[]),
            ("app", State::Failed, "1.0.0", &[("crm", "*")]),
            ("web", State::Running, "1.0.0", &[("crm", "*")]),
        ]);
        assert_eq!(failed_dependents(&modules, "crm"), ["app"]);
    }
}
