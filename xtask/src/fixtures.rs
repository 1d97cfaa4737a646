//! The test fixtures: each fixture crate of `host/tests/fixtures/` built twice (builds `a` and
//! `b`, which hot-reload tests swap), and the one that cannot live in the workspace. The
//! incompatible module is the fixture module built against a copy of plugin-api at another minor
//! version: two plugin-api packages cannot share one workspace, so this writes a small workspace
//! under `target/` and builds it.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::build::{
    Profile, build_variant, install, libraries_under, root, run_command, target_dir,
};

/// The minor version the incompatible copy of plugin-api gets: the hub's minor plus one.
fn bumped_version(cargo_toml: &str) -> anyhow::Result<(String, String)> {
    let line = cargo_toml
        .lines()
        .find(|l| l.trim_start().starts_with("version = \""))
        .context("plugin-api/Cargo.toml has no version line")?;
    let version = line
        .trim()
        .trim_start_matches("version = \"")
        .trim_end_matches('"');
    let parts: Vec<u64> = version
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("plugin-api version {version} is not x.y.z"))?;
    let [major, minor, _] = parts[..] else {
        bail!("plugin-api version {version} is not x.y.z")
    };
    Ok((
        line.to_owned(),
        format!("version = \"{major}.{}.0\"", minor + 1),
    ))
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Build the fixture module against plugin-api with its minor bumped; put the library in `out`.
pub fn build_incompatible(out: &Path) -> anyhow::Result<()> {
    let root = root();
    let work = target_dir().join("incompatible-fixture");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    copy_tree(&root.join("plugin-api"), &work.join("plugin-api"))?;
    copy_tree(
        &root.join("plugin-api-macros"),
        &work.join("plugin-api-macros"),
    )?;
    copy_tree(
        &root.join("host/tests/fixtures/fixture"),
        &work.join("fixture"),
    )?;
    let api_toml_path = work.join("plugin-api/Cargo.toml");
    let api_toml = std::fs::read_to_string(&api_toml_path)?;
    let (old, new) = bumped_version(&api_toml)?;
    std::fs::write(&api_toml_path, api_toml.replacen(&old, &new, 1))?;
    // The workspace manifest: the root's, with only the two members.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let start = manifest
        .find("members = [")
        .context("root Cargo.toml has no members list")?;
    let end = start
        + manifest[start..]
            .find(']')
            .context("unterminated members list")?
        + 1;
    let manifest = format!(
        "{}members = [\"plugin-api\", \"plugin-api-macros\", \"fixture\"]{}",
        &manifest[..start],
        &manifest[end..]
    );
    // Profile overrides name packages of the main workspace only.
    let manifest = match manifest.find("[profile.dev.package.sha2]") {
        Some(at) => manifest[..at].to_owned(),
        None => manifest,
    };
    std::fs::write(work.join("Cargo.toml"), manifest)?;
    std::fs::copy(root.join("Cargo.lock"), work.join("Cargo.lock"))?;
    // A target folder of its own: a cdylib's file name carries no hash, so sharing the main one
    // would overwrite the main fixture's library behind cargo's back.
    let target = target_dir().join("incompatible-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run_command(
        std::process::Command::new(cargo)
            .args(["build", "-p", "fixture-module"])
            .current_dir(&work)
            .env("CARGO_TARGET_DIR", &target),
    )?;
    let file = format!(
        "{}fixture{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    std::fs::create_dir_all(out)?;
    install(&target.join("debug").join(&file), &out.join(&file))
}

/// Build every test fixture twice, as build `a` into `out/<lib>/` and as build `b` into
/// `out/<lib>-b/` (hot-reload tests swap one for the other).
pub fn build_fixtures(profile: &Profile, out: &Path) -> anyhow::Result<()> {
    for fixture in libraries_under("host/tests/fixtures")? {
        for (variant, folder) in [
            (None, fixture.lib.clone()),
            (Some("b"), format!("{}-b", fixture.lib)),
        ] {
            let built = build_variant(&fixture, profile, variant, None)?;
            let folder = out.join(folder);
            std::fs::create_dir_all(&folder)?;
            install(&built, &folder.join(fixture.file_name()))?;
        }
        // Newer versions of the fixture module, for the package tests.
        if fixture.lib == "fixture" {
            for (variant, version) in [("v2", "0.2.0"), ("v3", "0.3.0")] {
                let built = build_variant(&fixture, profile, Some(variant), Some(version))?;
                let folder = out.join(format!("{}-{variant}", fixture.lib));
                std::fs::create_dir_all(&folder)?;
                install(&built, &folder.join(fixture.file_name()))?;
            }
        }
    }
    Ok(())
}
