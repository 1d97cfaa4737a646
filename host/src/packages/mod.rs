//! Module packages (`.hubpkg`, the format of the `hub-package` crate): every check a package
//! passes before anything of it is written to `MODULES_DIR`, in this order — its size, the
//! archive, each entry's path and kind, the files against their hashes, the signature, the name,
//! the platform, `hub_api`, the dependencies — and the kept versions of each module
//! (`store.rs`). Installing one (the start protocol of a reload) is the lifecycle's.

pub mod catalog;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::Path;

use hub_package::{FOLDER, INFO, PackageInfo, SIGNATURE};
use thiserror::Error;

use crate::deps;
use crate::manifest::Manifest;
use crate::names;

/// What a package must satisfy on this hub.
pub struct Rules<'a> {
    pub max_bytes: usize,
    /// (key id, base64 public key).
    pub trusted: &'a [(String, String)],
    pub allow_unsigned: bool,
    /// The modules installed now: name → version.
    pub installed: &'a BTreeMap<String, String>,
}

/// A package that passed every check.
#[derive(Debug, Clone)]
pub struct Package {
    pub info: PackageInfo,
    pub manifest: Manifest,
    /// `module.json` as the package holds it.
    pub manifest_text: String,
    /// The module's files (path in the module's folder, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// SHA-256 of the whole package.
    pub sha256: String,
    /// The id of the key that signed it; `None` for an unsigned package (allowed by
    /// `HUB_ALLOW_UNSIGNED_PACKAGES`).
    pub signer: Option<String>,
}

/// Why a package was refused; each names what to fix.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("the package is larger than HUB_PACKAGE_MAX_BYTES ({limit} bytes): {what}")]
    TooLarge { limit: usize, what: String },
    #[error("the package is not a module package: {0}")]
    Malformed(String),
    #[error(
        "the package's entry {path:?} is refused: {why}; a package holds package.json, package.json.minisig and regular files directly in module/"
    )]
    UnsafeEntry { path: String, why: &'static str },
    #[error("the package's files do not match its list: {0}")]
    HashMismatch(String),
    #[error("{0}")]
    Untrusted(String),
    #[error("the package's module name {name:?} is invalid: {reason}")]
    BadName { name: String, reason: String },
    #[error(
        "the package is built for {package}; this hub runs on {hub}: build it on (or for) {hub}"
    )]
    WrongPlatform { package: String, hub: String },
    #[error(
        "the package needs plugin-api {range} (hub_api); this hub has {have}: build the module against plugin-api {have}"
    )]
    IncompatibleApi { range: String, have: String },
    #[error("the package's dependencies are not installed here: {}", .0.join("; "))]
    Dependencies(Vec<String>),
}

impl PackageError {
    /// The error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            PackageError::TooLarge { .. } => "package_too_large",
            PackageError::Malformed(_) | PackageError::BadName { .. } => "bad_package",
            PackageError::UnsafeEntry { .. } => "unsafe_entry",
            PackageError::HashMismatch(_) => "hash_mismatch",
            PackageError::Untrusted(_) => "untrusted_package",
            PackageError::WrongPlatform { .. } => "wrong_platform",
            PackageError::IncompatibleApi { .. } => "incompatible_api",
            PackageError::Dependencies(_) => "dependencies_missing",
        }
    }
}

