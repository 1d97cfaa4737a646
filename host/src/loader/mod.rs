//! Opening module libraries. This room is the only one of the host that touches abi_stable's
//! loading API (`file.rs` reads and hashes library files; `host.rs` is the hub's side of the ABI,
//! the host object a module calls back into).
//!
//! Loading copies the library into the hub's private runtime folder (a fresh 0700 temporary
//! folder, never a predictable path), opens the copy, checks its ABI and deletes the copy.
//! Copies are needed because the dynamic loader returns the already-open handle for a path it
//! has seen, which would make a reload load the old code. Libraries are never closed: abi_stable
//! keeps pointers into them, and dropping a value made by an unloaded library crashes. Each
//! distinct library (by module name and content hash) is therefore opened at most once and
//! stays mapped; opening an identical file again reuses the mapping.

mod file;
mod host;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use abi_stable::library::{LibraryError, RootModule, lib_header_from_path};
use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::RString;
use plugin_api::ffi::{HostAllocator, HostObj_TO, InitArgs, LogLevel, ModuleBox, PluginRootRef};
use serde_json::{Map, Value};
use thiserror::Error;

pub use self::file::{Fingerprint, LibraryFile};
use self::host::HostServices;
use crate::assets::ModuleAssets;
use crate::db::Database;
use crate::db::gateway::Caller;
use crate::db::migrate::MigrationSpec;

/// Why a library could not be opened.
#[derive(Debug, Clone, Error)]
pub enum LoadError {
    #[error(
        "library {path} not found: build the module (cargo xtask build) or fix \"library\" in module.json"
    )]
    Missing { path: String },
    #[error("cannot read library {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a loadable library: {reason}")]
    NotALibrary { path: String, reason: String },
    #[error(
        "{path} is not a BMC Hub module: it exports no root module (use plugin_api::export_module!)"
    )]
    NoRootModule { path: String },
    #[error(
        "{path} was built against plugin-api {found}, but this hub has plugin-api {expected}: rebuild the module against plugin-api {expected_line}"
    )]
    Incompatible {
        path: String,
        found: String,
        expected: String,
        expected_line: String,
    },
    #[error(
        "{path} does not match the ABI of this hub's plugin-api {expected}: rebuild the module against plugin-api {expected_line}. The layout check says:\n{excerpt}"
    )]
    AbiMismatch {
        path: String,
        expected: String,
        expected_line: String,
        excerpt: String,
    },
    #[error(
        "{path} is truncated: it has {size} bytes, but its headers say it has at least {needed} (is it still being copied?): wait until the copy is complete, then reload"
    )]
    Truncated {
        path: String,
        size: usize,
        needed: u64,
    },
    #[error("{path} could not be initialised: {reason}")]
    Other { path: String, reason: String },
}

impl LoadError {
    /// Whether the error is a property of the file's bytes (then the same bytes fail the same
    /// way, and the loader remembers it), not of the moment (a read or a copy that failed).
    fn is_about_the_bytes(&self) -> bool {
        !matches!(self, LoadError::Missing { .. } | LoadError::Read { .. })
    }
}

/// An opened module library: its root module and what it says about itself.
#[derive(Clone, Copy)]
pub struct Library {
    root: PluginRootRef,
}

/// What a library reports before `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInfo {
    pub crate_name: String,
    pub version: String,
    pub api_version: String,
}

impl Library {
    pub fn info(&self) -> LibraryInfo {
        let info = (self.root.info())();
        LibraryInfo {
            crate_name: info.name.into_string(),
            version: info.version.into_string(),
            api_version: info.api_version.into_string(),
        }
    }

    /// The module's migrations, in the order it declares them.
    pub fn migrations(&self) -> Result<Vec<MigrationSpec>, String> {
        let list = (self.root.migrations())()
            .into_result()
            .map_err(RString::into_string)?;
        Ok(list
            .into_iter()
            .map(|m| MigrationSpec {
                version: m.version,
                name: m.name.as_str().to_owned(),
                sql: m.sql.as_str().to_owned(),
            })
            .collect())
    }

    /// The module's templates and static files.
    pub fn assets(&self) -> Result<ModuleAssets, String> {
        let list = (self.root.assets())()
            .into_result()
            .map_err(RString::into_string)?;
        let mut assets = ModuleAssets::default();
        for asset in list {
            let path = asset.path.as_str().to_owned();
            if asset.template {
                let text = std::str::from_utf8(asset.bytes.as_slice())
                    .map_err(|e| format!("template {path} is not UTF-8: {e}"))?;
                assets.templates.insert(path, text.to_owned());
            } else {
                // The library is never unloaded: its statics live as long as the hub.
                assets.statics.insert(path, asset.bytes.as_slice());
            }
        }
        Ok(assets)
    }

