//! Counted, not timed: what noise cannot move. Instructions per request of a route under
//! valgrind's callgrind (user space, the same on every machine for the same binaries), with the
//! functions a route adds over another; and the hub's CPU time per request from `/proc` (steal
//! and the load generator do not count). Also the machine a number came from.

use std::collections::BTreeMap;
use std::io::{BufReader, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::hub::{BenchHub, Build, read_response};

/// Requests per counted run; the count per request is (run of 2N − run of N) / N, so start-up
/// and the first requests' one-time costs cancel out.
pub const REQUESTS: usize = 4000;

/// What callgrind counted for one route.
#[derive(Debug, Clone)]
pub struct Count {
    /// Instructions per request.
    pub per_request: f64,
    /// The same from the run of N against a run with no requests (a consistency check).
    pub per_request_from_zero: f64,
    /// Instructions per request by function (self cost).
    pub functions: BTreeMap<String, f64>,
}

/// Install valgrind when it is missing and this is root (Debian), else say how.
pub fn ensure_valgrind() -> anyhow::Result<()> {
    if Command::new("valgrind").arg("--version").output().is_ok() {
        return Ok(());
    }
    crate::build::apt_install(&["valgrind"])
        .context("valgrind is needed to count instructions per request")
}

/// Count `paths` (each a route of `modules`, e.g. `/ping`, `/api/v1/hello/ping`) in `build`'s
/// hub under callgrind, started with `env`; `cache_sim` adds cache misses (slower). The hub runs
/// with one worker.
pub fn callgrind(
    build: &Build,
    modules: &[&str],
    env: &[(&str, &str)],
    paths: &[(&str, Vec<(String, String)>)],
    cache_sim: bool,
    out: &Path,
) -> anyhow::Result<Vec<Count>> {
    ensure_valgrind()?;
    std::fs::create_dir_all(out)?;
    let hub = Hubs {
        build,
        modules,
        env,
        cache_sim,
    };
    let zero = run(&hub, None, 0, &out.join("zero"))?;
    let mut counts = Vec::new();
    for (i, (path, headers)) in paths.iter().enumerate() {
        let once = run(
            &hub,
            Some((path, headers)),
            REQUESTS,
            &out.join(format!("r{i}-n")),
        )?;
        let twice = run(
            &hub,
            Some((path, headers)),
            2 * REQUESTS,
            &out.join(format!("r{i}-2n")),
        )?;
        let n = REQUESTS as f64;
        let per_fn = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            let mut diff = BTreeMap::new();
            for (name, cost) in b {
                let before = a.get(name).copied().unwrap_or(0);
                let d = (*cost as f64 - before as f64) / n;
                if d.abs() >= 0.5 {
                    diff.insert(name.clone(), d);
                }
            }
            diff
        };
        counts.push(Count {
            per_request: (twice.total as f64 - once.total as f64) / n,
            per_request_from_zero: (once.total as f64 - zero.total as f64) / n,
            functions: per_fn(&once.functions, &twice.functions),
        });
    }
    Ok(counts)
}

/// One callgrind run: the total and the per-function self costs.
struct Run {
    total: u64,
    functions: BTreeMap<String, u64>,
}

/// The hubs one count starts: which build, with which modules and environment.
struct Hubs<'a> {
    build: &'a Build,
    modules: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    cache_sim: bool,
}

fn run(
    hubs: &Hubs<'_>,
    request: Option<(&str, &Vec<(String, String)>)>,
    requests: usize,
    out: &Path,
) -> anyhow::Result<Run> {
    let file = out.with_extension("callgrind");
    let log = out.with_extension("log");
    let wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", file.display()),
        format!("--log-file={}", log.display()),
        format!("--cache-sim={}", if hubs.cache_sim { "yes" } else { "no" }),
    ];
    let mut env = vec![("HUB_WORKERS", "1")];
    env.extend_from_slice(hubs.env);
    let hub = BenchHub::start_build(hubs.build, hubs.modules, &env, &wrapper)?;
    if let Some((path, headers)) = request {
        requests_on_one_connection(hub.addr(), path, headers, requests)?;
    }
    hub.stop()?;
    let total = total_instructions(&file)?;
    let functions = functions(&file)?;
    Ok(Run { total, functions })
}

/// Send `count` `GET path` requests on one keep-alive connection, each answered 200 before the
/// next is sent.
pub fn requests_on_one_connection(
    addr: &str,
    path: &str,
    headers: &[(String, String)],
    count: usize,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut extra = String::new();
    for (name, value) in headers {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n");
    for i in 0..count {
        writer.write_all(request.as_bytes())?;
        let (status, _) = read_response(&mut reader)?;
        if !status.starts_with("HTTP/1.1 200") {
            bail!("request {i} of GET {path} answered {status:?}");
        }
    }
    Ok(())
}

/// The `summary:` (or `totals:`) line of a callgrind output file.
fn total_instructions(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("read {} (did valgrind run?)", file.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no summary in {}", file.display()))
}

/// Self cost per function, from `callgrind_annotate`.
fn functions(file: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let output = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--threshold=100"])
        .arg(file)
        .output()
        .context("run callgrind_annotate (part of valgrind)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut functions = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // `1,234 (12.3%)  file:function [object]`: keep `function`.
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, after)| after).trim_start(),
            None => rest,
        };
        let name = rest
            .split_once(':')
            .map_or(rest, |(_, f)| f)
            .split(" [")
            .next()
            .unwrap_or(rest)
            .trim();
        if !name.is_empty() && !name.starts_with("PROGRAM TOTALS") {
            *functions.entry(name.to_owned()).or_insert(0) += count;
        }
    }
    Ok(functions)
}

/// The functions `more` spends more on than `less`, per request, the largest first.
pub fn added(more: &Count, less: &Count, top: usize) -> Vec<(String, f64)> {
    let mut diff: Vec<(String, f64)> = more
        .functions
        .iter()
        .map(|(name, cost)| {
            (
                name.clone(),
                cost - less.functions.get(name).copied().unwrap_or(0.0),
            )
        })
        .chain(
            less.functions
                .iter()
                .filter(|(name, _)| !more.functions.contains_key(*name))
                .map(|(name, cost)| (name.clone(), -cost)),
        )
        .filter(|(_, d)| d.abs() >= 1.0)
        .collect();
    diff.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    diff.truncate(top);
    diff
}

/// The hub's CPU time so far (user + system, all threads), in microseconds, from
/// `/proc/<pid>/stat`.
pub fn cpu_micros(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after `) state`.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("/proc stat field")?.parse::<f64>()?)
    };
    let hz = clock_ticks()?;
    Ok((ticks(11)? + ticks(12)?) * 1_000_000.0 / hz)
}

fn clock_ticks() -> anyhow::Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

/// The machine, for the record: CPU model, L2 per core, cores.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let l2 = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index2/size")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, L2 {l2} per core, {cores} cores")
}

/// A folder for callgrind's files under `target/`.
pub fn out_dir(name: &str) -> PathBuf {
    crate::build::target_dir().join("callgrind").join(name)
}
