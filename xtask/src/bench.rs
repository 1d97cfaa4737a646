//! `cargo xtask bench`: performance numbers as ratios against a baseline measured in the same
//! run, interleaved (A B A B …) and reported as medians, beside counts noise cannot move.
//!
//! - `dispatch`: the same trivial JSON handler (`json!({"pong": true})`, serialized) served by a
//!   module through the ABI (`GET /api/v1/hello/ping`) and by a route of the hub's own
//!   (`GET /ping`), in one release hub process: instructions per request under callgrind (and
//!   the functions the module route adds), then wrk over loopback, with the hub's CPU time per
//!   request from `/proc`.
//! - `db`: one row by primary key through the gateway against a host route running the same
//!   query on the same pool.
//! - `reload`: a module swapped 100 times under load (see `bench/reload.rs`).
//! - `scale`: fifty modules in chains and diamonds, from spawn until all serve (`bench/scale.rs`).
//! - `console`: the console's pages with fifty modules, against the JSON they draw from
//!   (`bench/console.rs`).
//! - `fleet`: three hubs in fleet mode behind nginx: convergence of 100 changes, failed
//!   requests during upgrades, throughput of three hubs against one (`host/benches/fleet.rs`).
//! - `abi`: criterion: one handler call through the ABI against the same body called directly.
//!
//! `--against <checkout>` measures another build (a checkout of another commit, built with
//! `cargo xtask build --release`) in the same run: `dispatch` counts and times both, `scale`
//! interleaves both.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::build::{self, Profile, root};

mod calls;
mod console;
mod count;
mod hub;
mod reload;
mod scale;

pub use self::hub::{BenchHub, Build};

/// Pairs of the dispatch benchmark, whose CPU time per request is reported as a median.
const DISPATCH_PAIRS: usize = 10;

/// Pairs of the database benchmark (PostgreSQL shares the two cores: more noise than dispatch).
const DB_PAIRS: usize = 7;

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Module route vs native route: instructions per request (callgrind), CPU time per request
    /// and throughput (wrk).
    Dispatch,
    /// One handler call through the ABI vs direct (criterion).
    Abi,
    /// A module route reading one row through the gateway vs a host route running the same
    /// query on the same pool (wrk).
    Db,
    /// A module's library swapped 100 times under load: failed requests, time to the new
    /// version, reload duration, memory per reload.
    Reload,
    /// Fifty modules in chains and diamonds: time from the hub's spawn until all of them serve.
    Scale,
    /// The console's pages with fifty modules: ms per page against the JSON they draw from.
    Console,
    /// A call between modules (`req.call`) against the same route over HTTP, timed in a module.
    Calls,
    /// Three hubs in fleet mode behind nginx: convergence, upgrades under load, throughput.
    Fleet,
    /// All of them.
    All,
}

/// How a benchmark runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per wrk run.
    pub seconds: u64,
    /// Another build to measure beside this one.
    pub against: Option<PathBuf>,
    /// Let callgrind simulate the caches too (misses per request).
    pub cache_sim: bool,
    /// Dispatch and db: only the counts, not the timed runs.
    pub counted_only: bool,
}

pub fn bench(which: Which, options: &Options) -> anyhow::Result<()> {
    let profile = Profile::from_release(true);
    build::build_with(&profile, &["bench-routes"])?;
    let against = options.against.as_deref().map(Build::other).transpose()?;
    if matches!(which, Which::Dispatch | Which::All) {
        dispatch(options, against.as_ref())?;
    }
    if matches!(which, Which::Db | Which::All) {
        db(options, against.as_ref())?;
    }
    if matches!(which, Which::Reload | Which::All) {
        reload::run(&profile)?;
    }
    if matches!(which, Which::Scale | Which::All) {
        scale::run(&profile, against.as_ref())?;
    }
    if matches!(which, Which::Console | Which::All) {
        console::run(&profile)?;
    }
    if matches!(which, Which::Calls | Which::All) {
        calls::run(&profile)?;
    }
    if matches!(which, Which::Fleet | Which::All) {
        fleet(&profile)?;
    }
    if matches!(which, Which::Abi | Which::All) {
        abi()?;
    }
    Ok(())
}

