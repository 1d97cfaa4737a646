//! `cargo xtask bench scale`: how long a hub takes from its spawn until fifty modules serve.
//!
//! Fifty copies of the fixture library (built with one migration, already applied by a warm-up
//! start, so every start goes through the migration bookkeeping) are installed as `m00`…`m49`,
//! in ten groups of five: a diamond (`base ← left, right ← join`) with a tail, and each group's
//! base needing the previous group's tail, so the longest chain is forty dependencies deep. The
//! names run against the dependency order (`m49` needs nothing), so the load order cannot come
//! from sorting names. The same fifty without dependencies and a hub with no modules are
//! measured in the same rounds, interleaved; the target is all fifty serving within 1 s. With
//! `--against`, the other build (its hub, and the fixture built in its checkout) runs the same
//! layouts in the same rounds.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{BenchHub, Build, median};
use crate::build::{self, Profile};

const MODULES: usize = 50;
const ROUNDS: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    Empty,
    Flat,
    Graph,
}

pub fn run(profile: &Profile, against: Option<&Build>) -> anyhow::Result<()> {
    let libraries = build::libraries_under("host/tests/fixtures")?;
    let fixture = libraries
        .iter()
        .find(|l| l.lib == "fixture")
        .context("no fixture library under host/tests/fixtures")?;
    let built = build::build_variant(fixture, profile, Some("m"), None)?;
    let mut builds = vec![("this build", Build::current(), std::fs::read(&built)?)];
    if let Some(other) = against {
        builds.push(("--against", other.clone(), other_fixture(other)?));
    }
    let (url, _cluster) = crate::pg::database_url(crate::pg::Cluster::throwaway)?;
    let env = [("DATABASE_URL", url.as_str())];

    // Warm-up: applies the fifty migrations, so the measured starts find them applied.
    for (_, build, library) in &builds {
        drop(start(build, Layout::Graph, library, &env)?);
    }

    let layouts = [Layout::Empty, Layout::Flat, Layout::Graph];
    let mut times: Vec<[Vec<f64>; 3]> = builds.iter().map(|_| Default::default()).collect();
    for round in 1..=ROUNDS {
        for ((label, build, library), times) in builds.iter().zip(times.iter_mut()) {
            let mut row = Vec::new();
            for (i, layout) in layouts.into_iter().enumerate() {
                let started = Instant::now();
                let hub = start(build, layout, library, &env)?;
                let elapsed = serve_all(&hub, layout, started)?;
                times[i].push(elapsed);
                row.push(format!("{elapsed:.1}"));
            }
            println!(
                "scale round {round} ({label}): empty {} ms, 50 flat {} ms, 50 in a graph {} ms",
                row[0], row[1], row[2]
            );
        }
    }
    let mut medians = Vec::new();
    for ((label, _, _), times) in builds.iter().zip(times.iter_mut()) {
        let [empty, flat, graph] = times.each_mut().map(|t| median(t));
        println!("\nscale ({label}): from spawn until every module answers (median of {ROUNDS})");
        println!("  hub without modules            {empty:>8.1} ms");
        println!("  50 modules, no dependencies    {flat:>8.1} ms");
        println!("  50 modules, chains + diamonds  {graph:>8.1} ms   (target ≤ 1000 ms)");
        println!(
            "  graph/flat {:.3}, per module {:.2} ms above the empty hub",
            graph / flat,
            (graph - empty) / MODULES as f64
        );
        if graph > 1000.0 {
            println!("  ABOVE TARGET");
        }
        medians.push([empty, flat, graph]);
    }
    if let [this, other] = medians.as_slice() {
        println!(
            "\nthis build / --against (medians): empty {:.3}, flat {:.3}, graph {:.3}",
            this[0] / other[0],
            this[1] / other[1],
            this[2] / other[2]
        );
    }
    Ok(())
}

/// The fixture library (build `m`) of another checkout, built there in release.
fn other_fixture(other: &Build) -> anyhow::Result<Vec<u8>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    build::run_command(
        std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "fixture-module"])
            .current_dir(&other.checkout)
            .env("HUB_FIXTURE_BUILD", "m")
            .env_remove("CARGO_TARGET_DIR"),
    )?;
    let file = format!(
        "{}fixture{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let path = other.checkout.join("target/release").join(file);
    std::fs::read(&path).with_context(|| format!("read {}", path.display()))
}

fn name(i: usize) -> String {
    // Against the dependency order: module 0 of the layout (needing nothing) is `m49`.
    format!("m{:02}", MODULES - 1 - i)
}