    /// Run the module's `init`. An error or a panic in it comes back as `Err(reason)`.
    pub fn instantiate(&self, args: InstanceArgs) -> Result<ModuleBox, String> {
        let job_names = Arc::new(std::sync::OnceLock::new());
        let host = HostServices {
            caller: Caller {
                module: args.module.clone(),
                read_only: args.read_only,
                dry_run: args.dry_run,
            },
            config: args.config,
            database: args.database,
            outbound: Arc::new(crate::outbound::Client::new(
                &args.module,
                args.outbound,
                args.dry_run,
            )),
            blocking: Arc::new(tokio::sync::Semaphore::new(args.blocking_threads.max(1))),
            job_names: job_names.clone(),
        };
        let init_args = InitArgs {
            module: args.module.into(),
            host: HostObj_TO::from_value(host, TD_Opaque),
            read_only: args.read_only,
            dry_run: args.dry_run,
            max_log_level: args.max_log_level,
        };
        let object = (self.root.init())(init_args)
            .into_result()
            .map_err(RString::into_string)?;
        // What `ctx.jobs().enqueue` may name, known once `init` has built the router.
        let _ = job_names.set(
            object
                .jobs()
                .into_iter()
                .map(|job| job.name.into_string())
                .collect(),
        );
        Ok(object)
    }
}

/// What a module instance is started with.
#[derive(Clone)]
pub struct InstanceArgs {
    pub module: String,
    pub config: Map<String, Value>,
    pub read_only: bool,
    pub dry_run: bool,
    pub max_log_level: LogLevel,
    pub database: Arc<Database>,
    /// The hosts it may call (`ctx.http()`).
    pub outbound: Vec<crate::manifest::HostPattern>,
    /// Its blocking tasks running at once (`ctx.spawn_blocking`).
    pub blocking_threads: usize,
}

/// Opens libraries through private copies and remembers what it opened.
pub struct Loader {
    runtime_dir: tempfile::TempDir,
    opened: Mutex<HashMap<(String, [u8; 32]), Opened>>,
}

#[derive(Clone)]
struct Opened {
    result: Result<Library, LoadError>,
    /// The library stays mapped (it was opened, whether or not it then passed the checks).
    mapped: bool,
}

impl Loader {
    /// Make the private runtime folder inside `parent` (the system temp dir when `None`).
    pub fn new(parent: Option<&Path>) -> std::io::Result<Loader> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("bmc-hub-runtime-");
        let runtime_dir = match parent {
            Some(parent) => builder.tempdir_in(parent)?,
            None => builder.tempdir()?,
        };
        // Keep the exported allocator in the binary (it is found by name only).
        std::hint::black_box(&bmc_hub_allocator_v1);
        Ok(Loader {
            runtime_dir,
            opened: Mutex::new(HashMap::new()),
        })
    }

    /// The private folder library copies pass through.
    pub fn runtime_dir(&self) -> &Path {
        self.runtime_dir.path()
    }

    /// How many copies of module `module`'s libraries this process keeps mapped.
    pub fn mapped_count(&self, module: &str) -> usize {
        self.opened
            .lock()
            .map(|o| {
                o.iter()
                    .filter(|((m, _), v)| m == module && v.mapped)
                    .count()
            })
            .unwrap_or(0)
    }

    /// Open `file` as module `module`'s library. Blocking: maps the file.
    pub fn open(&self, module: &str, file: &LibraryFile) -> Result<Library, LoadError> {
        let (bytes, digest) = file.content()?;
        let key = (module.to_owned(), *digest);
        if let Some(opened) = self.opened.lock().ok().and_then(|o| o.get(&key).cloned()) {
            return opened.result;
        }
        let opened = self.open_copy(module, &file.path.display().to_string(), bytes);
        let remembered = match &opened.result {
            Ok(_) => true,
            Err(error) => opened.mapped || error.is_about_the_bytes(),
        };
        if remembered && let Ok(mut all) = self.opened.lock() {
            all.insert(key, opened.clone());
        }
        opened.result
    }

    fn open_copy(&self, module: &str, shown: &str, bytes: &[u8]) -> Opened {
        let not_opened = |error| Opened {
            result: Err(error),
            mapped: false,
        };
        let read_error = |e: std::io::Error| LoadError::Read {
            path: shown.to_owned(),
            reason: format!("copying into {}: {e}", self.runtime_dir().display()),
        };
        if let Err(error) = check_complete(shown, bytes) {
            return not_opened(error);
        }
        let new_copy = || {
            tempfile::Builder::new()
                .prefix(&format!("{module}-"))
                .suffix(std::env::consts::DLL_SUFFIX)
                .tempfile_in(self.runtime_dir())
        };
        let copy = match new_copy() {
            Ok(copy) => copy,
            // The private folder is gone (a cleaner of temporary files): make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match make_private_folder(self.runtime_dir()).and_then(|()| new_copy()) {
                    Ok(copy) => copy,
                    Err(e) => return not_opened(read_error(e)),
                }
            }
            Err(e) => return not_opened(read_error(e)),
        };
        if let Err(e) = std::fs::write(copy.path(), bytes) {
            return not_opened(read_error(e));
        }
        // The copy is deleted when `copy` drops; the mapping stays.
        let header = match lib_header_from_path(copy.path()) {
            Ok(header) => header,
            Err(e) => return not_opened(load_error(shown, e)),
        };
        // The plugin-api version is the ABI version: refuse another line (0.x minor, or major)
        // by name before abi_stable's layout check, whose report runs to thousands of lines.
        let found = header.version_strings().version.to_string();
        let expected = PluginRootRef::VERSION_STRINGS.version.to_string();
        if api_line(&found) != api_line(&expected) {
            return Opened {
                result: Err(LoadError::Incompatible {
                    path: shown.to_owned(),
                    found,
                    expected_line: api_line(&expected),
                    expected,
                }),
                mapped: true,
            };
        }
        Opened {
            result: header
                .init_root_module::<PluginRootRef>()
                .map(|root| Library { root })
                .map_err(|e| load_error(shown, e)),
            mapped: true,
        }
    }
}

