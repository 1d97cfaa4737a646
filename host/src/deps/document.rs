//! The dependency graph as the API shows it: every module with its state, and an edge from each
//! to what it needs, satisfied or not; as JSON, and drawn as SVG (a layered layout: column =
//! longest chain below a module).

use std::collections::BTreeMap;

use serde::Serialize;

use super::checks::unmet;
use crate::registry::{Snapshot, State};

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
pub fn document(modules: &Snapshot) -> GraphDocument {
    let nodes = modules
        .values()
        .map(|e| GraphNode {
            name: e.name.clone(),
            version: e.version().map(str::to_owned),
            state: e.kind(),
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
                satisfied: unmet(dependency, range, modules.get(dependency)).is_none(),
            });
        }
    }
    GraphDocument { nodes, edges }
}

/// The graph drawn as SVG: one column per depth (modules that need nothing on the left, their
/// dependents to the right), boxes coloured by state, an edge from each module to what it needs,
/// red and dashed with its range when unsatisfied.
pub fn svg(graph: &GraphDocument) -> String {
    svg_linked(graph, None)
}

/// The picture, each node a link to `link` followed by the module's name when `link` is given
/// (the console's module pages).
pub fn svg_linked(graph: &GraphDocument, link: Option<&str>) -> String {
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
        if let Some(link) = link {
            out.push_str(&format!(
                r#"<a href="{}{}" aria-label="{} ({state})">"#,
                escape(link),
                escape(&node.name),
                escape(&node.name)
            ));
        }
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
        if link.is_some() {
            out.push_str("</a>\n");
        }
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
