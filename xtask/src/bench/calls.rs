//! `cargo xtask bench calls`: a call between modules (`req.call`, in-process) against the same
//! route over HTTP (the hub's client to the hub's own address), both from inside a module: two
//! copies of the fixture, `fx` depending on `fy`, `fx` timing `n` sequential calls of `fy`'s
//! `GET /echo` each way.

use std::net::TcpListener;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::hub::BenchHub;
use super::scale::get;
use crate::build::{self, Profile};

/// Calls each way, per round.
const CALLS: u32 = 2_000;
const ROUNDS: usize = 5;

pub fn run(profile: &Profile) -> anyhow::Result<()> {
    let libraries = build::libraries_under("host/tests/fixtures")?;
    let fixture = libraries
        .iter()
        .find(|l| l.lib == "fixture")
        .context("no fixture library under host/tests/fixtures")?;
    let built = build::build_variant(fixture, profile, None, None)?;
    let library = std::fs::read(&built)?;
    let dir = tempfile::tempdir()?;
    for (name, manifest) in [
        (
            "fx",
            json!({"name": "fx", "version": "0.1.0", "enabled": true, "dependencies": {"fy": "^0.1"}}),
        ),
        (
            "fy",
            json!({"name": "fy", "version": "0.1.0", "enabled": true}),
        ),
    ] {
        let folder = dir.path().join("plugins").join(name);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join("module.json"), manifest.to_string())?;
        std::fs::write(
            folder.join(format!(
                "{}{name}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )),
            &library,
        )?;
    }
    // The hub's address is fx's one allowed outbound host.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let bind = format!("127.0.0.1:{port}");
    let hub = BenchHub::start_in(
        dir,
        &[
            ("HUB_BIND", bind.as_str()),
            ("MODULES__FX__OUTBOUND", bind.as_str()),
        ],
    )?;
    let url = format!("http://{bind}/api/v1/fy/echo");
    let path = format!("/api/v1/fx/call-bench?n={CALLS}&url={url}");
    // Warm-up: connections, the client, caches.
    get(
        hub.addr(),
        &format!("/api/v1/fx/call-bench?n=200&url={url}"),
        Some("bench"),
    )?;
    let (mut call, mut http) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (status, body) = get(hub.addr(), &path, Some("bench"))?;
        anyhow::ensure!(status == 200, "call-bench answered {status}: {body}");
        let answer: Value = serde_json::from_str(&body)?;
        let (c, h) = (
            answer["call_us"].as_f64().context("call_us")?,
            answer["http_us"].as_f64().context("http_us")?,
        );
        println!(
            "calls round {round}: req.call {c:.2} µs, over HTTP {h:.2} µs per call ({:.1}×)",
            h / c
        );
        call.push(c);
        http.push(h);
    }
    let (c, h) = (super::median(&mut call), super::median(&mut http));
    println!(
        "\ncalls: fx → fy's GET /echo, {CALLS} sequential calls a round, median of {ROUNDS}: req.call {c:.2} µs, the same route over HTTP {h:.2} µs; HTTP/req.call {:.1}× (expected well over 5×)",
        h / c
    );
    Ok(())
}
