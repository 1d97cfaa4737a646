//! Debian's programs that some tests run, checked before `cargo xtask test` runs the tests:
//! `chromium` and `chromedriver` (package `chromium-driver`) for the console's browser test
//! (`hub_testkit::browser`), `prometheus` for the metrics test, `nginx` for the tests of hubs
//! behind a load balancer (`hub_testkit::nginx`). When one is missing, root installs its
//! packages with apt-get; anyone else is told the command.

use anyhow::{Context as _, bail};

use crate::build::{answers, apt_install, is_root};

/// A program a test runs, and the argument that makes it say its version and exit 0.
struct Program {
    name: &'static str,
    /// `--version` for most; nginx knows only `-v` (and answers on stderr).
    version: &'static str,
}

impl Program {
    const fn new(name: &'static str) -> Program {
        Program {
            name,
            version: "--version",
        }
    }

    /// Whether it answers, from `PATH` or from `/usr/sbin` (where Debian puts daemons such as
    /// nginx, and which is not on an ordinary user's `PATH`).
    fn works(&self) -> bool {
        answers(self.name, self.version)
            || answers(&format!("/usr/sbin/{}", self.name), self.version)
    }
}

/// Make sure `chromium` and `chromedriver` answer `--version`, installing them if need be.
pub fn browser() -> anyhow::Result<()> {
    ensure(
        &[Program::new("chromium"), Program::new("chromedriver")],
        &["chromium", "chromium-driver"],
        "the browser tests",
    )
}

/// Make sure `prometheus` answers `--version`, installing it if need be.
pub fn prometheus() -> anyhow::Result<()> {
    ensure(
        &[Program::new("prometheus")],
        &["prometheus"],
        "the metrics test",
    )
}

/// Make sure `nginx` answers `-v`, installing it if need be. Installing starts Debian's own
/// nginx service where a service manager runs; the tests start nginx processes of their own,
/// on their own ports, and need nothing of it.
pub fn nginx() -> anyhow::Result<()> {
    ensure(
        &[Program {
            name: "nginx",
            version: "-v",
        }],
        &["nginx"],
        "the tests of hubs behind nginx",
    )
}

/// `programs` answer, or `packages` are installed (as root) so that they do.
fn ensure(programs: &[Program], packages: &[&str], purpose: &str) -> anyhow::Result<()> {
    if programs.iter().all(Program::works) {
        return Ok(());
    }
    let wanted = programs
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(" and ");
    if !is_root() {
        bail!(
            "{wanted} {} needed for {purpose}: install with `sudo apt-get install {}` and run again",
            if programs.len() == 1 { "is" } else { "are" },
            packages.join(" ")
        );
    }
    apt_install(packages).with_context(|| format!("{wanted} needed for {purpose}"))?;
    for program in programs {
        if !program.works() {
            bail!(
                "`{} {}` still fails after installing {}",
                program.name,
                program.version,
                packages.join(" and ")
            );
        }
    }
    Ok(())
}
