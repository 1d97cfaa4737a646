//! The browser of the browser tests (`hub_testkit::browser`): Debian's `chromium`, driven
//! headless through `chromedriver` (package `chromium-driver`), checked before `cargo xtask test`
//! runs the tests. When either is missing, root installs both with apt-get; anyone else is told
//! the command.

use anyhow::{Context as _, bail};

use crate::build::{apt_install, is_root, works};

/// Make sure `chromium` and `chromedriver` answer `--version`, installing them if need be.
pub fn browser() -> anyhow::Result<()> {
    if works("chromium") && works("chromedriver") {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "chromium and chromedriver are needed for the browser tests: install them with \
             `sudo apt-get install chromium chromium-driver` and run again"
        );
    }
    apt_install(&["chromium", "chromium-driver"])
        .context("chromium and chromedriver are needed for the browser tests")?;
    for program in ["chromium", "chromedriver"] {
        if !works(program) {
            bail!(
                "`{program} --version` still fails after installing chromium and chromium-driver"
            );
        }
    }
    Ok(())
}
