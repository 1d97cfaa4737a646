//! `cargo xtask run` and `cargo xtask test`: the hub on `plugins/` with a persistent cluster, and
//! every test of the workspace with the modules, the fixtures and a throwaway cluster.

use std::process::Command;

use anyhow::Context as _;

use crate::build::{Profile, build, root, run_command, target_dir};
use crate::{fixtures, pg};

/// Build, then run the hub in the workspace root (so `plugins/` and `./.env` are found), with a
/// persistent PostgreSQL cluster under `target/` unless `DATABASE_URL` is set.
pub fn run(profile: &Profile) -> anyhow::Result<()> {
    build(profile)?;
    let (url, _cluster) =
        pg::database_url(|| pg::Cluster::persistent(&target_dir().join("pg-run"), RUN_PG_PORT))?;
    pg::ignore_ctrl_c();
    let hub = target_dir().join(profile.dir()).join("hub");
    let token = admin_token()?;
    println!(
        "xtask: the admin token is in target/admin-token: curl -H \"Authorization: Bearer $(cat target/admin-token)\" http://127.0.0.1:8000/api/v1/me"
    );
    run_command(
        Command::new(hub)
            .current_dir(root())
            .env("DATABASE_URL", url)
            .env("HUB_ADMIN_TOKEN", token),
    )
}

/// The bootstrap admin token of `cargo xtask run`: `HUB_ADMIN_TOKEN` when the environment or
/// `./.env` sets it, else the one kept in `target/admin-token` (made once, readable by its owner
/// only). Either way it is written there, so scripts and the docs can read it.
fn admin_token() -> anyhow::Result<String> {
    let path = target_dir().join("admin-token");
    let from_env = std::env::var("HUB_ADMIN_TOKEN").ok().or_else(|| {
        let text = std::fs::read_to_string(root().join(".env")).ok()?;
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("HUB_ADMIN_TOKEN="))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .next_back()
    });
    let token = match from_env.filter(|t| !t.is_empty()) {
        Some(token) => token,
        None => match std::fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
            _ => {
                let mut bytes = [0u8; 32];
                let mut random = std::fs::File::open("/dev/urandom")
                    .context("cannot read /dev/urandom for an admin token")?;
                std::io::Read::read_exact(&mut random, &mut bytes)?;
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            }
        },
    };
    std::fs::create_dir_all(target_dir())?;
    std::fs::write(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(token)
}

/// The port of `cargo xtask run`'s own cluster.
const RUN_PG_PORT: u16 = 54329;

/// Build modules and fixtures, then run every test with the artifacts' locations exported.
pub fn test(extra: &[String]) -> anyhow::Result<()> {
    test_with(extra, &[])
}

/// The console's browser test (`it::browser`), which saves a PNG of each main page it visits
/// into `target/screenshots/` (through `HUB_SCREENSHOTS`).
pub fn screenshots() -> anyhow::Result<()> {
    let folder = target_dir().join("screenshots");
    if folder.exists() {
        std::fs::remove_dir_all(&folder)
            .with_context(|| format!("cannot clear {}", folder.display()))?;
    }
    let extra: Vec<String> = ["--test", "it", "--", "browser::", "--test-threads=1"]
        .map(str::to_owned)
        .to_vec();
    test_with(&extra, &[("HUB_SCREENSHOTS", folder.as_os_str())])?;
    let mut saved: Vec<String> = std::fs::read_dir(&folder)
        .with_context(|| format!("the browser test saved nothing in {}", folder.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .collect();
    saved.sort();
    anyhow::ensure!(!saved.is_empty(), "the browser test saved no screenshot");
    for path in saved {
        println!("{path}");
    }
    Ok(())
}

fn test_with(extra: &[String], envs: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<()> {
    crate::node::provider_packages()?;
    crate::packages::browser()?;
    crate::packages::prometheus()?;
    crate::packages::nginx()?;
    let schemathesis = crate::python::schemathesis()?;
    let profile = Profile::from_release(false);
    build(&profile)?;
    let artifacts = target_dir().join("test-artifacts");
    if artifacts.exists() {
        std::fs::remove_dir_all(&artifacts)
            .with_context(|| format!("cannot clear {}", artifacts.display()))?;
    }
    fixtures::build_incompatible(&artifacts.join("incompatible"))?;
    fixtures::build_fixtures(&profile, &artifacts)?;
    let (url, _cluster) = pg::database_url(pg::Cluster::throwaway)?;
    pg::ignore_ctrl_c();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .env("DATABASE_URL", url)
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .current_dir(root())
        .env("HUB_TEST_ARTIFACTS", &artifacts)
        .env("HUB_TEST_BIN", target_dir().join(profile.dir()).join("hub"))
        .env("HUB_TEST_PLUGINS", root().join("plugins"))
        .env("HUB_SCHEMATHESIS", schemathesis)
        .envs(envs.iter().copied());
    run_command(&mut command)
}
