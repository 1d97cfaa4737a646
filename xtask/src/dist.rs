//! `cargo xtask keygen` and `cargo xtask package <module>`: signing keys, and signed module
//! packages in `dist/` (the format: the `hub-package` crate).
//!
//! `keygen` writes a minisign key pair, the secret key unencrypted (a build machine signs
//! without a prompt: keep the file out of the repository and readable only by the builder).
//! `package` builds the module (release unless `--debug`), reads its `module.json`, and writes
//! `dist/<name>-<version>.hubpkg` holding `module.json`, the library and `README.md`, signed
//! with `--key` (or unsigned without one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::build::{Profile, build_variant, libraries_under, root};

/// Write a new key pair: `<out>.key` (secret) and `<out>.pub` (public); print the public key
/// and its id.
pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let (secret, public, base64) = make_keys(out)?;
    let id = hub_package::public_key_id(&base64).unwrap_or_default();
    println!("secret key: {} (keep it private)", secret.display());
    println!("public key: {} (key id {id})", public.display());
    println!("trust it:   HUB_TRUSTED_KEYS={base64}");
    Ok(())
}

/// Write a key pair at `out` (`.key`, `.pub`): their paths and the public key in base64.
fn make_keys(out: &Path) -> anyhow::Result<(PathBuf, PathBuf, String)> {
    let (secret, public) = (out.with_extension("key"), out.with_extension("pub"));
    for file in [&secret, &public] {
        if file.exists() {
            bail!(
                "{} exists: keygen never overwrites a key; choose another --out",
                file.display()
            );
        }
    }
    if let Some(folder) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| anyhow::anyhow!("cannot make a key pair: {e}"))?;
    let public_box = pair
        .pk
        .to_box()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let secret_box = pair
        .sk
        .to_box(None)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    write_private(&secret, secret_box.as_bytes())?;
    std::fs::write(&public, &public_box)
        .with_context(|| format!("cannot write {}", public.display()))?;
    Ok((secret, public, pair.pk.to_base64()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Where a module's crate is: `plugins/<name>`, or the folder whose `module.json` names it.
fn module_folder(module: &str) -> anyhow::Result<(crate::build::Library, Value)> {
    for library in libraries_under("plugins")? {
        let manifest = library.folder.join("module.json");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", manifest.display()))?;
        if json["name"] == module {
            return Ok((library, json));
        }
    }
    bail!(
        "no module called {module:?} in plugins/ (a crate whose module.json has \"name\": {module:?})"
    )
}

/// The unencrypted minisign secret key in the file at `path`.
fn secret_key(path: &Path) -> anyhow::Result<minisign::SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret key {}", path.display()))?;
    minisign::SecretKeyBox::from_string(&text)
        .and_then(|b| b.into_unencrypted_secret_key())
        .map_err(|e| {
            anyhow::anyhow!(
                "{} is not an unencrypted minisign secret key ({e}): make one with cargo xtask keygen",
                path.display()
            )
        })
}

/// Build `module` and write its package; the package's path.
pub fn package(module: &str, key: Option<&Path>, debug: bool) -> anyhow::Result<PathBuf> {
    let (library, manifest) = module_folder(module)?;
    let secret = key.map(secret_key).transpose()?;
    let built = build_variant(&library, &Profile::from_release(!debug), None, None)?;
    let library_file = manifest["library"]
        .as_str()
        .map_or_else(|| library.file_name(), str::to_owned);
    let mut files = vec![
        (
            "module.json".to_owned(),
            std::fs::read(library.folder.join("module.json"))?,
        ),
        (
            library_file,
            std::fs::read(&built).with_context(|| format!("cannot read {}", built.display()))?,
        ),
    ];
    let readme = library.folder.join("README.md");
    if readme.is_file() {
        files.push(("README.md".to_owned(), std::fs::read(&readme)?));
    }
    let (bytes, version) = write_package(module, &manifest, &files, secret.as_ref())?;
    let dist = root().join("dist");
    std::fs::create_dir_all(&dist)?;
    let out = dist.join(format!("{module}-{version}.{}", hub_package::EXTENSION));
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "{} ({} bytes, {})",
        out.display(),
        bytes.len(),
        match &secret {
            Some(_) => "signed",
            None => "unsigned: only hubs with HUB_ALLOW_UNSIGNED_PACKAGES=true install it",
        }
    );
    Ok(out)
}