/// Check `bytes` against `rules`: the package, or the first check it fails.
pub fn check(bytes: &[u8], rules: &Rules<'_>) -> Result<Package, PackageError> {
    let limit = rules.max_bytes;
    if bytes.len() > limit {
        return Err(PackageError::TooLarge {
            limit,
            what: format!("it has {} bytes", bytes.len()),
        });
    }
    // The archive, unpacked no further than the limit (a bomb stops there).
    let decoder = ruzstd::decoding::StreamingDecoder::new(bytes).map_err(|e| {
        PackageError::Malformed(format!("it is not a Zstandard-compressed archive ({e})"))
    })?;
    let mut tarball = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut tarball)
        .map_err(|e| {
            PackageError::Malformed(format!("its compressed data is cut or damaged ({e})"))
        })?;
    if tarball.len() > limit {
        return Err(PackageError::TooLarge {
            limit,
            what: format!("it unpacks to more than {limit} bytes"),
        });
    }
    let entries = entries(&tarball)?;
    let description = entries
        .get(INFO)
        .ok_or_else(|| PackageError::Malformed(format!("it has no {INFO}")))?;
    let info: PackageInfo = serde_json::from_slice(description)
        .map_err(|e| PackageError::Malformed(format!("its {INFO} cannot be read ({e})")))?;
    if info.format != hub_package::FORMAT {
        return Err(PackageError::Malformed(format!(
            "its format is {}; this hub reads format {}",
            info.format,
            hub_package::FORMAT
        )));
    }
    let files = listed_files(&info, &entries)?;
    let signer = signer(description, entries.get(SIGNATURE), rules)?;
    names::validate(&info.name).map_err(|reason| PackageError::BadName {
        name: info.name.clone(),
        reason: reason.to_string(),
    })?;
    let manifest_text = files
        .iter()
        .find(|(path, _)| path == crate::manifest::FILE_NAME)
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .ok_or_else(|| PackageError::Malformed("it holds no module/module.json".to_owned()))?;
    let manifest = Manifest::parse(
        &Path::new(&info.name).join(crate::manifest::FILE_NAME),
        &info.name,
        &manifest_text,
    )
    .map_err(|e| PackageError::Malformed(format!("its module.json is invalid: {e}")))?;
    if manifest.version != info.version {
        return Err(PackageError::Malformed(format!(
            "its {INFO} says version {} but its module.json says {}",
            info.version, manifest.version
        )));
    }
    if !files
        .iter()
        .any(|(path, _)| *path == manifest.library_file())
    {
        return Err(PackageError::Malformed(format!(
            "it holds no library {} (the one its module.json names)",
            manifest.library_file()
        )));
    }
    let hub = hub_package::platform();
    if info.platform != hub {
        return Err(PackageError::WrongPlatform {
            package: info.platform.clone(),
            hub,
        });
    }
    if let Some(range) = manifest.hub_api.as_ref().or(info.hub_api.as_ref())
        && !deps::satisfies(plugin_api::API_VERSION, range)
    {
        return Err(PackageError::IncompatibleApi {
            range: range.clone(),
            have: plugin_api::API_VERSION.to_owned(),
        });
    }
    let unmet: Vec<String> = manifest
        .dependencies
        .iter()
        .filter_map(
            |(dependency, range)| match rules.installed.get(dependency) {
                None => Some(format!("{dependency} ({range}) is not installed")),
                Some(version) if !deps::satisfies(version, range) => Some(format!(
                    "{dependency} {version} is installed, {range} is needed"
                )),
                Some(_) => None,
            },
        )
        .collect();
    if !unmet.is_empty() {
        return Err(PackageError::Dependencies(unmet));
    }
    Ok(Package {
        info,
        manifest,
        manifest_text,
        files,
        sha256: hub_package::sha256_hex(bytes),
        signer,
    })
}

