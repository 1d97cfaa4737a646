//! schemathesis, for the conformance test of the OpenAPI document (`it::conformance`): installed
//! with pip into a virtual environment under `target/schemathesis` from the pinned
//! `host/tests/schemathesis/requirements.txt`, when missing or when that file changed. Without
//! python3 and its venv module, root installs them with apt-get; anyone else is told the command
//! (`sudo apt-get install -y python3 python3-venv`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;

use crate::build::{apt_install, root, run_command, target_dir};

const REQUIREMENTS: &str = "host/tests/schemathesis/requirements.txt";

/// The `schemathesis` program, installed if need be.
pub fn schemathesis() -> anyhow::Result<PathBuf> {
    let venv = target_dir().join("schemathesis");
    let program = venv.join("bin").join("schemathesis");
    let wanted = std::fs::read_to_string(root().join(REQUIREMENTS))
        .with_context(|| format!("cannot read {REQUIREMENTS}"))?;
    let installed = venv.join("installed-requirements.txt");
    if program.exists() && std::fs::read_to_string(&installed).ok().as_deref() == Some(&wanted) {
        return Ok(program);
    }
    if !venv_works() {
        apt_install(&["python3", "python3-venv"])
            .context("python3 with its venv module is needed for the OpenAPI conformance test")?;
    }
    eprintln!("xtask: installing schemathesis into {}", venv.display());
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    run_command(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run_command(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(root().join(REQUIREMENTS)),
    )
    .with_context(|| format!("cannot install the packages of {REQUIREMENTS}"))?;
    std::fs::write(&installed, wanted)?;
    Ok(program)
}

/// Whether `python3 -m venv` is there.
fn venv_works() -> bool {
    Command::new("python3")
        .args(["-m", "venv", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}
