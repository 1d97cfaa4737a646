//! Building: the workspace's folders, cargo, the hub and the modules (each built alone and its
//! library renamed into place next to its `module.json`). The bottom room of xtask.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// `debug` or `release`.
pub struct Profile {
    release: bool,
}

impl Profile {
    pub fn from_release(release: bool) -> Profile {
        Profile { release }
    }

    pub fn dir(&self) -> &'static str {
        if self.release { "release" } else { "debug" }
    }

    fn args(&self) -> &'static [&'static str] {
        if self.release { &["--release"] } else { &[] }
    }
}

/// A `cdylib` package of the workspace: a module or a fixture.
pub struct Library {
    pub package: String,
    /// `[lib] name`, the stem of the built file.
    pub lib: String,
    /// The folder of its Cargo.toml.
    pub folder: PathBuf,
}

impl Library {
    pub fn file_name(&self) -> String {
        format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            self.lib,
            std::env::consts::DLL_SUFFIX
        )
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Run `cargo args…` in the workspace root; fail naming the command.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run_command(Command::new(cargo).args(args).current_dir(root()))
}

pub fn run_command(command: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// The `cdylib` packages whose Cargo.toml lies under `under` (relative to the root).
pub fn libraries_under(under: &str) -> anyhow::Result<Vec<Library>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")?;
    let base = root().join(under);
    let mut libraries = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&base) {
            continue;
        }
        let cdylib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k == "cdylib")
            });
        let Some(target) = cdylib else { continue };
        libraries.push(Library {
            package: package["name"].as_str().unwrap_or_default().to_owned(),
            lib: target["name"]
                .as_str()
                .unwrap_or_default()
                .replace('-', "_"),
            folder: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
        });
    }
    libraries.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(libraries)
}

/// Build `library` alone and return the path of the built file.
pub fn build_library(library: &Library, profile: &Profile) -> anyhow::Result<PathBuf> {
    build_variant(library, profile, None, None)
}

/// Build `library` alone, with `HUB_FIXTURE_BUILD` set to `variant` (read by the test fixtures
/// at compile time), and return the path of the built file.
pub fn build_variant(
    library: &Library,
    profile: &Profile,
    variant: Option<&str>,
    version: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let mut args = vec!["build", "-p", &library.package];
    args.extend(profile.args());
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo_bin);
    command.args(&args).current_dir(root());
    match variant {
        Some(variant) => command.env("HUB_FIXTURE_BUILD", variant),
        None => command.env_remove("HUB_FIXTURE_BUILD"),
    };
    match version {
        Some(version) => command.env("HUB_FIXTURE_VERSION", version),
        None => command.env_remove("HUB_FIXTURE_VERSION"),
    };
    run_command(&mut command)?;
    let built = target_dir().join(profile.dir()).join(library.file_name());
    if !built.is_file() {
        bail!(
            "{} built no {}: its Cargo.toml needs [lib] crate-type = [\"cdylib\", \"rlib\"]",
            library.package,
            built.display()
        );
    }
    Ok(built)
}

/// Copy `from` to `to` through a temporary name in `to`'s folder, then rename into place, so a
/// watcher never sees a half-written library.
pub fn install(from: &Path, to: &Path) -> anyhow::Result<()> {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = to.with_file_name(format!(".{name}.tmp"));
    std::fs::copy(from, &temp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), temp.display()))?;
    std::fs::rename(&temp, to)
        .with_context(|| format!("cannot rename {} to {}", temp.display(), to.display()))?;
    Ok(())
}

/// Build the hub, then every module, each library renamed into place next to its module.json.
pub fn build(profile: &Profile) -> anyhow::Result<Vec<Library>> {
    build_with(profile, &[])
}

/// Like [`build`], with the hub's cargo `features`.
pub fn build_with(profile: &Profile, features: &[&str]) -> anyhow::Result<Vec<Library>> {
    let joined = features.join(",");
    let mut args = vec!["build", "-p", "host", "--bin", "hub"];
    if !features.is_empty() {
        args.extend(["--features", joined.as_str()]);
    }
    args.extend(profile.args());
    cargo(&args)?;
    let modules = libraries_under("plugins")?;
    for module in &modules {
        let built = build_library(module, profile)?;
        install(&built, &module.folder.join(module.file_name()))?;
    }
    Ok(modules)
}

/// Install Debian `packages` with apt-get when running as root; otherwise fail with the exact
/// command to run.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let list = packages.join(" ");
    if !is_root() {
        bail!("{list} is missing: install it with `sudo apt-get install -y {list}` and run again");
    }
    eprintln!("xtask: installing {list} (apt-get)");
    let install = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut args = vec!["install", "-y", "-q"];
    args.extend(packages);
    if install(&args) || (install(&["update", "-q"]) && install(&args)) {
        return Ok(());
    }
    bail!("`apt-get install -y {list}` failed: run it by hand and run again")
}

/// Whether `program --version` runs and succeeds.
pub fn works(program: &str) -> bool {
    answers(program, "--version")
}

/// Whether `program arg` runs and succeeds (what it prints, and where, does not matter).
pub fn answers(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether xtask runs as root (apt-get needs it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