/// One wrk run: requests/s and latency percentiles, and how many requests it made.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: f64,
}

/// Install wrk when it is missing and this is root (Debian), else say how.
fn ensure_wrk() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    build::apt_install(&["wrk"]).context("wrk drives the HTTP benchmarks")
}

fn wrk(url: &str, seconds: u64, connections: u32) -> anyhow::Result<Run> {
    ensure_wrk()?;
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            // The bench hubs' admin token: module routes answer signed-in callers (native routes
            // read the same header and ignore it).
            "-H",
            "Authorization: Bearer bench",
            url,
        ])
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}");
    }
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors on {url}:\n{text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let percentile = |p: &str| -> anyhow::Result<f64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(p))
            .with_context(|| format!("no {p} latency in wrk output:\n{text}"))?;
        parse_duration_us(line.trim_start().trim_start_matches(p).trim())
    };
    // "  123456 requests in 5.00s, 12.34MB read"
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .with_context(|| format!("no request count in wrk output:\n{text}"))?;
    Ok(Run {
        rps,
        p50_us: percentile("50%")?,
        p99_us: percentile("99%")?,
        requests,
    })
}

/// wrk's `123.45us`, `1.20ms`, `2.00s` in microseconds.
fn parse_duration_us(text: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        bail!("unknown duration {text:?}")
    };
    Ok(number
        .parse::<f64>()
        .with_context(|| format!("bad duration {text:?}"))?
        * factor)
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The routes the dispatch benchmark compares: the module's and the hub's own, answering the
/// same JSON built the same way.
const MODULE_PING: &str = "/api/v1/hello/ping";
/// hello's same answer on a route for signed-in callers.
const MODULE_PONG: &str = "/api/v1/hello/pong";
const NATIVE_PING: &str = "/ping";
/// hello's typed route: a `Path<u64>` checked by the hub and read by the module, a `Json<T>`
/// answer.
const MODULE_TYPED: &str = "/api/v1/hello/echo/42";

fn dispatch(options: &Options, against: Option<&Build>) -> anyhow::Result<()> {
    println!("dispatch on {}", count::machine());
    let mut builds = vec![("this build", Build::current())];
    if let Some(other) = against {
        builds.push(("--against", other.clone()));
    }
    // Counted: instructions per request, the same on every machine.
    let mut counted = Vec::new();
    for (label, build) in &builds {
        // The typed route only in this build (an older one may not have it).
        let mut paths = vec![(NATIVE_PING, Vec::new()), (MODULE_PING, Vec::new())];
        if *label == "this build" {
            paths.push((MODULE_TYPED, Vec::new()));
        }
        let out = count::out_dir(&format!("dispatch-{}", label.trim_start_matches('-')));
        let counts = count::callgrind(build, &["hello"], &[], &paths, options.cache_sim, &out)?;
        counted.push((*label, counts));
    }
    println!();
    println!("| build | route | instructions/request (callgrind) | from a run with no requests |");
    println!("|---|---|---:|---:|");
    for (label, counts) in &counted {
        for (route, count) in [NATIVE_PING, MODULE_PING, MODULE_TYPED].iter().zip(counts) {
            println!(
                "| {label} | `GET {route}` | {:.0} | {:.0} |",
                count.per_request, count.per_request_from_zero
            );
        }
    }
    for (label, counts) in &counted {
        let (native, module) = (&counts[0], &counts[1]);
        println!(
            "\n{label}: module/native instructions per request {:.3} (target ≤ 1.06; module ≤ 23000: {})",
            module.per_request / native.per_request,
            if module.per_request <= 23_000.0 {
                "met"
            } else {
                "NOT met"
            }
        );
        println!("what the module route adds, per request, by function (self cost):");
        for (function, cost) in count::added(module, native, 20) {
            println!("  {cost:>+8.1}  {function}");
        }
        let Some(typed) = counts.get(2) else {
            continue;
        };
        println!(
            "{label}: typed route (Path<u64> + Json<T>) / native {:.3}, / untyped module route {:.3}",
            typed.per_request / native.per_request,
            typed.per_request / module.per_request
        );
        println!("what the typed route adds over the untyped one, by function (self cost):");
        for (function, cost) in count::added(typed, module, 15) {
            println!("  {cost:>+8.1}  {function}");
        }
    }
    if let [(_, this), (_, other)] = counted.as_slice() {
        println!("\nthis build against --against, per request:");
        for (i, route) in [NATIVE_PING, MODULE_PING].iter().enumerate() {
            println!(
                "  GET {route}: {:.0} vs {:.0} instructions ({:+.1} %)",
                this[i].per_request,
                other[i].per_request,
                (this[i].per_request / other[i].per_request - 1.0) * 100.0
            );
        }
        println!("functions that changed on the module route (this build − --against):");
        for (function, cost) in count::added(&this[1], &other[1], 20) {
            println!("  {cost:>+8.1}  {function}");
        }
    }
    {
        let (url, _cluster) = database_with_token()?;
        with_token(options, &url)?;
        with_metrics(options, &url)?;
    }
    if options.counted_only {
        return Ok(());
    }
    // Timed: throughput and CPU time per request, interleaved; this build also with metrics on.
    let mut timed = builds
        .iter()
        .map(|(label, build)| (label.to_string(), build.clone(), false))
        .collect::<Vec<_>>();
    timed.push(("this build, metrics on".to_owned(), Build::current(), true));
    for (label, build, metrics) in &timed {
        let mut env = vec![("HUB_WORKERS", "1")];
        if *metrics {
            env.push(("HUB_METRICS_BIND", "127.0.0.1:0"));
        }
        let hub = BenchHub::start_build(build, &["hello"], &env, &[])?;
        let module = format!("{}{MODULE_PING}", hub.base);
        let native = format!("{}{NATIVE_PING}", hub.base);
        println!("\n{label}: module {module} vs native {native}");
        compare(
            &module,
            &native,
            options.seconds,
            0.95,
            DISPATCH_PAIRS,
            Some(hub.pid()),
        )?;
    }
    Ok(())
}

