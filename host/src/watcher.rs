//! Hot reload: watches `MODULES_DIR` (notify, debounced by notify-debouncer-full) and brings each
//! module whose files changed in line with them, without a restart.
//!
//! Which events count: creations, modifications, renames, removals, and `Access(Close(Write))`
//! (inotify's IN_CLOSE_WRITE: a writer finished). Reading a library to load it fires
//! `Access(Open)` and `Access(Close(Read))`; those are dropped, or every load would cause another.
//! A file written in place is not loaded while a writer still has it open (seen modified, not yet
//! closed): the module waits for the close, at most [`WRITER_GRACE`] after the writer's last
//! write (a slow copy keeps its module waiting as long as it writes). A library that is loaded
//! anyway while incomplete is refused by the loader (its ELF headers point past its end). The hub's own writes of
//! `module.json` cause no reload: a module is only applied again when the content of its
//! `module.json` or library differs from what it last applied (see `Hub::on_file_change`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use crate::lifecycle::Hub;
use crate::names;

/// The shortest debounce the watcher uses (`HUB_RELOAD_DEBOUNCE_MS` below it counts as it).
pub const MIN_DEBOUNCE: Duration = Duration::from_millis(10);

/// The longest a module waits for a writer that modified its files to close them.
pub const WRITER_GRACE: Duration = Duration::from_secs(5);

/// Keeps the watcher running; dropping it stops watching.
pub struct Watch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// Start watching `MODULES_DIR` for `hub`, on the current runtime.
pub fn start(hub: Arc<Hub>) -> notify::Result<Watch> {
    let dir = hub.config().modules_dir.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    // The debouncer's thread wakes every `tick` (a quarter of the debounce, at most the
    // debounce): a debounce of 0 would be a spinning core, so it counts as 10 ms.
    let debounce = hub.config().reload_debounce.max(MIN_DEBOUNCE);
    let tick = debounce / 4;
    let mut debouncer =
        new_debouncer(
            debounce,
            Some(tick),
            move |result: DebounceEventResult| match result {
                Ok(events) => {
                    let _ = tx.send(events.into_iter().map(|e| e.event).collect::<Vec<_>>());
                }
                Err(errors) => {
                    for error in errors {
                        tracing::warn!("watching MODULES_DIR: {error}");
                    }
                }
            },
        )?;
    debouncer.watch(&dir, RecursiveMode::Recursive)?;
    tracing::info!(
        "watching {} for changes (MODULES_AUTO_RELOAD=true)",
        dir.display()
    );
    // Events name absolute paths (a relative MODULES_DIR joined to the working directory), so
    // match them against the absolute form.
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    tokio::spawn(run(hub, dir, rx));
    Ok(Watch {
        _debouncer: debouncer,
    })
}

/// Whether an event says something changed. Reads and opens do not.
fn counts(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Any | EventKind::Other => true,
    }
}

/// The module folder `path` belongs to, if any.
fn module_of(dir: &Path, path: &Path) -> Option<String> {
    let first = path.strip_prefix(dir).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?.to_owned();
    (!names::is_hidden_folder(&name)).then_some(name)
}

/// Files seen modified and not yet closed by their writer.
#[derive(Default)]
struct Writers {
    open: HashMap<PathBuf, Instant>,
}

impl Writers {
    fn note(&mut self, kind: &EventKind, paths: &[PathBuf]) {
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) | EventKind::Remove(_) => {
                for path in paths {
                    self.open.remove(path);
                }
            }
            EventKind::Modify(ModifyKind::Name(_)) => {
                // A rename moves a finished file into place: nothing is being written to it.
                for path in paths {
                    self.open.remove(path);
                }
            }
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                // Each write starts the grace again: a slow writer is still a writer.
                for path in paths.iter().filter(|p| p.is_file()) {
                    self.open.insert(path.clone(), Instant::now());
                }
            }
            _ => {}
        }
    }

    /// Whether a file of module `name` is still being written (within the grace period).
    fn busy(&mut self, dir: &Path, name: &str) -> bool {
        self.open
            .retain(|path, since| path.exists() && since.elapsed() < WRITER_GRACE);
        self.open
            .keys()
            .any(|path| module_of(dir, path).as_deref() == Some(name))
    }
}

