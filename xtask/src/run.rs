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
    run_command(
        Command::new(hub)
            .current_dir(root())
            .env("DATABASE_URL", url),
    )
}

/// The port of `cargo xtask run`'s own cluster.
const RUN_PG_PORT: u16 = 54329;

/// Build modules and fixtures, then run every test with the artifacts' locations exported.
pub fn test(extra: &[String]) -> anyhow::Result<()> {
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
        .env("HUB_TEST_PLUGINS", root().join("plugins"));
    run_command(&mut command)
}
