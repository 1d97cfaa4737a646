//! A module's files as the hub reads them: a library file read once with the SHA-256 of its
//! bytes (what the loader maps and keys its cache by), and the fingerprint of a module folder
//! (the hashes of `module.json` and the library) that tells the watcher whether anything changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::LoadError;
use crate::manifest::{self, Manifest};

/// A library file read once, with the SHA-256 of its bytes: what the loader maps (and knows it
/// by) and what the hub remembers as applied are the same bytes.
#[derive(Debug)]
pub struct LibraryFile {
    pub path: PathBuf,
    content: Result<(Vec<u8>, [u8; 32]), LoadError>,
}

impl LibraryFile {
    /// Blocking: reads and hashes the file.
    pub fn read(path: &Path) -> LibraryFile {
        let shown = path.display().to_string();
        let content = std::fs::read(path)
            .map(|bytes| {
                let digest = Sha256::digest(&bytes).into();
                (bytes, digest)
            })
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => LoadError::Missing {
                    path: shown.clone(),
                },
                _ => LoadError::Read {
                    path: shown.clone(),
                    reason: e.to_string(),
                },
            });
        LibraryFile {
            path: path.to_owned(),
            content,
        }
    }

    /// A file that could not be read, for `reason`.
    pub fn failed(path: &Path, reason: String) -> LibraryFile {
        LibraryFile {
            path: path.to_owned(),
            content: Err(LoadError::Read {
                path: path.display().to_string(),
                reason,
            }),
        }
    }

    /// The SHA-256 of the bytes read, if the file could be read.
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.content.as_ref().ok().map(|(_, digest)| *digest)
    }
}

impl LibraryFile {
    /// The bytes and their SHA-256, or why the file could not be read.
    pub(super) fn content(&self) -> Result<(&[u8], &[u8; 32]), LoadError> {
        match &self.content {
            Ok((bytes, digest)) => Ok((bytes, digest)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// What a module's files held when it was last applied: the SHA-256 of `module.json` and of its
/// library. The watcher applies a module again only when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    manifest: Option<[u8; 32]>,
    library: Option<[u8; 32]>,
}

impl Fingerprint {
    /// The fingerprint of `folder`'s files, and its library as read for it (blocking I/O, off
    /// the async threads), so that a start loads the very bytes the fingerprint describes.
    pub async fn read(folder: &Path) -> (Fingerprint, Arc<LibraryFile>) {
        let unread = folder.to_owned();
        let folder = folder.to_owned();
        let read = move || {
            let hash = |path: &Path| std::fs::read(path).ok().map(|b| Sha256::digest(&b).into());
            let library = Manifest::load(&folder)
                .map(|m| m.library_file())
                .unwrap_or_else(|_| {
                    let name = folder
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!(
                        "{}{name}{}",
                        std::env::consts::DLL_PREFIX,
                        std::env::consts::DLL_SUFFIX
                    )
                });
            let library = LibraryFile::read(&folder.join(library));
            let fingerprint = Fingerprint {
                manifest: hash(&folder.join(manifest::FILE_NAME)),
                library: library.digest(),
            };
            (fingerprint, Arc::new(library))
        };
        tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| {
            let fingerprint = Fingerprint {
                manifest: None,
                library: None,
            };
            let library = LibraryFile::failed(&unread, format!("reading was interrupted: {e}"));
            (fingerprint, Arc::new(library))
        })
    }
}