async fn run(hub: Arc<Hub>, dir: PathBuf, mut rx: mpsc::UnboundedReceiver<Vec<notify::Event>>) {
    let mut writers = Writers::default();
    let mut pending: HashSet<String> = HashSet::new();
    let tick = Duration::from_millis(100);
    loop {
        let batch = if pending.is_empty() {
            match rx.recv().await {
                Some(batch) => Some(batch),
                None => return,
            }
        } else {
            match tokio::time::timeout(tick, rx.recv()).await {
                Ok(Some(batch)) => Some(batch),
                Ok(None) => return,
                Err(_) => None,
            }
        };
        for event in batch.into_iter().flatten().filter(|e| counts(&e.kind)) {
            tracing::debug!("file event {:?} {:?}", event.kind, event.paths);
            writers.note(&event.kind, &event.paths);
            for path in &event.paths {
                if path == &dir {
                    // The folder itself changed: look at every module folder.
                    pending.extend(hub.known_and_present_modules());
                } else if let Some(name) = module_of(&dir, path) {
                    pending.insert(name);
                }
            }
        }
        let ready: Vec<String> = pending
            .iter()
            .filter(|name| {
                let busy = writers.busy(&dir, name);
                if busy {
                    tracing::debug!(module = %name, "waiting for a writer to close its files");
                }
                !busy
            })
            .cloned()
            .collect();
        for name in ready {
            pending.remove(&name);
            // Modules reload in parallel; one module's changes are serialized by its lock.
            let hub = hub.clone();
            tokio::spawn(async move { hub.on_file_change(&name).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange};

    #[test]
    fn reads_do_not_count_and_a_finished_write_does() {
        assert!(!counts(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!counts(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(counts(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(counts(&EventKind::Modify(ModifyKind::Data(
            DataChange::Content
        ))));
    }

    #[test]
    fn paths_map_to_their_module_folder() {
        let dir = Path::new("/p");
        assert_eq!(
            module_of(dir, Path::new("/p/hello/libhello.so")).as_deref(),
            Some("hello")
        );
        assert_eq!(
            module_of(dir, Path::new("/p/hello")).as_deref(),
            Some("hello")
        );
        assert_eq!(module_of(dir, Path::new("/p/_template/module.json")), None);
        assert_eq!(module_of(dir, Path::new("/elsewhere/x")), None);
    }

    #[test]
    fn each_write_starts_the_grace_again() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("m").join("libm.so");
        std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
        std::fs::write(&lib, b"half").unwrap();
        let mut writers = Writers::default();
        let write = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Content));
        writers.note(&write, std::slice::from_ref(&lib));
        let first = writers.open[&lib];
        // Backdate the first write past the grace: a later write must count from itself.
        let old = first
            .checked_sub(WRITER_GRACE)
            .expect("a clock older than the grace");
        writers.open.insert(lib.clone(), old);
        writers.note(&write, std::slice::from_ref(&lib));
        assert!(
            writers.busy(dir.path(), "m"),
            "a writer that wrote again is still busy"
        );
    }

    #[test]
    fn a_file_being_written_holds_its_module_back_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("m").join("libm.so");
        std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
        std::fs::write(&lib, b"half").unwrap();
        let mut writers = Writers::default();
        writers.note(
            &EventKind::Create(CreateKind::File),
            std::slice::from_ref(&lib),
        );
        assert!(writers.busy(dir.path(), "m"));
        assert!(!writers.busy(dir.path(), "other"));
        writers.note(
            &EventKind::Access(AccessKind::Close(AccessMode::Write)),
            std::slice::from_ref(&lib),
        );
        assert!(!writers.busy(dir.path(), "m"));
    }
}