/// The package of `module`'s `files` as its `manifest` describes it, signed with `secret`:
/// its bytes and its version.
fn write_package(
    module: &str,
    manifest: &Value,
    files: &[(String, Vec<u8>)],
    secret: Option<&minisign::SecretKey>,
) -> anyhow::Result<(Vec<u8>, String)> {
    let text = |key: &str| manifest[key].as_str().map(str::to_owned);
    let version = text("version").context("module.json has no \"version\"")?;
    let dependencies: BTreeMap<String, String> =
        serde_json::from_value(manifest["dependencies"].clone()).unwrap_or_default();
    let info = hub_package::describe(
        hub_package::PackageInfo {
            format: hub_package::FORMAT,
            name: module.to_owned(),
            version: version.clone(),
            description: text("description"),
            hub_api: text("hub_api"),
            platform: hub_package::platform(),
            dependencies,
            files: Vec::new(),
        },
        files,
    );
    let bytes = hub_package::write(&info, files, |description| {
        minisign::sign(
            None,
            secret?,
            description,
            Some(&format!("package {module} {version}")),
            None,
        )
        .ok()
        .map(|signature| signature.to_string())
    })?;
    Ok((bytes, version))
}

/// Write a catalog of the packages in `dist/` into `out`: `out/packages/<file>` and
/// `out/index.json` (serve `out` with any web server, or name the folder in HUB_CATALOGS).
pub fn catalog(out: &Path) -> anyhow::Result<()> {
    let dist = root().join("dist");
    let mut packages = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dist)
        .with_context(|| {
            format!(
                "cannot read {}: make packages first (cargo xtask package <module>)",
                dist.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == hub_package::EXTENSION))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{} holds no .{} file: make packages first (cargo xtask package <module>)",
            dist.display(),
            hub_package::EXTENSION
        );
    }
    let folder = out.join("packages");
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(&file)?;
        std::fs::write(folder.join(&name), &bytes)?;
        packages.push((format!("packages/{name}"), bytes));
    }
    let catalog = hub_package::catalog(&packages)
        .map_err(|e| anyhow::anyhow!("a package in dist/ cannot be read: {e}"))?;
    let index = out.join("index.json");
    std::fs::write(&index, serde_json::to_vec_pretty(&catalog)?)?;
    println!(
        "{} ({} modules, {} packages)",
        index.display(),
        catalog.modules.len(),
        packages.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_written_with_a_keygen_key_verifies_with_its_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, _, public) = make_keys(&dir.path().join("release")).unwrap();
        assert!(
            make_keys(&dir.path().join("release")).is_err(),
            "never overwritten"
        );
        let manifest = serde_json::json!({"name": "notes", "version": "1.2.0", "hub_api": "^0.5",
            "dependencies": {"customers": "^0.1"}});
        let files = vec![
            ("module.json".to_owned(), manifest.to_string().into_bytes()),
            ("libnotes.so".to_owned(), b"not really a library".to_vec()),
        ];
        let key = secret_key(&secret).unwrap();
        let (bytes, version) = write_package("notes", &manifest, &files, Some(&key)).unwrap();
        assert_eq!(version, "1.2.0");
        let info = hub_package::read_info(&bytes).unwrap();
        assert_eq!(
            (
                info.name.as_str(),
                info.hub_api.as_deref(),
                info.dependencies.len()
            ),
            ("notes", Some("^0.5"), 1)
        );
        // The signature in the archive is over package.json, by the key keygen wrote.
        let description = hub_package::read_entry(&bytes, hub_package::INFO)
            .unwrap()
            .unwrap();
        let signature = hub_package::read_entry(&bytes, hub_package::SIGNATURE)
            .unwrap()
            .unwrap();
        let signature = String::from_utf8(signature).unwrap();
        assert_eq!(
            hub_package::signature_key_id(&signature),
            hub_package::public_key_id(&public)
        );
        let public = minisign::PublicKey::from_base64(&public).unwrap();
        let signature = minisign::SignatureBox::from_string(&signature).unwrap();
        minisign::verify(
            &public,
            &signature,
            std::io::Cursor::new(&description),
            true,
            false,
            false,
        )
        .unwrap();
        assert!(
            minisign::verify(
                &public,
                &signature,
                std::io::Cursor::new(b"other bytes"),
                true,
                false,
                false
            )
            .is_err()
        );
        let catalog =
            hub_package::catalog(&[("packages/notes-1.2.0.hubpkg".to_owned(), bytes)]).unwrap();
        assert_eq!(catalog.modules[0].versions[0].version, "1.2.0");
    }
}