/// The bench hubs' admin token as a header.
fn admin() -> Vec<(String, String)> {
    vec![("Authorization".to_owned(), "Bearer bench".to_owned())]
}

/// An API token the dispatch benchmark puts in the database itself (the hub keeps its SHA-256).
const BENCH_API_TOKEN: &str = "hub_benchbenchbenchbenchbenchbenchbenchbench012";

/// A database with the hub's tables and [`BENCH_API_TOKEN`] in them; the cluster (if one was
/// started for it) stops when the guard drops.
fn database_with_token() -> anyhow::Result<(String, Option<crate::pg::Cluster>)> {
    let (url, cluster) = crate::pg::database_url(crate::pg::Cluster::throwaway)?;
    // The hub's migrations make the tables.
    BenchHub::start_build(
        &Build::current(),
        &["hello"],
        &[("DATABASE_URL", url.as_str())],
        &[],
    )?;
    let insert = format!(
        "INSERT INTO hub_tokens (user_id, name, hash, permissions) \
         SELECT id, 'bench', sha256(convert_to('{BENCH_API_TOKEN}', 'UTF8')), '{{*}}' \
         FROM hub_users WHERE subject = 'hub:admin'"
    );
    psql(&url, &insert)?;
    Ok((url, cluster))
}

fn token_header() -> Vec<(String, String)> {
    vec![(
        "Authorization".to_owned(),
        format!("Bearer {BENCH_API_TOKEN}"),
    )]
}

