//! The node packages of the single sign-on tests' OpenID provider (`host/tests/oidc`), installed
//! with `npm ci` before `cargo xtask test` runs the tests, when missing or older than
//! `package-lock.json`. Without node and npm, root installs them with apt-get; anyone else is
//! told the command.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::build::{is_root, root, run_command, works};

/// The provider's folder, relative to the workspace root.
const PROVIDER_DIR: &str = "host/tests/oidc";

/// Install the provider's packages unless `node_modules` matches `package-lock.json` already.
pub fn provider_packages() -> anyhow::Result<()> {
    let dir = root().join(PROVIDER_DIR);
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules").join(".package-lock.json");
    if newer_or_same(&installed, &lock)? {
        return Ok(());
    }
    if !(works("node") && works("npm")) {
        if !is_root() {
            bail!(
                "node and npm are needed for the single sign-on tests ({PROVIDER_DIR}): install \
                 them (Debian: `sudo apt-get install nodejs npm`), then run \
                 `npm ci --prefix {PROVIDER_DIR}`"
            );
        }
        eprintln!("xtask: installing nodejs and npm with apt-get (for {PROVIDER_DIR})");
        run_command(
            Command::new("apt-get")
                .args(["update", "-q"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        run_command(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "nodejs", "npm"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    run_command(
        Command::new("npm")
            .args(["ci", "--prefix", PROVIDER_DIR, "--no-audit", "--no-fund"])
            .current_dir(root()),
    )
    .with_context(|| format!("cannot install the packages of {PROVIDER_DIR}"))
}

/// Whether `file` exists and was modified no earlier than `than`.
fn newer_or_same(file: &Path, than: &Path) -> anyhow::Result<bool> {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified());
    let Ok(installed) = modified(file) else {
        return Ok(false);
    };
    let wanted = modified(than).with_context(|| format!("cannot read {}", than.display()))?;
    Ok(installed >= wanted)
}
