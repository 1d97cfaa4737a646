//! `cargo xtask bench console`: how long the console's pages take with fifty modules.
//!
//! The hub of `bench scale` (fifty fixture modules in chains and diamonds, their migrations
//! applied, with a database) and sixty audit rows (tokens made); then each page is asked for in
//! turn, round after round (interleaved, so a slow moment hits every page alike), on a fresh
//! connection with the admin token, as the browser's next click would: the modules list, its
//! live rows, a module's page, the graph, the audit log, the tokens page. The baseline, measured
//! in the same rounds, is `GET /api/v1/modules`: the JSON the list page is drawn from. Reported:
//! the median and the 95th percentile of each, and each median over the baseline's. The target
//! is every page within 50 ms.

use std::time::Instant;

use anyhow::{Context as _, bail};

use super::scale::{self, Layout};
use super::{Build, median};
use crate::build::{self, Profile};

const ROUNDS: usize = 40;

/// The pages, after the baseline.
const PAGES: &[(&str, &str)] = &[
    ("GET /api/v1/modules (baseline)", "/api/v1/modules"),
    ("modules list   /admin", "/admin"),
    ("live rows      /admin/modules/rows", "/admin/modules/rows"),
    ("module page    /admin/modules/m00", "/admin/modules/m00"),
    ("graph          /admin/graph", "/admin/graph"),
    ("audit log      /admin/audit", "/admin/audit"),
    ("tokens         /admin/tokens", "/admin/tokens"),
];

pub fn run(profile: &Profile) -> anyhow::Result<()> {
    let libraries = build::libraries_under("host/tests/fixtures")?;
    let fixture = libraries
        .iter()
        .find(|l| l.lib == "fixture")
        .context("no fixture library under host/tests/fixtures")?;
    let library = std::fs::read(build::build_variant(fixture, profile, Some("m"), None)?)?;
    let (url, _cluster) = crate::pg::database_url(crate::pg::Cluster::throwaway)?;
    let env = [("DATABASE_URL", url.as_str())];
    let started = Instant::now();
    let hub = scale::start(&Build::current(), Layout::Graph, &library, &env)?;
    scale::serve_all(&hub, Layout::Graph, started)?;
    let addr = hub.base.trim_start_matches("http://").to_owned();
    for i in 0..60 {
        let body = format!(r#"{{"name": "bench {i}", "permissions": ["modules.read"]}}"#);
        let (status, answer) = scale::post_json(&addr, "/api/v1/tokens", "bench", &body)?;
        if status != 201 {
            bail!("POST /api/v1/tokens answered {status}: {answer}");
        }
    }
    // Warm-up: every page once, each must answer 200 with a page.
    for (label, path) in PAGES {
        let (status, body) = scale::get(&addr, path, Some("bench"))?;
        if status != 200 || body.len() < 100 {
            bail!("{label} answered {status}: {body}");
        }
    }
    let mut times: Vec<Vec<f64>> = PAGES.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for ((_, path), times) in PAGES.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            let (status, _) = scale::get(&addr, path, Some("bench"))?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            if status != 200 {
                bail!("{path} answered {status}");
            }
        }
    }
    println!(
        "\nconsole: 50 modules (chains and diamonds), 60+ audit rows; ms per page on a fresh connection ({ROUNDS} rounds, interleaved)"
    );
    println!(
        "  {:<38} {:>8} {:>8} {:>10}",
        "", "median", "p95", "/baseline"
    );
    let mut baseline = None;
    let mut over = Vec::new();
    for ((label, _), times) in PAGES.iter().zip(times.iter_mut()) {
        let mid = median(times);
        times.sort_by(f64::total_cmp);
        let p95 = times[(times.len() * 95).div_ceil(100) - 1];
        let base = *baseline.get_or_insert(mid);
        println!("  {label:<38} {mid:>8.2} {p95:>8.2} {:>10.2}", mid / base);
        if p95 > 50.0 {
            over.push(*label);
        }
    }
    if over.is_empty() {
        println!("  every page within 50 ms (p95)");
    } else {
        println!("  ABOVE TARGET (p95 > 50 ms): {}", over.join(", "));
    }
    hub.stop()
}