/// Counting off and on, in hubs of this build with a database: off is no `HUB_METRICS_BIND`
/// and `HUB_USAGE=false`; on is a metrics listener on a free port and usage analytics on, every
/// request counted and its caller kept. The native route, `hello`'s public ping (anonymous) and
/// its pong for signed-in callers (with an API token: the caller goes into the route's set).
fn with_metrics(options: &Options, url: &str) -> anyhow::Result<()> {
    let build = Build::current();
    let paths = [
        (NATIVE_PING, Vec::new()),
        (MODULE_PING, Vec::new()),
        (MODULE_PONG, token_header()),
    ];
    let off = count::callgrind(
        &build,
        &["hello"],
        &[("DATABASE_URL", url), ("HUB_USAGE", "false")],
        &paths,
        options.cache_sim,
        &count::out_dir("dispatch-metrics-off"),
    )?;
    let on = count::callgrind(
        &build,
        &["hello"],
        &[
            ("DATABASE_URL", url),
            ("HUB_USAGE", "true"),
            ("HUB_METRICS_BIND", "127.0.0.1:0"),
        ],
        &paths,
        options.cache_sim,
        &count::out_dir("dispatch-metrics-on"),
    )?;
    println!(
        "
counting off and on (metrics and usage analytics), instructions per request (callgrind):"
    );
    println!("| route | off | on | on/off |");
    println!("|---|---:|---:|---:|");
    let names = [
        format!("`GET {NATIVE_PING}`"),
        format!("`GET {MODULE_PING}` anonymous"),
        format!("`GET {MODULE_PONG}` with an API token"),
    ];
    for (i, route) in names.iter().enumerate() {
        println!(
            "| {route} | {:.0} | {:.0} | {:.3} |",
            off[i].per_request,
            on[i].per_request,
            on[i].per_request / off[i].per_request
        );
    }
    for (i, route) in [(1, MODULE_PING), (2, MODULE_PONG)] {
        let ratio = on[i].per_request / off[i].per_request;
        println!(
            "GET {route} with counting on: {ratio:.3} of off (target ≤ 1.05: {})",
            if ratio <= 1.05 { "met" } else { "NOT met" },
        );
        println!("what counting adds to it, by function (self cost):");
        for (function, cost) in count::added(&on[i], &off[i], 12) {
            println!("  {cost:>+8.1}  {function}");
        }
    }
    Ok(())
}

/// `hello`'s ping (a public route) anonymous, the same route with a valid API token (not resolved:
/// the module does not ask who calls, and usage analytics are off), and its pong (the same handler
/// on a route for signed-in callers, whose token the hub verifies) with the token, on a hub with a
/// database (tokens live there): what a token costs. Target: ≤ 5 %.
fn with_token(options: &Options, url: &str) -> anyhow::Result<()> {
    let env = [("DATABASE_URL", url), ("HUB_USAGE", "false")];
    let build = Build::current();
    let paths = [
        (MODULE_PING, Vec::new()),
        (MODULE_PING, token_header()),
        (MODULE_PONG, token_header()),
    ];
    let out = count::out_dir("dispatch-token");
    let counts = count::callgrind(&build, &["hello"], &env, &paths, options.cache_sim, &out)?;
    let (anonymous, carried, verified) = (&counts[0], &counts[1], &counts[2]);
    println!("\nwith a database, instructions per request (callgrind):");
    println!("| call | instructions/request | against anonymous |");
    println!("|---|---:|---:|");
    for (call, count) in [
        (format!("`GET {MODULE_PING}` anonymous"), anonymous),
        (
            format!("`GET {MODULE_PING}` with an API token (public: not resolved)"),
            carried,
        ),
        (
            format!("`GET {MODULE_PONG}` with an API token (signed in: verified)"),
            verified,
        ),
    ] {
        println!(
            "| {call} | {:.0} | {:.3} |",
            count.per_request,
            count.per_request / anonymous.per_request
        );
    }
    let ratio = verified.per_request / anonymous.per_request;
    println!(
        "a verified API token: {ratio:.3} of the anonymous call (target ≤ 1.05: {})",
        if ratio <= 1.05 { "met" } else { "NOT met" }
    );
    println!("what the verified token adds, per request, by function (self cost):");
    for (function, cost) in count::added(verified, anonymous, 15) {
        println!("  {cost:>+8.1}  {function}");
    }
    Ok(())
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let status = Command::new("psql")
        .args([url, "-q", "-c", sql])
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run psql ({e}): install the PostgreSQL client (apt-get install postgresql-client)"))?;
    if !status.success() {
        bail!("psql failed: {sql}");
    }
    Ok(())
}

/// The routes the database benchmark compares: one customer through the module and the
/// gateway, and the same query run by the hub itself (built with `bench-routes`).
const MODULE_CUSTOMER: &str = "/api/v1/customers/42";
const NATIVE_CUSTOMER: &str = "/bench/customer/42";

