//! The hubs a benchmark runs: which build (a hub binary and the folder its example modules come
//! from, so that another commit's build can be measured beside this one), started on a temporary
//! `MODULES_DIR`, optionally under a wrapper (valgrind), and stopped with SIGTERM when its exit
//! matters (callgrind writes its counts at exit).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::build::{root, target_dir};

/// A build of the hub: its binary, and the folder holding its example modules (`plugins/` of
/// its checkout, libraries built).
#[derive(Debug, Clone)]
pub struct Build {
    pub binary: PathBuf,
    pub plugins: PathBuf,
    /// The checkout it was built from.
    pub checkout: PathBuf,
}

impl Build {
    /// The release build of this checkout (`cargo xtask bench` builds it first).
    pub fn current() -> Build {
        Build {
            binary: target_dir().join("release").join("hub"),
            plugins: root().join("plugins"),
            checkout: root(),
        }
    }

    /// Another build, named by `--against`: `<checkout>` whose `target/release/hub` and
    /// `plugins/` were built (`cargo xtask build --release` there), or a hub binary inside such
    /// a checkout's `target/release/`.
    pub fn other(path: &Path) -> anyhow::Result<Build> {
        let (binary, checkout) = if path.is_dir() {
            (path.join("target/release/hub"), path.to_owned())
        } else {
            let checkout = path
                .ancestors()
                .find(|a| a.join("plugins").is_dir())
                .with_context(|| {
                    format!("{} is not inside a checkout with plugins/", path.display())
                })?;
            (path.to_owned(), checkout.to_owned())
        };
        if !binary.is_file() {
            bail!(
                "{} is missing: build that checkout first (cargo xtask build --release in it)",
                binary.display()
            );
        }
        Ok(Build {
            binary,
            plugins: checkout.join("plugins"),
            checkout,
        })
    }

    /// Copy `modules` (module.json + library) from this build's `plugins/` into `dir`.
    pub fn install(&self, modules: &[&str], dir: &Path) -> anyhow::Result<()> {
        for module in modules {
            let from = self.plugins.join(module);
            let to = dir.join(module);
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
        Ok(())
    }
}

/// A hub process serving a temporary `MODULES_DIR`.
pub struct BenchHub {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
    /// The hub's output lines, as they come.
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BenchHub {
    /// `build`'s hub with copies of its example `modules`, run under `wrapper` (e.g. valgrind's
    /// command line) when it is not empty.
    pub fn start_build(
        build: &Build,
        modules: &[&str],
        env: &[(&str, &str)],
        wrapper: &[String],
    ) -> anyhow::Result<BenchHub> {
        let dir = tempfile::tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins)?;
        build.install(modules, &plugins)?;
        BenchHub::launch(&build.binary, dir, env, wrapper)
    }

    /// This checkout's release hub on `dir/plugins`, prepared by the caller.
    pub fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> anyhow::Result<BenchHub> {
        BenchHub::launch(&Build::current().binary, dir, env, &[])
    }

    /// `binary` on `dir/plugins`, prepared by the caller.
    pub fn launch(
        binary: &Path,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        wrapper: &[String],
    ) -> anyhow::Result<BenchHub> {
        let plugins = dir.path().join("plugins");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .current_dir(dir.path())
            .env("HUB_BIND", "127.0.0.1:0")
            .env("HUB_ADMIN_TOKEN", "bench")
            .env("MODULES_DIR", &plugins)
            .env("RUST_LOG", "warn,host=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stdout = child.stdout.take().context("hub stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // Under valgrind a start takes seconds.
        let limit = if wrapper.is_empty() { 30 } else { 300 };
        let deadline = Instant::now() + Duration::from_secs(limit);
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                bail!("the hub exited before listening")
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split([' ', '"']).next().unwrap_or_default().to_owned();
            }
            if Instant::now() > deadline {
                bail!("the hub did not start within {limit} s");
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

    /// `host:port`.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Stop with SIGTERM and wait for the exit (a wrapper writes its results then).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the hub did not exit within 120 s of SIGTERM")
    }
}

impl Drop for BenchHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read one HTTP/1.1 response with a `Content-Length` body from `reader`: its status line and
/// its body.
pub fn read_response(reader: &mut impl BufRead) -> anyhow::Result<(String, Vec<u8>)> {
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().context("content-length")?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok((status, body))
}
