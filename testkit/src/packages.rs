//! Module packages for tests: signing keys, packages of the fixture library (good ones, through
//! the format's own writer) and archives with whatever entries a test needs (bad ones).

use serde_json::{Value, json};

use crate::{artifacts, lib_file};

/// A signing key pair.
pub struct Keys {
    secret: minisign::SecretKey,
    /// The public key in base64, as `HUB_TRUSTED_KEYS` takes it.
    pub public: String,
    /// Its id, as the hub names it.
    pub id: String,
}

impl Keys {
    pub fn new() -> Keys {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().expect("a key pair");
        let public = pair.pk.to_base64();
        let id = hub_package::public_key_id(&public).expect("a key id");
        Keys {
            secret: pair.sk,
            public,
            id,
        }
    }

    /// The signature file's text over `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> String {
        minisign::sign(None, &self.secret, bytes, None, None)
            .expect("a signature")
            .to_string()
    }
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new()
    }
}

/// A package's contents before it is written: its description and its files.
#[derive(Clone)]
pub struct Contents {
    pub info: hub_package::PackageInfo,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Contents {
    /// Module `name` at `version` from the fixture build `build` (`fixture`, `fixture-v2`,
    /// `fixture-v3`), its manifest `{"name", "version"}` with `extra` merged in.
    pub fn fixture(build: &str, name: &str, version: &str, extra: Value) -> Contents {
        Contents::library(build, "fixture", name, version, extra)
    }

    /// Like [`Contents::fixture`], from the library `lib` (`fixture`, `dbfix`) of build `build`.
    pub fn library(build: &str, lib: &str, name: &str, version: &str, extra: Value) -> Contents {
        let mut manifest = json!({"name": name, "version": version});
        if let (Some(m), Value::Object(extra)) = (manifest.as_object_mut(), extra) {
            m.extend(extra);
        }
        let library_path = artifacts().join(build).join(lib_file(lib));
        let library = std::fs::read(&library_path).unwrap_or_else(|e| {
            panic!(
                "read {}: {e} (run cargo xtask test)",
                library_path.display()
            )
        });
        let files = vec![
            (
                "module.json".to_owned(),
                serde_json::to_vec_pretty(&manifest).expect("manifest"),
            ),
            (lib_file(name), library),
            ("README.md".to_owned(), format!("# {name}\n").into_bytes()),
        ];
        let info = hub_package::describe(
            hub_package::PackageInfo {
                format: hub_package::FORMAT,
                name: name.to_owned(),
                version: version.to_owned(),
                description: None,
                hub_api: None,
                platform: hub_package::platform(),
                dependencies: Default::default(),
                files: Vec::new(),
            },
            &files,
        );
        Contents { info, files }
    }

    /// The package, signed by `keys` (unsigned for `None`).
    pub fn write(&self, keys: Option<&Keys>) -> Vec<u8> {
        hub_package::write(&self.info, &self.files, |description| {
            keys.map(|k| k.sign(description))
        })
        .expect("a package")
    }
}

/// What an archive entry is.
pub enum Kind {
    File(Vec<u8>),
    Symlink(&'static str),
    HardLink(&'static str),
    Device,
}

/// A Zstandard-compressed tar archive of exactly `entries` (path as raw bytes, kind): paths
/// are written as given, `..` and absolute ones included.
pub fn archive(entries: &[(&str, Kind)]) -> Vec<u8> {
    let mut tarball = Vec::new();
    for (path, kind) in entries {
        let mut header = tar::Header::new_old();
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_mode(0o644);
        let data: &[u8] = match kind {
            Kind::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                bytes
            }
            Kind::Symlink(target) | Kind::HardLink(target) => {
                header.set_entry_type(if matches!(kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                header.set_link_name(target).expect("link name");
                &[]
            }
            Kind::Device => {
                header.set_entry_type(tar::EntryType::Char);
                &[]
            }
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        tarball.extend_from_slice(header.as_bytes());
        tarball.extend_from_slice(data);
        tarball.resize(tarball.len().div_ceil(512) * 512, 0);
    }
    tarball.resize(tarball.len() + 1024, 0);
    compress(&tarball)
}

/// `bytes` compressed with Zstandard.
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}
