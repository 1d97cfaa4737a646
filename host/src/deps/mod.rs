//! Module dependencies: the graph of "needs" between modules (petgraph), the order modules start
//! in (dependencies first, ties by name) and the cycles. `checks.rs` asks the questions the
//! lifecycle needs of a registry snapshot (met, cycle, dependents, missing); `document.rs` is the
//! graph as the API shows it, as JSON and as a picture. Ranges and versions are semver.

pub mod checks;
pub mod document;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use petgraph::graph::{DiGraph, NodeIndex};
use semver::{Version, VersionReq};

use crate::manifest::Manifest;

/// The graph of modules: an edge `a → b` when `a` needs `b`.
pub struct Graph {
    graph: DiGraph<String, String>,
    nodes: BTreeMap<String, NodeIndex>,
}

impl Graph {
    /// The graph of `manifests` (name → manifest); dependencies on modules not in it are left
    /// out (they are reported by [`check`]).
    pub fn new<'a>(manifests: impl IntoIterator<Item = (&'a str, &'a Manifest)>) -> Graph {
        let manifests: Vec<(&str, &Manifest)> = manifests.into_iter().collect();
        let mut graph = DiGraph::new();
        let mut nodes = BTreeMap::new();
        for (name, _) in &manifests {
            nodes.insert((*name).to_owned(), graph.add_node((*name).to_owned()));
        }
        for (name, manifest) in &manifests {
            for (dependency, range) in &manifest.dependencies {
                if let (Some(&from), Some(&to)) = (nodes.get(*name), nodes.get(dependency)) {
                    graph.add_edge(from, to, range.clone());
                }
            }
        }
        Graph { graph, nodes }
    }

    /// A cycle through `name`, spelled `a → b → c → a`, if there is one.
    pub fn cycle_through(&self, name: &str) -> Option<String> {
        let &start = self.nodes.get(name)?;
        // The shortest way back to `start`, breadth first, neighbours by name.
        let mut previous: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = self.graph.neighbors(node).collect();
            next.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
            for neighbour in next {
                if neighbour == start {
                    let mut path = vec![node];
                    while let Some(&p) = previous.get(path.last().unwrap_or(&start)) {
                        path.push(p);
                    }
                    path.reverse();
                    let mut names: Vec<&str> =
                        path.iter().map(|n| self.graph[*n].as_str()).collect();
                    if names.first() != Some(&name) {
                        names.insert(0, name);
                    }
                    names.push(name);
                    return Some(names.join(" → "));
                }
                if neighbour != start && !previous.contains_key(&neighbour) {
                    previous.insert(neighbour, node);
                    queue.push_back(neighbour);
                }
            }
        }
        None
    }

    /// Every module, dependencies before their dependents; among those free to go, by name.
    /// Modules in a cycle come last, by name.
    pub fn start_order(&self) -> Vec<String> {
        let mut waiting: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for &node in self.nodes.values() {
            waiting.insert(node, self.graph.neighbors(node).count());
        }
        let mut ready: BinaryHeap<Reverse<(String, NodeIndex)>> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(node, _)| Reverse((self.graph[*node].clone(), *node)))
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut done = BTreeSet::new();
        while let Some(Reverse((name, node))) = ready.pop() {
            order.push(name);
            done.insert(node);
            for dependent in self
                .graph
                .neighbors_directed(node, petgraph::Direction::Incoming)
            {
                if let Some(n) = waiting.get_mut(&dependent) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(Reverse((self.graph[dependent].clone(), dependent)));
                    }
                }
            }
        }
        order.extend(
            self.nodes
                .iter()
                .filter(|(_, node)| !done.contains(*node))
                .map(|(name, _)| name.clone()),
        );
        order
    }
}

/// Whether `version` is in `range` (both semver; a parse failure is not in range).
pub fn satisfies(version: &str, range: &str) -> bool {
    match (Version::parse(version), VersionReq::parse(range)) {
        (Ok(version), Ok(range)) => range.matches(&version),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest(name: &str, deps: &[(&str, &str)]) -> Manifest {
        let deps: serde_json::Map<String, serde_json::Value> = deps
            .iter()
            .map(|(n, r)| ((*n).to_owned(), serde_json::Value::from(*r)))
            .collect();
        let text =
            serde_json::json!({"name": name, "version": "1.0.0", "dependencies": deps}).to_string();
        Manifest::parse(Path::new("m.json"), name, &text).unwrap()
    }

    #[test]
    fn dependencies_start_first_and_ties_go_by_name() {
        let ms = [
            manifest("app", &[("crm", "^1"), ("acct", "^1")]),
            manifest("crm", &[("acct", "^1")]),
            manifest("acct", &[]),
            manifest("zeta", &[]),
            manifest("beta", &[]),
        ];
        let graph = Graph::new(ms.iter().map(|m| (m.name.as_str(), m)));
        assert_eq!(graph.start_order(), ["acct", "beta", "crm", "app", "zeta"]);
        assert_eq!(graph.cycle_through("app"), None);
    }

    #[test]
    fn cycles_are_spelled_out() {
        let ms = [
            manifest("a", &[("b", "*")]),
            manifest("b", &[("c", "*")]),
            manifest("c", &[("a", "*")]),
            manifest("x", &[("y", "*")]),
            manifest("y", &[("x", "*")]),
            manifest("free", &[("a", "*")]),
        ];
        let graph = Graph::new(ms.iter().map(|m| (m.name.as_str(), m)));
        assert_eq!(graph.cycle_through("a").as_deref(), Some("a → b → c → a"));
        assert_eq!(graph.cycle_through("b").as_deref(), Some("b → c → a → b"));
        assert_eq!(graph.cycle_through("x").as_deref(), Some("x → y → x"));
        assert_eq!(
            graph.cycle_through("free"),
            None,
            "needing a cycle is not being in one"
        );
        assert_eq!(
            graph.start_order(),
            ["a", "b", "c", "free", "x", "y"],
            "cycles last, by name"
        );
    }

    #[test]
    fn ranges_are_semver() {
        assert!(satisfies("1.2.3", "^1.2"));
        assert!(!satisfies("1.0.3", "^1.2"));
        assert!(!satisfies("2.0.0", "^1"));
        assert!(satisfies("0.1.5", "^0.1"));
        assert!(!satisfies("0.2.0", "^0.1"));
    }
}
