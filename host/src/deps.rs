//! Module dependencies: the graph of "needs" between modules (petgraph), the order modules start
//! in (dependencies first, ties by name), the cycles, and the check of one module's dependencies
//! against what runs. Ranges and versions are semver.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use petgraph::graph::{DiGraph, NodeIndex};
use semver::{Version, VersionReq};
use serde::Serialize;

use crate::manifest::Manifest;
use crate::registry::{ModuleEntry, State};

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

/// Why a module's dependencies are not met, or `None` when every one runs in range.
pub fn check(
    manifest: &Manifest,
    modules: &BTreeMap<String, std::sync::Arc<ModuleEntry>>,
) -> Option<String> {
    let mut problems = Vec::new();
    for (dependency, range) in &manifest.dependencies {
        if let Some(problem) = unmet(
            dependency,
            range,
            modules.get(dependency).map(|e| e.as_ref()),
        ) {
            problems.push(problem);
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Why `dependency` (as `entry`) does not satisfy `range`, if it does not.
pub fn unmet(dependency: &str, range: &str, entry: Option<&ModuleEntry>) -> Option<String> {
    let Some(entry) = entry else {
        return Some(format!(
            "needs {dependency} {range}, which is not installed"
        ));
    };
    match entry.state {
        State::Disabled => return Some(format!("needs {dependency}, which is disabled")),
        State::Failed => return Some(format!("needs {dependency}, which failed")),
        State::Running => {}
    }
    let version = entry
        .manifest
        .as_ref()
        .map(|m| m.version.as_str())
        .unwrap_or("?");
    if satisfies(version, range) {
        None
    } else {
        Some(format!("needs {dependency} {range}, found {version}"))
    }
}

/// Whether `version` is in `range` (both semver; a parse failure is not in range).
pub fn satisfies(version: &str, range: &str) -> bool {
    match (Version::parse(version), VersionReq::parse(range)) {
        (Ok(version), Ok(range)) => range.matches(&version),
        _ => false,
    }
}

/// The graph as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GraphDocument {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GraphNode {
    pub name: String,
    pub version: Option<String>,
    pub state: State,
}

/// `from` needs `to` in `range`; `satisfied` when `to` runs in that range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub range: String,
    pub satisfied: bool,
}

/// The graph of every module the hub knows.
pub fn document(modules: &BTreeMap<String, std::sync::Arc<ModuleEntry>>) -> GraphDocument {
    let nodes = modules
        .values()
        .map(|e| GraphNode {
            name: e.name.clone(),
            version: e.manifest.as_ref().map(|m| m.version.clone()),
            state: e.state,
        })
        .collect();
    let mut edges = Vec::new();
    for entry in modules.values() {
        let Some(manifest) = &entry.manifest else {
            continue;
        };
        for (dependency, range) in &manifest.dependencies {
            edges.push(GraphEdge {
                from: entry.name.clone(),
                to: dependency.clone(),
                range: range.clone(),
                satisfied: unmet(
                    dependency,
                    range,
                    modules.get(dependency).map(|e| e.as_ref()),
                )
                .is_none(),
            });
        }
    }
    GraphDocument { nodes, edges }
}

/// The graph drawn as SVG: one column per depth (modules that need nothing on the left, their
/// dependents to the right), boxes coloured by state, an edge from each module to what it needs,
/// red and dashed with its range when unsatisfied.
pub fn svg(graph: &GraphDocument) -> String {
    // Depth: the longest chain of dependencies below a module (cycles cut at 0).
    let mut depth: BTreeMap<&str, usize> =
        graph.nodes.iter().map(|n| (n.name.as_str(), 0)).collect();
    for _ in 0..graph.nodes.len() {
        let mut changed = false;
        for edge in &graph.edges {
            let below = depth.get(edge.to.as_str()).copied().unwrap_or(0);
            if let Some(d) = depth.get_mut(edge.from.as_str())
                && *d <= below
                && below < graph.nodes.len()
            {
                *d = below + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let (width, height, gap_x, gap_y, margin) = (170.0, 44.0, 80.0, 22.0, 20.0);
    let mut columns: BTreeMap<usize, Vec<&GraphNode>> = BTreeMap::new();
    for node in &graph.nodes {
        columns
            .entry(depth[node.name.as_str()])
            .or_default()
            .push(node);
    }
    let mut place: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (column, nodes) in &columns {
        for (row, node) in nodes.iter().enumerate() {
            let x = margin + *column as f64 * (width + gap_x);
            let y = margin + row as f64 * (height + gap_y);
            place.insert(node.name.as_str(), (x, y));
        }
    }
    // At least as wide as the legend.
    let total_w = (margin * 2.0 + columns.len().max(1) as f64 * (width + gap_x) - gap_x).max(560.0);
    let rows = columns.values().map(Vec::len).max().unwrap_or(1).max(1);
    let total_h = margin * 2.0 + rows as f64 * (height + gap_y) - gap_y + 20.0;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0}" height="{total_h:.0}" viewBox="0 0 {total_w:.0} {total_h:.0}" font-family="sans-serif" font-size="13">
<title>BMC Hub module dependencies</title>
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>
<marker id="arrow-bad" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>
"##
    );
    for edge in &graph.edges {
        let (Some(&(fx, fy)), Some(&(tx, ty))) =
            (place.get(edge.from.as_str()), place.get(edge.to.as_str()))
        else {
            continue;
        };
        let (x1, y1, x2, y2) = (fx, fy + height / 2.0, tx + width, ty + height / 2.0);
        let (stroke, dash, marker) = if edge.satisfied {
            ("#555", "", "arrow")
        } else {
            ("#c0392b", r#" stroke-dasharray="6,4""#, "arrow-bad")
        };
        out.push_str(&format!(
            r#"<line class="edge{}" x1="{x1:.0}" y1="{y1:.0}" x2="{x2:.0}" y2="{y2:.0}" stroke="{stroke}" stroke-width="1.5"{dash} marker-end="url(#{marker})"><title>{} needs {} {}</title></line>
"#,
            if edge.satisfied { "" } else { " unsatisfied" },
            escape(&edge.from),
            escape(&edge.to),
            escape(&edge.range)
        ));
        out.push_str(&format!(
            r#"<text x="{:.0}" y="{:.0}" text-anchor="middle" font-size="11" fill="{stroke}">{}</text>
"#,
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 4.0,
            escape(&edge.range)
        ));
    }
    for node in &graph.nodes {
        let (x, y) = place[node.name.as_str()];
        let (fill, stroke) = match node.state {
            State::Running => ("#dff3e3", "#2e7d32"),
            State::Disabled => ("#eceff1", "#78909c"),
            State::Failed => ("#fde2e1", "#c0392b"),
        };
        let state = match node.state {
            State::Running => "running",
            State::Disabled => "disabled",
            State::Failed => "failed",
        };
        out.push_str(&format!(
            r#"<g class="node {state}"><rect x="{x:.0}" y="{y:.0}" width="{width:.0}" height="{height:.0}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/><text x="{:.0}" y="{:.0}" text-anchor="middle" font-weight="bold">{}</text><text x="{:.0}" y="{:.0}" text-anchor="middle" font-size="11">{} · {state}</text></g>
"#,
            x + width / 2.0,
            y + 18.0,
            escape(&node.name),
            x + width / 2.0,
            y + 34.0,
            escape(node.version.as_deref().unwrap_or("?")),
        ));
    }
    out.push_str(&format!(
        r##"<text x="{margin:.0}" y="{:.0}" font-size="11" fill="#555">green: running · grey: disabled · red: failed · dashed red edge: dependency not met</text>
</svg>
"##,
        total_h - 8.0
    ));
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
            manifest("app", &[("crm", "^1"), ("auth", "^1")]),
            manifest("crm", &[("auth", "^1")]),
            manifest("auth", &[]),
            manifest("zeta", &[]),
            manifest("beta", &[]),
        ];
        let graph = Graph::new(ms.iter().map(|m| (m.name.as_str(), m)));
        assert_eq!(graph.start_order(), ["auth", "beta", "crm", "app", "zeta"]);
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
