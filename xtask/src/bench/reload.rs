//! `cargo xtask bench reload`: a module's library is swapped 100 times between two builds whose
//! responses name their build, while four clients keep requesting that route. Reports failed
//! requests (target 0), the time from the library's rename into place to the first response of
//! the new build (p50, p99), the hub's own load + init + migrate + swap time per reload (target
//! ≤ 20 ms) and the memory each reload keeps (RSS growth per reload against the library's size,
//! target ≤ 1.2×).
//!
//! Then packages are installed over the API (`POST /api/v1/packages`): the time from sending a
//! signed package to the first response of the installed version (target ≤ 300 ms).
//!
//! Each swapped-in copy gets a few bytes appended (past the end of the ELF file, which the
//! loader ignores) so that every reload maps a library the hub has not seen: the hub reuses the
//! mapping of a file it already loaded, which would hide the cost.

use std::io::{BufReader, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::hub::read_response;
use super::{BenchHub, median};
use crate::build::{Profile, target_dir};

const SWAPS: usize = 100;
/// The low 48 bits of `first_seen`: a time.
const TIME_MASK: u64 = (1 << 48) - 1;
const CLIENTS: usize = 4;

pub fn run(profile: &Profile) -> anyhow::Result<()> {
    let artifacts = target_dir().join("bench-artifacts");
    crate::fixtures::build_fixtures(profile, &artifacts)?;
    let lib = format!(
        "{}fixture{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let builds = [
        std::fs::read(artifacts.join("fixture").join(&lib))?,
        std::fs::read(artifacts.join("fixture-b").join(&lib))?,
    ];
    let dir = tempfile::tempdir()?;
    let folder = dir.path().join("plugins").join("fx");
    std::fs::create_dir_all(&folder)?;
    let installed = folder.join(format!(
        "{}fx{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::write(&installed, &builds[0])?;
    std::fs::write(
        folder.join("module.json"),
        r#"{"name": "fx", "version": "0.1.0", "enabled": true}"#,
    )?;
    let hub = BenchHub::start_in(dir, &[("RUST_LOG", "warn,host=info,host::watcher=debug")])?;
    let addr = hub.base.trim_start_matches("http://").to_owned();

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let wanted = Arc::new(AtomicU8::new(b'a'));
    // The swap's number (high 16 bits) and the time of the first response of the wanted build
    // to a request sent after the rename (low 48 bits, nanoseconds since `started`; 0: not yet).
    // One word, so that a client's finding can only land on the swap it looked at.
    let first_seen = Arc::new(AtomicU64::new(0));
    let renamed_at = Arc::new(AtomicU64::new(u64::MAX));
    let failed = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, wanted, first_seen, renamed_at, failed, answered, addr) = (
                stop.clone(),
                wanted.clone(),
                first_seen.clone(),
                renamed_at.clone(),
                failed.clone(),
                answered.clone(),
                addr.clone(),
            );
            std::thread::spawn(move || {
                let mut connection: Option<TcpStream> = None;
                while !stop.load(Ordering::Relaxed) {
                    let stream = match connection.take() {
                        Some(stream) => stream,
                        None => match TcpStream::connect(&addr) {
                            Ok(stream) => stream,
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        },
                    };
                    let state = first_seen.load(Ordering::SeqCst);
                    let sent = started.elapsed().as_nanos() as u64;
                    match get_build(stream, &addr) {
                        Ok((stream, build)) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            if state & TIME_MASK == 0
                                && build == wanted.load(Ordering::SeqCst)
                                && sent >= renamed_at.load(Ordering::SeqCst)
                            {
                                let now = (started.elapsed().as_nanos() as u64).max(1) & TIME_MASK;
                                let found = (state & !TIME_MASK) | now;
                                let _ = first_seen.compare_exchange(
                                    state,
                                    found,
                                    Ordering::SeqCst,
                                    Ordering::SeqCst,
                                );
                            }
                            connection = Some(stream);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kib(hub.pid())?;
    let mut to_new = Vec::with_capacity(SWAPS);
    for n in 0..SWAPS {
        let (build, tag) = if n % 2 == 0 {
            (&builds[1], b'b')
        } else {
            (&builds[0], b'a')
        };
        let mut bytes = build.clone();
        bytes.extend_from_slice(format!("\nbench swap {n}\n").as_bytes());
        let temp = folder.join(".incoming.tmp");
        std::fs::write(&temp, &bytes)?;
        wanted.store(tag, Ordering::SeqCst);
        let renamed = started.elapsed().as_nanos() as u64;
        renamed_at.store(renamed, Ordering::SeqCst);
        // Published last: clients look at this swap from now on.
        first_seen.store(((n as u64 + 1) << 48) & !TIME_MASK, Ordering::SeqCst);
        std::fs::rename(&temp, &installed)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = first_seen.load(Ordering::SeqCst) & TIME_MASK;
            if seen != 0 {
                to_new.push((seen.saturating_sub(renamed)) as f64 / 1e6);
                break;
            }
            if Instant::now() > deadline {
                bail!("swap {n}: the new build did not answer within 10 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kib(hub.pid())?;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }

    let lines = hub.lines.lock().map(|l| l.clone()).unwrap_or_default();
    let log = target_dir().join("bench-reload-hub.log");
    std::fs::write(&log, lines.join("\n"))?;
    let reloads = reload_durations(&lines);
    let library_kib = builds[0].len() as f64 / 1024.0;
    let per_reload_kib = (rss_after as f64 - rss_before as f64) / SWAPS as f64;
    let failed = failed.load(Ordering::Relaxed);
    println!();
    println!(
        "reload: {SWAPS} swaps of a {:.0} KiB library under {CLIENTS} clients ({} requests answered)",
        library_kib,
        answered.load(Ordering::Relaxed)
    );
    println!();
    println!("| measure | result | target |");
    println!("|---|---:|---:|");
    println!("| failed requests | {failed} | 0 |");
    println!(
        "| rename → first response of the new build, p50 | {:.1} ms | |",
        percentile(&mut to_new.clone(), 50.0)
    );
    println!(
        "| rename → first response of the new build, p99 | {:.1} ms | |",
        percentile(&mut to_new, 99.0)
    );
    if reloads.len() != SWAPS {
        bail!("expected {SWAPS} reload log lines, found {}", reloads.len());
    }
    println!(
        "| load + init + migrate + swap, p50 | {:.1} ms | ≤ 20 ms |",
        median(&mut reloads.clone())
    );
    println!(
        "| load + init + migrate + swap, p99 | {:.1} ms | ≤ 20 ms |",
        percentile(&mut reloads.clone(), 99.0)
    );
    println!(
        "| RSS growth per reload | {per_reload_kib:.0} KiB = {:.2}× the library | ≤ 1.2× |",
        per_reload_kib / library_kib
    );
    println!();
    println!(
        "(the rename → response time includes the watcher's debounce, HUB_RELOAD_DEBOUNCE_MS = 150 by default; RSS {rss_before} → {rss_after} KiB)"
    );
    if failed > 0 {
        bail!("{failed} requests failed during the reloads");
    }
    installs(&artifacts, &lib)
}

/// Packages installed over the API: a signed package of the fixture (its library a little
/// different each time, so that every install maps a library the hub has not seen) is installed
/// as module `pk`, its route asked until it answers, then the module is uninstalled. Reports
/// the time from sending the package to the first response of the installed version, p50 and
/// p99 (target ≤ 300 ms, verification included). Making and signing the package is not timed.
fn installs(artifacts: &std::path::Path, lib: &str) -> anyhow::Result<()> {
    const INSTALLS: usize = 40;
    let library = std::fs::read(artifacts.join("fixture").join(lib))?;
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| anyhow::anyhow!("a key pair: {e}"))?;
    let public = pair.pk.to_base64();
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("plugins"))?;
    let hub = BenchHub::start_in(
        dir,
        &[
            ("HUB_TRUSTED_KEYS", public.as_str()),
            ("MODULES_AUTO_RELOAD", "false"),
        ],
    )?;
    let addr = hub.base.trim_start_matches("http://").to_owned();
    let module_lib = format!(
        "{}pk{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let mut times = Vec::with_capacity(INSTALLS);
    for n in 0..INSTALLS {
        let mut bytes = library.clone();
        bytes.extend_from_slice(format!("\nbench install {n}\n").as_bytes());
        let files = vec![
            (
                "module.json".to_owned(),
                br#"{"name": "pk", "version": "0.1.0"}"#.to_vec(),
            ),
            (module_lib.clone(), bytes),
        ];
        let info = hub_package::describe(
            hub_package::PackageInfo {
                format: hub_package::FORMAT,
                name: "pk".to_owned(),
                version: "0.1.0".to_owned(),
                description: None,
                hub_api: None,
                platform: hub_package::platform(),
                dependencies: Default::default(),
                files: Vec::new(),
            },
            &files,
        );
        let package = hub_package::write(&info, &files, |description| {
            minisign::sign(None, &pair.sk, description, None, None)
                .ok()
                .map(|s| s.to_string())
        })?;
        let sent = Instant::now();
        let (status, body) = call(&addr, "POST", "/api/v1/packages", &package)?;
        if !status.contains(" 201 ") {
            bail!(
                "install {n}: {} {}",
                status.trim(),
                String::from_utf8_lossy(&body)
            );
        }
        loop {
            let (status, _) = call(&addr, "GET", "/api/v1/pk/build", &[])?;
            if status.contains(" 200 ") {
                break;
            }
            if sent.elapsed() > Duration::from_secs(10) {
                bail!("install {n}: the module did not answer within 10 s");
            }
        }
        times.push(sent.elapsed().as_secs_f64() * 1e3);
        let (status, body) = call(&addr, "DELETE", "/api/v1/modules/pk", &[])?;
        if !status.contains(" 200 ") {
            bail!(
                "uninstall {n}: {} {}",
                status.trim(),
                String::from_utf8_lossy(&body)
            );
        }
    }
    println!();
    println!(
        "install: {INSTALLS} signed packages of a {:.0} KiB library installed over the API (and uninstalled)",
        library.len() as f64 / 1024.0
    );
    println!();
    println!("| measure | result | target |");
    println!("|---|---:|---:|");
    println!(
        "| POST /api/v1/packages → first response of the new version, p50 | {:.1} ms | ≤ 300 ms |",
        percentile(&mut times.clone(), 50.0)
    );
    println!(
        "| POST /api/v1/packages → first response of the new version, p99 | {:.1} ms | ≤ 300 ms |",
        percentile(&mut times, 99.0)
    );
    Ok(())
}

/// One request on a fresh connection, with the bench's admin token: status line and body.
fn call(addr: &str, method: &str, path: &str, body: &[u8]) -> anyhow::Result<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer bench\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    read_response(&mut BufReader::new(stream))
}

/// One keep-alive `GET /api/v1/fx/build`; the stream back and the build's letter.
fn get_build(mut stream: TcpStream, addr: &str) -> anyhow::Result<(TcpStream, u8)> {
    // One write, no Nagle: a request split over small writes waits for delayed ACKs.
    stream.set_nodelay(true)?;
    // The bench hubs' admin token: the fixture's routes answer signed-in callers.
    let request = format!(
        "GET /api/v1/fx/build HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer bench\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let (status, body) = read_response(&mut reader)?;
    if !status.starts_with("HTTP/1.1 200") {
        bail!("status {status:?}");
    }
    // {"build":"a"}
    let build = body.get(10).copied().context("short body")?;
    Ok((stream, build))
}

/// The durations of the hub's reload log lines (`file change fx: running … (N ms)`).
fn reload_durations(lines: &[String]) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l.contains("file change fx: running"))
        .filter_map(|l| l.split("duration_ms=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("read /proc/<pid>/status (Linux only)")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}
