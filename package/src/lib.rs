//! The module package format (`.hubpkg`), shared by `cargo xtask package` (which writes one),
//! the hub (which checks and installs one) and the tests (which write bad ones on purpose).
//!
//! A package is a tar archive compressed with Zstandard. Its entries, in this order:
//! - `package.json`: [`PackageInfo`]: the module's name, version, `hub_api` range, platform,
//!   dependencies, and every file of the module with its SHA-256 and size. Readable without
//!   unpacking the library (it is the first entry).
//! - `package.json.minisig`: a minisign signature (ed25519, prehashed) over the bytes of
//!   `package.json`, absent from an unsigned package. Since `package.json` holds the files'
//!   hashes, the signature covers every byte of the module.
//! - `module/<file>`: the module's files (`module.json`, the library, `README.md`), regular files
//!   only, one folder deep.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The format this crate writes; the hub refuses others.
pub const FORMAT: u32 = 1;
/// The description's entry.
pub const INFO: &str = "package.json";
/// The signature's entry.
pub const SIGNATURE: &str = "package.json.minisig";
/// The folder the module's files are in.
pub const FOLDER: &str = "module/";
/// The file name packages carry.
pub const EXTENSION: &str = "hubpkg";

/// What `package.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageInfo {
    pub format: u32,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The plugin-api versions the module works with (its manifest's `hub_api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_api: Option<String>,
    /// The platform the library was built for ([`platform`]).
    pub platform: String,
    /// The modules it needs, with version ranges (its manifest's `dependencies`).
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// The module's files, paths relative to [`FOLDER`].
    pub files: Vec<FileEntry>,
}

/// One file of the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
}

/// The platform of the running program, as packages name theirs: `x86_64-linux`.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// SHA-256 in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The description of `files` (name, bytes) for a module: `info` with its `files` listed.
pub fn describe(mut info: PackageInfo, files: &[(String, Vec<u8>)]) -> PackageInfo {
    info.files = files
        .iter()
        .map(|(path, bytes)| FileEntry {
            path: path.clone(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        })
        .collect();
    info
}

/// The package of `files` described by `info` (see [`describe`]), signed by `sign` (which gets
/// the bytes of `package.json` and returns the signature file's text, or `None` for an unsigned
/// package).
pub fn write(
    info: &PackageInfo,
    files: &[(String, Vec<u8>)],
    sign: impl FnOnce(&[u8]) -> Option<String>,
) -> std::io::Result<Vec<u8>> {
    let description = serde_json::to_vec_pretty(info)?;
    let signature = sign(&description);
    let mut entries: Vec<(String, &[u8])> = vec![(INFO.to_owned(), &description)];
    if let Some(signature) = &signature {
        entries.push((SIGNATURE.to_owned(), signature.as_bytes()));
    }
    for (path, bytes) in files {
        entries.push((format!("{FOLDER}{path}"), bytes));
    }
    let mut archive = tar::Builder::new(Vec::new());
    for (path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, &path, bytes)?;
    }
    let tarball = archive.into_inner()?;
    let mut out = Vec::new();
    out.write_all(&ruzstd::encoding::compress_to_vec(
        tarball.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    ))?;
    Ok(out)
}

/// The id of the key that made a minisign signature (its file's text), as minisign prints key
/// ids: 16 uppercase hex digits.
pub fn signature_key_id(signature: &str) -> Option<String> {
    let line = signature.lines().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()?;
    key_id(bytes.get(2..10)?)
}

/// The id of a minisign public key (its base64 form, or a `.pub` file's text).
pub fn public_key_id(key: &str) -> Option<String> {
    let line = key
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    if bytes.len() != 42 {
        return None;
    }
    key_id(&bytes[2..10])
}

fn key_id(keynum: &[u8]) -> Option<String> {
    let keynum: [u8; 8] = keynum.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(keynum)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_lists_its_files_with_their_hashes() {
        let info = PackageInfo {
            format: FORMAT,
            name: "notes".into(),
            version: "1.0.0".into(),
            description: None,
            hub_api: Some("^0.5".into()),
            platform: platform(),
            dependencies: BTreeMap::new(),
            files: Vec::new(),
        };
        let files = vec![("module.json".to_owned(), b"{}".to_vec())];
        let info = describe(info, &files);
        assert_eq!(
            info.files,
            [FileEntry {
                path: "module.json".into(),
                sha256: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".into(),
                size: 2
            }]
        );
        let mut signed = None;
        let bytes = write(&info, &files, |description| {
            signed = Some(description.to_vec());
            None
        })
        .unwrap();
        assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a Zstandard frame");
        let described: PackageInfo = serde_json::from_slice(&signed.unwrap()).unwrap();
        assert_eq!(described, info);
    }
}

/// Read a package's `package.json` without checking anything else (for catalogs of packages
/// one built; the hub checks every package it installs).
pub fn read_info(package: &[u8]) -> std::io::Result<PackageInfo> {
    let bytes = read_entry(package, INFO)?
        .ok_or_else(|| std::io::Error::other(format!("the package has no {INFO}")))?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// The entry `path` of a package, unchecked (`None`: it has none).
pub fn read_entry(package: &[u8], path: &str) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let decoder = ruzstd::decoding::StreamingDecoder::new(package)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut archive = tar::Archive::new(decoder);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path_bytes().as_ref() == path.as_bytes() {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// A catalog: the modules and versions a folder or web server offers, `index.json` beside the
/// packages. Package URLs are relative to the index (or absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub format: u32,
    pub modules: Vec<CatalogModule>,
}

/// A module of a catalog, its versions newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogModule {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub versions: Vec<CatalogVersion>,
}

/// One version of a module in a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogVersion {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_api: Option<String>,
    pub platform: String,
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Where the package is, relative to the index.
    pub url: String,
    /// The package's SHA-256 (checked before its signature).
    pub sha256: String,
    pub size: u64,
}

/// The catalog of `packages` (each: its URL relative to the index, its bytes).
pub fn catalog(packages: &[(String, Vec<u8>)]) -> std::io::Result<Catalog> {
    let mut modules: BTreeMap<String, CatalogModule> = BTreeMap::new();
    for (url, bytes) in packages {
        let info = read_info(bytes)?;
        let module = modules
            .entry(info.name.clone())
            .or_insert_with(|| CatalogModule {
                name: info.name.clone(),
                description: None,
                versions: Vec::new(),
            });
        module.description = info.description.clone().or(module.description.take());
        module.versions.push(CatalogVersion {
            version: info.version,
            hub_api: info.hub_api,
            platform: info.platform,
            dependencies: info.dependencies,
            url: url.clone(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        });
    }
    let mut modules: Vec<CatalogModule> = modules.into_values().collect();
    for module in &mut modules {
        module
            .versions
            .sort_by(|a, b| newest_first(&a.version, &b.version));
    }
    Ok(Catalog {
        format: FORMAT,
        modules,
    })
}

/// Semantic versions, newest first (numerically per part; text after `-` sorts before none).
fn newest_first(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |v: &str| {
        let (core, pre) = v.split_once('-').map_or((v, None), |(c, p)| (c, Some(p)));
        let numbers: Vec<u64> = core
            .split(['.', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        (numbers, pre.is_none(), pre.map(str::to_owned))
    };
    key(b).cmp(&key(a))
}
