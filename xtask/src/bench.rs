//! `cargo xtask bench`: performance numbers as ratios against a baseline measured in the same
//! run, interleaved (A B A B …) and reported as medians.
//!
//! - `dispatch`: the same trivial JSON handler served by a module through the ABI
//!   (`GET /api/v1/hello/ping`) and by a route of the hub's own (`GET /ping`), in one release hub
//!   process, driven by wrk over loopback.
//! - `db`: one row by primary key through the gateway against a host route running the same
//!   query on the same pool.
//! - `reload`: a module swapped 100 times under load (see `bench/reload.rs`).
//! - `scale`: fifty modules in chains and diamonds, from spawn until all serve (`bench/scale.rs`).
//! - `abi`: criterion: one handler call through the ABI against the same body called directly.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::build::{self, Profile, root, target_dir};

mod reload;
mod scale;

/// Pairs of interleaved runs (at least 3: two cores shared with the load generator make one pair
/// noise).
const PAIRS: usize = 5;

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Module route vs native route over HTTP (wrk).
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
    /// All of them.
    All,
}

pub fn bench(which: Which, seconds: u64) -> anyhow::Result<()> {
    let profile = Profile::from_release(true);
    build::build_with(&profile, &["bench-routes"])?;
    if matches!(which, Which::Dispatch | Which::All) {
        dispatch(seconds)?;
    }
    if matches!(which, Which::Db | Which::All) {
        db(seconds)?;
    }
    if matches!(which, Which::Reload | Which::All) {
        reload::run(&profile)?;
    }
    if matches!(which, Which::Scale | Which::All) {
        scale::run(&profile)?;
    }
    if matches!(which, Which::Abi | Which::All) {
        abi()?;
    }
    Ok(())
}

/// A release hub serving a temporary `MODULES_DIR` holding copies of the given example modules.
pub struct BenchHub {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
    /// The hub's output lines, as they come.
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BenchHub {
    pub fn start(modules: &[&str], env: &[(&str, &str)]) -> anyhow::Result<BenchHub> {
        let dir = tempfile::tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins)?;
        for module in modules {
            let from = root().join("plugins").join(module);
            let to = plugins.join(module);
            std::fs::create_dir_all(&to)?;
            let lib = format!(
                "{}{module}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            );
            for file in ["module.json", lib.as_str()] {
                std::fs::copy(from.join(file), to.join(file))
                    .with_context(|| format!("copy {}/{file}", from.display()))?;
            }
        }
        BenchHub::start_in(dir, env)
    }

    /// A release hub on `dir/plugins`, prepared by the caller.
    pub fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> anyhow::Result<BenchHub> {
        let plugins = dir.path().join("plugins");
        let mut child = Command::new(target_dir().join("release").join("hub"))
            .current_dir(dir.path())
            .env("HUB_BIND", "127.0.0.1:0")
            .env("HUB_ADMIN_TOKEN", "bench")
            .env("MODULES_DIR", &plugins)
            .env("RUST_LOG", "warn,host=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the release hub")?;
        let stdout = child.stdout.take().context("hub stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                bail!("the hub exited before listening")
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split([' ', '"']).next().unwrap_or_default().to_owned();
            }
            if Instant::now() > deadline {
                bail!("the hub did not start within 30 s");
            }
        };
        // Keep draining the hub's output so it never blocks on a full pipe.
        let kept: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let sink = kept.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut sink) = sink.lock() {
                    sink.push(line);
                }
            }
        });
        Ok(BenchHub {
            child,
            base,
            _dir: dir,
            lines: kept,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BenchHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run: requests/s and latency percentiles.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

fn wrk(url: &str, seconds: u64, connections: u32) -> anyhow::Result<Run> {
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", url])
        .output()
        .map_err(|e| {
            anyhow::anyhow!("cannot run wrk ({e}): install it with `apt-get install wrk` (Debian) and run the bench again")
        })?;
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
    Ok(Run {
        rps,
        p50_us: percentile("50%")?,
        p99_us: percentile("99%")?,
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

fn dispatch(seconds: u64) -> anyhow::Result<()> {
    let hub = BenchHub::start(&["hello"], &[("HUB_WORKERS", "1")])?;
    let module = format!("{}/api/v1/hello/ping", hub.base);
    let native = format!("{}/ping", hub.base);
    println!("dispatch: module {module} vs native {native}");
    compare(&module, &native, seconds, 0.95)
}

fn db(seconds: u64) -> anyhow::Result<()> {
    let (url, _cluster) = crate::pg::database_url(crate::pg::Cluster::throwaway)?;
    let hub = BenchHub::start(
        &["customers"],
        &[("HUB_WORKERS", "1"), ("DATABASE_URL", url.as_str())],
    )?;
    // The module's migration made the table; fill it, then ask for one row by primary key.
    let seed = "INSERT INTO customers_customers (name, email) \
                SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g";
    let status = Command::new("psql")
        .args([url.as_str(), "-q", "-c", seed])
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run psql ({e}): install the PostgreSQL client (apt-get install postgresql-client)"))?;
    if !status.success() {
        bail!("seeding customers_customers failed");
    }
    let module = format!("{}/api/v1/customers/42", hub.base);
    let native = format!("{}/bench/customer/42", hub.base);
    println!(
        "db: module {module} (READ_ONLY on, through the gateway) vs native {native} (same query, same pool)"
    );
    compare(&module, &native, seconds, 0.83)
}

/// Interleaved wrk runs of `module` and `native`; the table of medians and the ratio.
fn compare(module: &str, native: &str, seconds: u64, target: f64) -> anyhow::Result<()> {
    println!("warming up…");
    wrk(module, 2, 32)?;
    wrk(native, 2, 32)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for pair in 1..=PAIRS {
        let ra = wrk(module, seconds, 32)?;
        let rb = wrk(native, seconds, 32)?;
        println!(
            "pair {pair}: module {:>9.0} req/s p50 {:>6.0} µs p99 {:>6.0} µs | native {:>9.0} req/s p50 {:>6.0} µs p99 {:>6.0} µs | ratio {:.3}",
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
    println!(
        "module/native throughput: {ratio:.3} (median of per-pair ratios; ratio of medians {:.3}; target ≥ {target}: {}); {PAIRS} interleaved pairs of {seconds} s, wrk -t1 -c32, hub with 1 worker, {} cores",
        ma / mb,
        if ratio >= target { "met" } else { "NOT met" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    Ok(())
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
