//! Debian's programs that some tests run, checked before `cargo xtask test` runs the tests:
//! `chromium` and `chromedriver` (package `chromium-driver`) for the console's browser test
//! (`hub_testkit::browser`), `prometheus` for the metrics test. When one is missing, root
//! installs its packages with apt-get; anyone else is told the command.

use anyhow::{Context as _, bail};

use crate::build::{apt_install, is_root, works};

/// Make sure `chromium` and `chromedriver` answer `--version`, installing them if need be.
pub fn browser() -> anyhow::Result<()> {
    ensure(
        &["chromium", "chromedriver"],
        &["chromium", "chromium-driver"],
        "the browser tests",
    )
}

/// Make sure `prometheus` answers `--version`, installing it if need be.
pub fn prometheus() -> anyhow::Result<()> {
    ensure(&["prometheus"], &["prometheus"], "the metrics test")
}

/// `programs` answer `--version`, or `packages` are installed (as root) so that they do.
fn ensure(programs: &[&str], packages: &[&str], purpose: &str) -> anyhow::Result<()> {
    if programs.iter().all(|p| works(p)) {
        return Ok(());
    }
    let wanted = programs.join(" and ");
    if !is_root() {
        bail!(
            "{wanted} {} needed for {purpose}: install with `sudo apt-get install {}` and run again",
            if programs.len() == 1 { "is" } else { "are" },
            packages.join(" ")
        );
    }
    apt_install(packages).with_context(|| format!("{wanted} needed for {purpose}"))?;
    for program in programs {
        if !works(program) {
            bail!(
                "`{program} --version` still fails after installing {}",
                packages.join(" and ")
            );
        }
    }
    Ok(())
}