fn db(options: &Options, against: Option<&Build>) -> anyhow::Result<()> {
    let (url, _cluster) = crate::pg::database_url(crate::pg::Cluster::throwaway)?;
    let mut builds = vec![("this build", Build::current())];
    if let Some(other) = against {
        builds.push(("--against", other.clone()));
    }
    // The table, made by the module's migration, filled once.
    BenchHub::start_build(
        &builds[0].1,
        &["customers"],
        &[("DATABASE_URL", url.as_str())],
        &[],
    )?;
    seed_customers(&url)?;
    // Counted: the hub's instructions per request (PostgreSQL's are not counted).
    for (label, build) in &builds {
        let paths = [(NATIVE_CUSTOMER, admin()), (MODULE_CUSTOMER, admin())];
        let out = count::out_dir(&format!("db-{}", label.trim_start_matches('-')));
        let env = [("DATABASE_URL", url.as_str())];
        let counts = count::callgrind(build, &["customers"], &env, &paths, false, &out)?;
        let (native, module) = (&counts[0], &counts[1]);
        println!(
            "\n{label}: instructions per request (callgrind, the hub only): native {:.0}, module {:.0}; module/native {:.3}",
            native.per_request,
            module.per_request,
            module.per_request / native.per_request
        );
        println!("what the module route adds, per request, by function (self cost):");
        for (function, cost) in count::added(module, native, 20) {
            println!("  {cost:>+8.1}  {function}");
        }
        let Some(typed) = counts.get(2) else {
            continue;
        };
        println!(
            "{label}: typed route (Path<u64> + Json<T>) / native {:.3}, / untyped module route {:.3}",
            typed.per_request / native.per_request,
            typed.per_request / module.per_request
        );
        println!("what the typed route adds over the untyped one, by function (self cost):");
        for (function, cost) in count::added(typed, module, 15) {
            println!("  {cost:>+8.1}  {function}");
        }
    }
    if options.counted_only {
        return Ok(());
    }
    for (label, build) in &builds {
        let hub = BenchHub::start_build(
            build,
            &["customers"],
            &[("HUB_WORKERS", "1"), ("DATABASE_URL", url.as_str())],
            &[],
        )?;
        let module = format!("{}{MODULE_CUSTOMER}", hub.base);
        let native = format!("{}{NATIVE_CUSTOMER}", hub.base);
        println!(
            "\n{label}: db: module {module} (READ_ONLY on, through the gateway) vs native {native} (same query, same pool)"
        );
        compare(
            &module,
            &native,
            options.seconds,
            0.90,
            DB_PAIRS,
            Some(hub.pid()),
        )?;
    }
    Ok(())
}

/// The customers module's migration made the table; fill it (the benchmark asks for one row by
/// primary key).
fn seed_customers(url: &str) -> anyhow::Result<()> {
    let seed = "INSERT INTO customers_customers (name, email) \
                SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g";
    psql(url, seed).context("seeding customers_customers failed")
}