/// The dependencies of the layout's module `i`: ten groups of five, each a diamond with a tail,
/// each group's base needing the previous group's tail.
fn needs(i: usize) -> Value {
    let (group, place) = (i / 5, i % 5);
    let base = group * 5;
    let pairs: Vec<(usize, &str)> = match place {
        0 if group > 0 => vec![(base - 1, "^0.1")],
        0 => vec![],
        1 | 2 => vec![(base, ">=0.1, <0.2")],
        3 => vec![(base + 1, "^0.1"), (base + 2, "~0.1")],
        _ => vec![(base + 3, "^0.1.0")],
    };
    pairs
        .into_iter()
        .map(|(j, range)| (name(j), Value::from(range)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub(super) fn start(
    build: &Build,
    layout: Layout,
    library: &[u8],
    env: &[(&str, &str)],
) -> anyhow::Result<BenchHub> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    if layout != Layout::Empty {
        for i in 0..MODULES {
            let mut manifest = json!({"name": name(i), "version": "0.1.0", "enabled": true});
            if layout == Layout::Graph {
                manifest["dependencies"] = needs(i);
            }
            install(&plugins.join(name(i)), &name(i), library, &manifest)?;
        }
    }
    BenchHub::launch(&build.binary, dir, env, &[])
}

fn install(folder: &Path, name: &str, library: &[u8], manifest: &Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)?;
    std::fs::write(
        folder.join(format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )),
        library,
    )?;
    std::fs::write(
        folder.join("module.json"),
        serde_json::to_vec_pretty(manifest)?,
    )?;
    Ok(())
}

/// Milliseconds from `started` until every module of the layout answered 200 (the hub itself,
/// for the empty layout); fails unless every module is running.
pub(super) fn serve_all(hub: &BenchHub, layout: Layout, started: Instant) -> anyhow::Result<f64> {
    let addr = hub.base.trim_start_matches("http://").to_owned();
    let deadline = started + Duration::from_secs(30);
    let paths: Vec<String> = match layout {
        Layout::Empty => vec!["/healthz".to_owned()],
        _ => (0..MODULES)
            .map(|i| format!("/api/v1/{}/build", name(i)))
            .collect(),
    };
    for path in &paths {
        loop {
            // The bench hubs' admin token: module routes answer signed-in callers.
            match get(&addr, path, Some("bench")) {
                Ok((200, _)) => break,
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => bail!("{path} did not answer 200 within 30 s: {other:?}"),
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    if layout != Layout::Empty {
        let (status, body) = get(&addr, "/api/v1/modules/graph", Some("bench"))?;
        let graph: Value = serde_json::from_str(&body).context("graph JSON")?;
        let nodes = graph["nodes"].as_array().map_or(&[][..], Vec::as_slice);
        let running = nodes.iter().filter(|n| n["state"] == "running").count();
        let edges = graph["edges"].as_array().map_or(0, Vec::len);
        let want_edges = if layout == Layout::Graph { 59 } else { 0 };
        if status != 200 || running != MODULES || edges != want_edges {
            bail!("expected {MODULES} running modules and {want_edges} edges: {status} {body}");
        }
        let (status, body) = get(&addr, "/api/v1/modules/m00", Some("bench"))?;
        let module: Value = serde_json::from_str(&body).context("module JSON")?;
        let migrations = &module["migrations"];
        if status != 200
            || migrations["applied"].as_array().map(Vec::len) != Some(1)
            || migrations["pending"] != json!([])
        {
            bail!("expected m00's one migration applied: {status} {body}");
        }
    }
    Ok(elapsed)
}

/// One `GET` on a fresh connection: status and body.
pub(super) fn get(addr: &str, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    exchange(addr, &request)
}

/// One `POST` of a JSON body with `token` on a fresh connection: status and body.
pub(super) fn post_json(
    addr: &str,
    path: &str,
    token: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, &request)
}

fn exchange(addr: &str, request: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_has_chains_and_diamonds_and_59_edges() {
        let edges: usize = (0..MODULES)
            .map(|i| needs(i).as_object().map_or(0, serde_json::Map::len))
            .sum();
        assert_eq!(edges, 59);
        assert_eq!(needs(0), json!({}));
        assert_eq!(
            needs(3),
            json!({"m48": "^0.1", "m47": "~0.1"}),
            "the join of the first diamond"
        );
        assert_eq!(needs(5), json!({"m45": "^0.1"}), "the next group's base");
    }
}
