//! `cargo xtask bench fleet`: three hubs in fleet mode (`HUB_FLEET=true`) on one PostgreSQL,
//! behind Debian's nginx, release builds. Reports:
//!
//! - **convergence**: 100 changes (disable, enable, …) made through one hub; for each, the time
//!   from sending it until all three hubs report the new state (each polled directly), p50/p99
//!   (target p99 ≤ 1 s);
//! - **rolling upgrade**: failed requests of two clients asking through nginx while a new
//!   version rolls over the three hubs (target 0), and while one that cannot roll goes to all
//!   at once; then one hub killed with SIGKILL (the failures in that window);
//! - **throughput**: wrk through nginx in front of three hubs against nginx in front of one,
//!   interleaved (A B A B …), medians. On two cores three hubs do not scale: nginx, wrk and the
//!   hubs share them.
//!
//! Run by `cargo xtask bench fleet`, which builds the release hub and fixtures, installs nginx
//! and wrk when it can and starts a PostgreSQL cluster: `HUB_TEST_BIN`, `HUB_TEST_ARTIFACTS`,
//! `HUB_TEST_PLUGINS` and `DATABASE_URL` as the tests have them.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hub_testkit::nginx::Nginx;
use hub_testkit::packages::{Contents, Keys};
use hub_testkit::{Hub, Setup, TOKEN};
use serde_json::json;

const CHANGES: usize = 100;
const PAIRS: usize = 3;
const WRK_SECONDS: u64 = 5;