/// Interleaved wrk runs of `module` and `native` (`pairs` of them); the table of medians and the
/// ratio. With the hub's `pid`, also its CPU time per request.
fn compare(
    module: &str,
    native: &str,
    seconds: u64,
    target: f64,
    pairs: usize,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    println!("warming up…");
    wrk(module, 2, 32)?;
    wrk(native, 2, 32)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut cpu_a, mut cpu_b) = (Vec::new(), Vec::new());
    // The hub's CPU time per request during one wrk run.
    let timed = |url: &str, cpu: &mut Vec<f64>| -> anyhow::Result<Run> {
        let before = pid.map(count::cpu_micros).transpose()?;
        let run = wrk(url, seconds, 32)?;
        if let (Some(pid), Some(before)) = (pid, before) {
            cpu.push((count::cpu_micros(pid)? - before) / run.requests);
        }
        Ok(run)
    };
    for pair in 1..=pairs {
        let ra = timed(module, &mut cpu_a)?;
        let rb = timed(native, &mut cpu_b)?;
        let cpu = match (cpu_a.last(), cpu_b.last()) {
            (Some(ca), Some(cb)) => format!(" | CPU µs/request module {ca:.2} native {cb:.2}"),
            _ => String::new(),
        };
        println!(
            "pair {pair}: module {:>9.0} req/s p50 {:>6.0} µs p99 {:>6.0} µs | native {:>9.0} req/s p50 {:>6.0} µs p99 {:>6.0} µs | ratio {:.3}{cpu}",
            ra.rps,
            ra.p50_us,
            ra.p99_us,
            rb.rps,
            rb.p50_us,
            rb.p99_us,
            ra.rps / rb.rps
        );
        a.push(ra);
        b.push(rb);
    }
    let med =
        |runs: &[Run], f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    let (ma, mb) = (med(&a, |r| r.rps), med(&b, |r| r.rps));
    println!();
    println!("| route | req/s (median) | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    let path = |url: &str| {
        url.splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .unwrap_or_default()
    };
    println!(
        "| module `GET {}` | {ma:.0} | {:.0} | {:.0} |",
        path(module),
        med(&a, |r| r.p50_us),
        med(&a, |r| r.p99_us)
    );
    println!(
        "| native `GET {}` | {mb:.0} | {:.0} | {:.0} |",
        path(native),
        med(&b, |r| r.p50_us),
        med(&b, |r| r.p99_us)
    );
    // The median of the per-pair ratios: each pair ran back to back, so drift cancels out.
    let ratio = median(
        &mut a
            .iter()
            .zip(&b)
            .map(|(a, b)| a.rps / b.rps)
            .collect::<Vec<_>>(),
    );
    println!();
    if !cpu_a.is_empty() {
        let (ca, cb) = (median(&mut cpu_a.clone()), median(&mut cpu_b.clone()));
        let per_pair = median(
            &mut cpu_b
                .iter()
                .zip(&cpu_a)
                .map(|(n, m)| n / m)
                .collect::<Vec<_>>(),
        );
        println!(
            "hub CPU time per request (utime + stime from /proc, median of {pairs}): module {ca:.2} µs, native {cb:.2} µs; native/module {per_pair:.3}"
        );
    }
    println!(
        "module/native throughput: {ratio:.3} (median of per-pair ratios; ratio of medians {:.3}; target ≥ {target}: {}); {pairs} interleaved pairs of {seconds} s, wrk -t1 -c32, hub with 1 worker, {} cores",
        ma / mb,
        if ratio >= target { "met" } else { "NOT met" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    Ok(())
}

/// `host/benches/fleet.rs` over the release hub and fixtures, with nginx, wrk and a PostgreSQL
/// cluster of its own (or `DATABASE_URL`).
fn fleet(profile: &Profile) -> anyhow::Result<()> {
    crate::packages::nginx()?;
    ensure_wrk()?;
    let artifacts = build::target_dir().join("bench-artifacts");
    crate::fixtures::build_fixtures(profile, &artifacts)?;
    let (url, _cluster) = crate::pg::database_url(crate::pg::Cluster::throwaway)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    build::run_command(
        Command::new(cargo)
            .args(["bench", "-p", "host", "--bench", "fleet"])
            .current_dir(root())
            .env("DATABASE_URL", url)
            .env("HUB_TEST_ARTIFACTS", &artifacts)
            .env(
                "HUB_TEST_BIN",
                build::target_dir().join(profile.dir()).join("hub"),
            )
            .env("HUB_TEST_PLUGINS", root().join("plugins")),
    )
}

fn abi() -> anyhow::Result<()> {
    let library: PathBuf = root().join("plugins/hello").join(format!(
        "{}hello{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    build::run_command(
        Command::new(cargo)
            .args(["bench", "-p", "host", "--bench", "abi_call"])
            .current_dir(root())
            .env("HUB_BENCH_LIBRARY", &library),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_durations_and_medians() {
        assert_eq!(parse_duration_us("123.50us").unwrap(), 123.5);
        assert_eq!(parse_duration_us("1.20ms").unwrap(), 1200.0);
        assert_eq!(parse_duration_us("2.00s").unwrap(), 2_000_000.0);
        assert!(parse_duration_us("3m").is_err());
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
