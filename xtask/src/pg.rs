//! A private PostgreSQL cluster for `cargo xtask test` and `cargo xtask run` when `DATABASE_URL`
//! is unset, from the machine's own PostgreSQL binaries (found on PATH or through
//! `pg_config --bindir`). As root, `initdb`/`pg_ctl` run as the `postgres` user. The cluster
//! listens on 127.0.0.1 on a free port with trust authentication, and is stopped when the
//! returned guard drops (also on failure; Ctrl-C is ignored by xtask while its children run).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running cluster; stopped on drop.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    pub url: String,
    /// Deleted on drop when the cluster is throwaway.
    _temp: Option<tempfile::TempDir>,
}

/// Where `initdb` and `pg_ctl` are.
fn bindir() -> anyhow::Result<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .collect();
        dirs.sort();
        if let Some(dir) = dirs.into_iter().rev().find(|d| d.join("initdb").is_file()) {
            return Ok(dir);
        }
    }
    bail!(
        "no PostgreSQL server binaries (initdb, pg_ctl) found on PATH, through pg_config or in \
         /usr/lib/postgresql: install them (Debian: apt-get install postgresql) or set DATABASE_URL"
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    /// A throwaway cluster in a fresh temporary folder.
    pub fn throwaway() -> anyhow::Result<Cluster> {
        let temp = tempfile::Builder::new().prefix("hub-pg-").tempdir()?;
        let data = temp.path().join("data");
        let mut cluster = Cluster::prepare(&data, temp.path())?;
        cluster._temp = Some(temp);
        cluster.start(free_port()?)?;
        Ok(cluster)
    }

    /// A cluster kept in `dir` across runs (created the first time), on `port`.
    pub fn persistent(dir: &Path, port: u16) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let mut cluster = Cluster::prepare(&dir.join("data"), dir)?;
        cluster.start(port)?;
        Ok(cluster)
    }

    fn prepare(data: &Path, owner_dir: &Path) -> anyhow::Result<Cluster> {
        let bin = bindir()?;
        let as_postgres = is_root();
        if as_postgres {
            // initdb and pg_ctl refuse to run as root; the folder must belong to postgres.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(owner_dir)
                .status()?;
            if !status.success() {
                bail!(
                    "cannot chown {} to the postgres user (does it exist?)",
                    owner_dir.display()
                );
            }
        }
        let cluster = Cluster {
            bin,
            data: data.to_owned(),
            as_postgres,
            url: String::new(),
            _temp: None,
        };
        if !data.join("PG_VERSION").is_file() {
            let output = cluster
                .command("initdb")
                .arg("-D")
                .arg(data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ])
                .output()
                .context("cannot run initdb")?;
            if !output.status.success() {
                bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
            }
        }
        Ok(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn start(&mut self, port: u16) -> anyhow::Result<()> {
        let socket_dir = self.data.parent().unwrap_or(&self.data).to_owned();
        let options = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c max_connections=200",
            socket_dir.display()
        );
        let log = self
            .data
            .parent()
            .unwrap_or(&self.data)
            .join("postgres.log");
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .context("cannot run pg_ctl")?;
        if !output.status.success() {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "pg_ctl start failed: {}{}\n{log_text}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        self.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        // pg_ctl -w waits for the server to accept connections; make sure TCP does too.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("PostgreSQL does not accept connections on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("xtask: PostgreSQL running at {}", self.url);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }
}

/// `DATABASE_URL` if set, else a cluster made by `make`; the guard keeps it running.
pub fn database_url(
    make: impl FnOnce() -> anyhow::Result<Cluster>,
) -> anyhow::Result<(String, Option<Cluster>)> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok((url, None)),
        _ => {
            let cluster = make()?;
            Ok((cluster.url.clone(), Some(cluster)))
        }
    }
}

/// While children run, Ctrl-C (SIGINT) and SIGTERM sent to the process group reach them directly;
/// xtask ignores both so that it outlives them and stops the cluster afterwards.
pub fn ignore_ctrl_c() {
    let _ = ctrlc::set_handler(|| {});
}
