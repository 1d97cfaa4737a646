//! `cargo xtask new-module <name> ["<description>"]`: a new module from `plugins/_template`.
//!
//! The name must pass the hub's own rule (the loader's `names.rs`, included here by path) and be
//! free in `plugins/`. The template is copied into a temporary folder under `target/`, every
//! `tmplmod`/`Tmplmod`/`TMPLMOD` and the template's description replaced, `"enabled"` set to true,
//! and only then renamed into `plugins/<name>`: an interrupted run leaves no half-made module.
//! `plugins/*` is a workspace member pattern, so the new crate is a member at once.

#[path = "../../host/src/names.rs"]
#[allow(dead_code)]
mod names;

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::build::{root, target_dir};

/// The template's description, replaced by the new module's.
const TEMPLATE_DESCRIPTION: &str = "Template module";
const DEFAULT_DESCRIPTION: &str = "A BMC Hub module";

pub fn new_module(name: &str, description: Option<&str>) -> anyhow::Result<()> {
    names::validate(name).map_err(|reason| {
        anyhow::anyhow!("module name {name:?} is invalid: {reason} (names match ^[a-z][a-z0-9_]{{0,39}}$, no '__', not reserved)")
    })?;
    let plugins = root().join("plugins");
    let destination = plugins.join(name);
    if destination.exists() {
        bail!("plugins/{name} already exists: choose another name, or remove that folder first");
    }
    let description = description
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or(DEFAULT_DESCRIPTION);
    if description.contains(['"', '\\', '\n']) {
        bail!(
            "the description may not contain quotes, backslashes or line breaks: {description:?}"
        );
    }
    let template = plugins.join("_template");
    let staging_root = target_dir();
    std::fs::create_dir_all(&staging_root)?;
    let staging = tempfile::Builder::new()
        .prefix(".new-module-")
        .tempdir_in(&staging_root)
        .context("cannot make a staging folder under target/")?;
    let made = staging.path().join(name);
    let camel = camel_case(name);
    let upper = name.to_ascii_uppercase();
    copy_replacing(&template, &made, &|text: &str| {
        text.replace("TMPLMOD", &upper)
            .replace("Tmplmod", &camel)
            .replace("tmplmod", name)
            .replace(TEMPLATE_DESCRIPTION, description)
    })?;
    enable(&made.join("module.json"))?;
    std::fs::rename(&made, &destination)
        .with_context(|| format!("cannot move the new module into {}", destination.display()))?;
    println!(
        "Created plugins/{name}: module {name} ({description}), table prefix {name}_, enabled.

Next steps:
  cargo xtask build                        build it; a hub started with `cargo xtask run` loads it at once
  curl -s http://127.0.0.1:8000/api/v1/{name}/health
  open http://127.0.0.1:8000/modules/{name}/
  cargo xtask test                         run its tests (plugins/{name}/tests) with all the others

plugins/{name}/README.md explains every file; docs/MODULE_QUICKSTART.md and docs/MODULE_SYSTEM.md the rest."
    );
    Ok(())
}

/// `invoice_ocr` → `InvoiceOcr`.
fn camel_case(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Copy the source files of `from` to `to`, text passed through `replace`. Build output
/// (libraries, `target/`) and hidden files are left behind.
fn copy_replacing(from: &Path, to: &Path, replace: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let built = [".so", ".dylib", ".dll"]
            .iter()
            .any(|s| file_name.ends_with(s));
        if file_name.starts_with('.') || file_name == "target" || built {
            continue;
        }
        let (source, dest) = (entry.path(), to.join(replace(&file_name)));
        if entry.file_type()?.is_dir() {
            copy_replacing(&source, &dest, replace)?;
        } else {
            let bytes = std::fs::read(&source)?;
            match String::from_utf8(bytes) {
                Ok(text) => std::fs::write(&dest, replace(&text))?,
                Err(e) => std::fs::write(&dest, e.into_bytes())?,
            }
        }
    }
    Ok(())
}

/// Set `"enabled": true` in the new module's manifest, keeping the order of its keys.
fn enable(manifest: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest)?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).context("the template's module.json is not JSON")?;
    value["enabled"] = serde_json::Value::Bool(true);
    std::fs::write(manifest, serde_json::to_string_pretty(&value)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_type_names() {
        assert_eq!(camel_case("invoice_ocr"), "InvoiceOcr");
        assert_eq!(camel_case("crm"), "Crm");
        assert_eq!(camel_case("a1_b2"), "A1B2");
    }
}