/// Make `folder` (and its parents) again, readable by the hub's user only.
fn make_private_folder(folder: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(folder)
}

/// An ELF file whose program or section headers lie past its end is incomplete (a copy still
/// being written): mapping it could fault when the loader touches the missing part. Other
/// formats are left to the platform's loader.
fn check_complete(path: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(());
    }
    let truncated = |needed: u64| LoadError::Truncated {
        path: path.to_owned(),
        size: bytes.len(),
        needed,
    };
    let little = bytes.get(5) != Some(&2);
    let number = |at: usize, width: usize| -> Option<u64> {
        let field = bytes.get(at..at + width)?;
        let mut value = 0u64;
        for i in 0..width {
            let byte = if little {
                field[width - 1 - i]
            } else {
                field[i]
            };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    // (offset, entry size, count) of the program headers, then of the section headers.
    let fields = match bytes.get(4) {
        Some(1) => [(0x1C, 4, 0x2A, 0x2C), (0x20, 4, 0x2E, 0x30)],
        _ => [(0x20, 8, 0x36, 0x38), (0x28, 8, 0x3A, 0x3C)],
    };
    let header_size = if bytes.get(4) == Some(&1) { 0x34 } else { 0x40 };
    if bytes.len() < header_size {
        // Not even a header: the platform's loader says what it is.
        return Ok(());
    }
    for (offset_at, offset_width, size_at, count_at) in fields {
        let (Some(offset), Some(size), Some(count)) = (
            number(offset_at, offset_width),
            number(size_at, 2),
            number(count_at, 2),
        ) else {
            return Err(truncated(header_size as u64));
        };
        let end = offset.saturating_add(size.saturating_mul(count));
        if end > bytes.len() as u64 {
            return Err(truncated(end));
        }
    }
    Ok(())
}

/// Turn abi_stable's error into a few lines that name the fix.
fn load_error(path: &str, error: LibraryError) -> LoadError {
    let path = path.to_owned();
    let expected = PluginRootRef::VERSION_STRINGS.version.to_string();
    let expected_line = api_line(&expected);
    match error {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary {
            path,
            reason: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NoRootModule { path },
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => LoadError::Incompatible {
            path,
            found: actual_version.to_string(),
            expected,
            expected_line,
        },
        LibraryError::AbiInstability(report) => LoadError::AbiMismatch {
            path,
            expected,
            expected_line,
            excerpt: layout_summary(&report.to_string()),
        },
        LibraryError::InvalidAbiHeader(header) => LoadError::Incompatible {
            path,
            found: format!("(a library made with abi_stable {header:?})"),
            expected,
            expected_line,
        },
        other => LoadError::Other {
            path,
            reason: excerpt(&other.to_string(), 6),
        },
    }
}

/// `0.1.3` → `0.1` (0.x: the minor is the ABI), `1.4.0` → `1`.
fn api_line(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}"),
        (Some(major), _) => major.to_owned(),
        _ => version.to_owned(),
    }
}

/// The distinct `Error:` lines of abi_stable's layout report (else its first lines).
fn layout_summary(report: &str) -> String {
    let mut errors: Vec<&str> = Vec::new();
    for line in report
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Error:"))
    {
        if !errors.contains(&line) {
            errors.push(line);
        }
    }
    if errors.is_empty() {
        return excerpt(report, 6);
    }
    let total = report.lines().count();
    format!(
        "{}\n… ({total} lines of layout report left out)",
        excerpt(&errors.join("\n"), 5)
    )
}