/// The archive's entries by path, each checked: a regular file, at a path inside the package.
fn entries(tarball: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, PackageError> {
    let mut archive = tar::Archive::new(tarball);
    let mut out = BTreeMap::new();
    let list = archive
        .entries()
        .map_err(|e| PackageError::Malformed(format!("it is not a tar archive ({e})")))?;
    for entry in list {
        let mut entry =
            entry.map_err(|e| PackageError::Malformed(format!("its archive is damaged ({e})")))?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |why| PackageError::UnsafeEntry {
            path: path.clone(),
            why,
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory if path == FOLDER => continue,
            tar::EntryType::Symlink => return Err(refuse("it is a symbolic link")),
            tar::EntryType::Link => return Err(refuse("it is a hard link")),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(refuse("it is a device or a pipe"));
            }
            _ => return Err(refuse("it is not a regular file")),
        }
        if std::str::from_utf8(&raw).is_err() {
            return Err(refuse("its path is not UTF-8"));
        }
        if path.starts_with('/') {
            return Err(refuse("its path is absolute"));
        }
        if path
            .split(['/', '\\'])
            .any(|part| part == ".." || part == ".")
        {
            return Err(refuse("its path climbs out of the package (..)"));
        }
        let allowed = path == INFO
            || path == SIGNATURE
            || path.strip_prefix(FOLDER).is_some_and(|file| {
                !file.is_empty()
                    && !file.contains(['/', '\\'])
                    && !file.starts_with('.')
                    && file.len() <= 255
            });
        if !allowed {
            return Err(refuse("it is outside the package's folder"));
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| {
            PackageError::Malformed(format!("its entry {path:?} cannot be read ({e})"))
        })?;
        if out.insert(path.clone(), bytes).is_some() {
            return Err(PackageError::Malformed(format!("it holds {path:?} twice")));
        }
    }
    Ok(out)
}

/// The module's files as `package.json` lists them, each present with its hash and size, and
/// nothing unlisted.
fn listed_files(
    info: &PackageInfo,
    entries: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    let mut files = Vec::new();
    let mut listed = BTreeSet::new();
    for file in &info.files {
        let Some(bytes) = entries.get(&format!("{FOLDER}{}", file.path)) else {
            return Err(PackageError::HashMismatch(format!(
                "{} is listed but missing",
                file.path
            )));
        };
        if bytes.len() as u64 != file.size || hub_package::sha256_hex(bytes) != file.sha256 {
            return Err(PackageError::HashMismatch(format!(
                "{} does not have the size and SHA-256 {INFO} lists",
                file.path
            )));
        }
        listed.insert(file.path.as_str());
        files.push((file.path.clone(), bytes.clone()));
    }
    if let Some(extra) = entries
        .keys()
        .filter_map(|path| path.strip_prefix(FOLDER))
        .find(|path| !listed.contains(path))
    {
        return Err(PackageError::HashMismatch(format!(
            "{extra} is in the package but not in its list"
        )));
    }
    Ok(files)
}

/// Who signed `description`: the id of a trusted key whose signature holds, or `None` for an
/// unsigned package where those are allowed.
fn signer(
    description: &[u8],
    signature: Option<&Vec<u8>>,
    rules: &Rules<'_>,
) -> Result<Option<String>, PackageError> {
    let Some(signature) = signature else {
        if rules.allow_unsigned {
            return Ok(None);
        }
        return Err(PackageError::Untrusted(
            "the package is not signed: sign it (cargo xtask package <module> --key <secret key>) with a key in HUB_TRUSTED_KEYS".to_owned(),
        ));
    };
    let text = String::from_utf8_lossy(signature);
    let unreadable = || {
        PackageError::Untrusted(format!(
            "the package's {SIGNATURE} is not a minisign signature"
        ))
    };
    let id = hub_package::signature_key_id(&text).ok_or_else(unreadable)?;
    let parsed = minisign_verify::Signature::decode(&text).map_err(|_| unreadable())?;
    let Some((_, key)) = rules.trusted.iter().find(|(trusted, _)| *trusted == id) else {
        return Err(PackageError::Untrusted(format!(
            "the package is signed by key {id}, which HUB_TRUSTED_KEYS does not list"
        )));
    };
    let key = minisign_verify::PublicKey::from_base64(key).map_err(|_| unreadable())?;
    key.verify(description, &parsed, false).map_err(|_| {
        PackageError::Untrusted(format!(
            "the package's signature by key {id} does not match its contents: it was signed over other bytes"
        ))
    })?;
    Ok(Some(id))
}