fn main() {
    let keys = Keys::new();
    let hub = |setup: Setup| {
        setup
            .env("HUB_FLEET", "true")
            .env("HUB_TRUSTED_KEYS", &keys.public)
            .env("HUB_FLEET_ROLL_SOAK_MS", "1000")
            .env("RUST_LOG", "warn,host=info")
            .start()
    };
    let a = hub(Setup::new());
    let db = a.database();
    let b = hub(Setup::with_database(db.clone()));
    let c = hub(Setup::with_database(db.clone()));
    let package = |build: &str, version: &str| {
        Contents::fixture(build, "pk", version, json!({})).write(Some(&keys))
    };
    let reply = a.install(&package("fixture", "0.1.0"), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    wait_all(&[&a, &b, &c], "0.1.0", "running");

    // Convergence.
    let mut times = Vec::with_capacity(CHANGES);
    for n in 0..CHANGES {
        let (action, state) = match n % 2 {
            0 => ("disable", "disabled"),
            _ => ("enable", "running"),
        };
        let sent = Instant::now();
        let reply = a.admin_post(&format!("/api/v1/modules/pk/{action}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        wait_all(&[&a, &b, &c], "0.1.0", state);
        times.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    println!();
    println!("fleet: three release hubs in fleet mode on one PostgreSQL, behind nginx");
    println!();
    println!("| measure | result | target |");
    println!("|---|---:|---:|");
    println!(
        "| a change through one hub → all three apply it, p50 ({CHANGES} changes) | {:.1} ms | |",
        percentile(&mut times.clone(), 50.0)
    );
    println!(
        "| a change through one hub → all three apply it, p99 | {:.1} ms | ≤ 1000 ms |",
        percentile(&mut times.clone(), 99.0)
    );
    println!(
        "| slowest of {CHANGES} | {:.1} ms | |",
        percentile(&mut times, 100.0)
    );

    // Upgrades under load through nginx.
    let addr = |hub: &Hub| hub.base.trim_start_matches("http://").to_owned();
    let nginx = Nginx::start(&[addr(&a), addr(&b), addr(&c)]).expect("nginx");
    let load = Load::start(&nginx.url());
    std::thread::sleep(Duration::from_millis(500));
    let before = load.failed();
    let rolled = Instant::now();
    let reply = b.install_with("?rollout=rolling", &package("fixture-v2", "0.2.0"), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    wait_all(&[&a, &b, &c], "0.2.0", "running");
    let roll_time = rolled.elapsed();
    let roll_failed = load.failed() - before;
    let before = load.failed();
    let all_at_once = Instant::now();
    let reply = c.install_with("?rollout=rolling", &package("fixture-v3", "0.3.0"), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    wait_all(&[&a, &b, &c], "0.3.0", "running");
    let all_time = all_at_once.elapsed();
    let all_failed = load.failed() - before;
    println!(
        "| failed requests while 0.2.0 rolls over three hubs ({:.1} s, 1 s soak each) | {roll_failed} | 0 |",
        roll_time.as_secs_f64()
    );
    println!(
        "| failed requests while 0.3.0 (a contract migration: cannot roll) goes to all at once ({:.1} s) | {all_failed} | 0 |",
        all_time.as_secs_f64()
    );
    let answered = load.stop();

    // Throughput: nginx in front of three hubs against nginx in front of one.
    let one = Nginx::start(&[addr(&a)]).expect("nginx");
    let (mut many, mut single) = (Vec::new(), Vec::new());
    for _ in 0..PAIRS {
        many.push(wrk(&format!("{}/api/v1/pk/build", nginx.url())));
        single.push(wrk(&format!("{}/api/v1/pk/build", one.url())));
    }
    let (many, single) = (median(&mut many), median(&mut single));
    println!("| requests/s through nginx, three hubs (median of {PAIRS}) | {many:.0} | |");
    println!("| requests/s through nginx, one hub (median of {PAIRS}) | {single:.0} | |");
    println!("| three hubs ÷ one hub | {:.2}× | |", many / single);
    drop(one);

    // One hub killed under load.
    let load = Load::start(&nginx.url());
    std::thread::sleep(Duration::from_millis(500));
    let before = (load.failed(), load.answered());
    c.signal("KILL");
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let kill_failed = load.failed() - before.0;
    let kill_answered = load.answered() - before.1;
    let answered = answered + load.stop();
    drop(c);
    println!(
        "| failed requests in the {:.0} s after SIGKILL of one hub ({kill_answered} answered) | {kill_failed} | |",
        killed.elapsed().as_secs_f64()
    );
    println!("| requests answered through nginx under load, in all | {answered} | |");
}

/// Until every hub reports module `pk` at `version` in `state` (30 s at most).
fn wait_all(hubs: &[&Hub], version: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for hub in hubs {
        loop {
            // 404 until the hub installed it.
            let m = hub.admin_get("/api/v1/modules/pk").json();
            if m["version"] == version && m["state"] == state {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pk never reached {version} {state} on {}: {m}",
                hub.base
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Two clients asking `GET /api/v1/modules/pk` through nginx, counting what did not answer 200.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str) -> Load {
        let (stop, answered, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let threads = (0..2)
            .map(|_| {
                let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
                let url = format!("{base}/api/v1/modules/pk");
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(10)))
                        .build()
                        .into();
                    while !stop.load(Ordering::Relaxed) {
                        let reply = agent
                            .get(&url)
                            .header("Authorization", format!("Bearer {TOKEN}"))
                            .call();
                        match reply {
                            Ok(mut r) if r.status() == 200 => {
                                let _ = r.body_mut().read_to_vec();
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            failed,
            threads,
        }
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stop; how many were answered.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a load thread");
        }
        self.answered.load(Ordering::Relaxed)
    }
}

/// wrk's requests/s for `url` (four connections, one thread, with the admin token).
fn wrk(url: &str) -> f64 {
    let output = Command::new("wrk")
        .args([
            "-t1",
            "-c4",
            &format!("-d{WRK_SECONDS}s"),
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            url,
        ])
        .output()
        .expect("run wrk (cargo xtask bench fleet installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map(|n| n.trim().to_owned());
    assert!(non_2xx.is_none(), "wrk saw failures: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}"))
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}