/// The first `lines` non-empty lines of `text`, with a note of how many were left out.
fn excerpt(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = all
        .iter()
        .take(lines)
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    if all.len() > lines {
        out.push_str(&format!("\n… ({} more lines)", all.len() - lines));
    }
    out
}

/// The hub's allocator, exported by name (`plugin_api::ffi::HOST_ALLOCATOR_SYMBOL`; `build.rs`
/// puts it in the binary's dynamic symbol table) for modules to allocate with: values crossing the
/// boundary are then made and freed by one allocator. It is mimalloc, called directly (the hub's
/// global allocator is mimalloc too; a module's memory is only ever freed through this table, so
/// the two need not be the same allocator, only each table consistent).
#[unsafe(no_mangle)]
#[used]
#[allow(non_upper_case_globals)]
pub static bmc_hub_allocator_v1: HostAllocator = HostAllocator {
    alloc: hub_alloc,
    alloc_zeroed: hub_alloc_zeroed,
    dealloc: hub_dealloc,
    realloc: hub_realloc,
};

/// mimalloc aligns every block to the smaller of 16 and its size: a request needing no more than
/// that takes the plain (faster) path.
fn plainly_aligned(size: usize, align: usize) -> bool {
    align <= 16 && align <= size
}

unsafe extern "C" fn hub_alloc(size: usize, align: usize) -> *mut u8 {
    // SAFETY: a module's GlobalAlloc passes the size and alignment of a valid Layout (size > 0).
    unsafe {
        if plainly_aligned(size, align) {
            libmimalloc_sys::mi_malloc(size).cast()
        } else {
            libmimalloc_sys::mi_malloc_aligned(size, align).cast()
        }
    }
}

unsafe extern "C" fn hub_alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    // SAFETY: as in `hub_alloc`.
    unsafe {
        if plainly_aligned(size, align) {
            libmimalloc_sys::mi_zalloc(size).cast()
        } else {
            libmimalloc_sys::mi_zalloc_aligned(size, align).cast()
        }
    }
}

unsafe extern "C" fn hub_dealloc(ptr: *mut u8, _size: usize, _align: usize) {
    // SAFETY: `ptr` was allocated by `hub_alloc`, `hub_alloc_zeroed` or `hub_realloc`.
    unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
}

unsafe extern "C" fn hub_realloc(ptr: *mut u8, _size: usize, align: usize, new: usize) -> *mut u8 {
    // SAFETY: as in `hub_dealloc`; `new` and `align` describe a valid Layout.
    unsafe {
        if plainly_aligned(new, align) {
            libmimalloc_sys::mi_realloc(ptr.cast(), new).cast()
        } else {
            libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new, align).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_line_is_the_minor_in_0x_and_the_major_after() {
        assert_eq!(api_line("0.1.3"), "0.1");
        assert_eq!(api_line("1.4.0"), "1");
    }

    #[test]
    fn excerpt_keeps_the_first_lines_and_counts_the_rest() {
        let text = (1..=300)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            excerpt(&text, 3),
            "line 1\nline 2\nline 3\n… (297 more lines)"
        );
        assert_eq!(excerpt("a\n\nb", 6), "a\nb");
    }

    #[test]
    fn a_layout_report_shrinks_to_its_distinct_errors() {
        let report = "Compared <this>:\n  type:A\nError:incompatible package versions\n  x\n  Error:incompatible package versions\nError:field mismatch\n";
        assert_eq!(
            layout_summary(report),
            "Error:incompatible package versions\nError:field mismatch\n… (6 lines of layout report left out)"
        );
    }

    #[test]
    fn a_truncated_elf_file_is_refused_before_it_is_mapped() {
        let library = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            check_complete("x.so", &library).map_err(|e| e.to_string()),
            Ok(())
        );
        for cut in [100, library.len() / 2, library.len() - 1] {
            let error = check_complete("x.so", &library[..cut])
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!(
                    "x.so is truncated: it has {cut} bytes, but its headers say it has at least "
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_a_library_is_refused_without_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let loader = Loader::new(Some(dir.path())).unwrap();
        let path = dir.path().join("libjunk.so");
        std::fs::write(&path, b"this is not an ELF file").unwrap();
        let err = loader
            .open("junk", &LibraryFile::read(&path))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(&format!("{} is not a loadable library: ", path.display())),
            "{err}"
        );
        assert_eq!(loader.mapped_count("junk"), 0);
        let copies = std::fs::read_dir(loader.runtime_dir()).unwrap().count();
        assert_eq!(copies, 0, "the private copy is deleted");
    }
}
