//! `docs/MODULE_QUICKSTART.md`, executed as written, in a copy of the repository: the new module
//! is created with `cargo xtask new-module`, built with `cargo xtask build` while a hub runs on the
//! copy's `plugins/` (auto-reload on), called with curl, made writable by editing its
//! `module.json`, and finally its own tests are run. No restart of the hub.
//!
//! The hub is started by the test instead of `cargo xtask run` (same binary, same folder). Curl
//! commands go to that hub's address and are retried for a few seconds, the time the hub needs to
//! load a library or apply an edit. An expected output may hold `…`, matching anything.
//!
//! Also here, because they need the copy too: `new-module` refusing bad names without writing.
//! The copy builds in `target/quickstart-target` (kept between runs), never in the main target
//! folder, whose binaries are in use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hub_testkit::Setup;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// A copy of the repository's files (tracked, and new ones not ignored), without build output.
fn copy_of_repository() -> tempfile::TempDir {
    let files = Command::new("git")
        .args(["ls-files", "-co", "--exclude-standard", "-z"])
        .current_dir(root())
        .output()
        .expect("git ls-files (the test copies the repository's files)");
    assert!(files.status.success(), "git ls-files failed");
    let copy = tempfile::tempdir().expect("temp dir");
    for file in files.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let relative = Path::new(std::str::from_utf8(file).expect("UTF-8 path"));
        let (from, to) = (root().join(relative), copy.path().join(relative));
        if from.is_file() {
            std::fs::create_dir_all(to.parent().expect("parent")).expect("folders");
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    }
    copy
}

fn shell(command: &str, dir: &Path) -> Output {
    Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            root().join("target").join("quickstart-target"),
        )
        .output()
        .unwrap_or_else(|e| panic!("run {command}: {e}"))
}

/// `actual` is `expected`, where `…` in `expected` stands for any text.
fn matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split('…').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return actual == expected;
    }
    if !actual.starts_with(first) || !actual.ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The fenced blocks of a markdown text: (language, content).
fn blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(language)) => current = Some((language.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some((_, content)), None) => {
                content.push_str(line);
                content.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn the_quickstart_works_as_written_and_the_new_module_passes_its_tests() {
    let copy = copy_of_repository();
    let plugins = copy.path().join("plugins");
    let hub = Setup::new()
        .env("MODULES_DIR", &plugins.display().to_string())
        .start();
    // What `cargo xtask run` leaves there: the hub's admin token.
    std::fs::create_dir_all(copy.path().join("target")).expect("target folder");
    std::fs::write(copy.path().join("target/admin-token"), hub_testkit::TOKEN).expect("token file");
    let guide = std::fs::read_to_string(copy.path().join("docs/MODULE_QUICKSTART.md"))
        .expect("the quickstart");
    let blocks = blocks(&guide);
    let mut ran = 0;
    for (n, (language, content)) in blocks.iter().enumerate() {
        if language != "sh" {
            continue;
        }
        let expected = blocks
            .get(n + 1)
            .filter(|(l, _)| l == "json" || l == "text")
            .map(|(_, c)| c.trim().to_owned());
        for line in content
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if line.starts_with("cargo xtask run") {
                continue; // the test's own hub stands in for it
            }
            let command = line.replace("http://127.0.0.1:8000", &hub.base);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let output = shell(&command, copy.path());
                let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                let ok = output.status.success()
                    && expected.as_deref().is_none_or(|e| matches(e, &stdout));
                if ok {
                    break;
                }
                if !command.starts_with("curl") || Instant::now() > deadline {
                    panic!(
                        "quickstart command failed: {line}\nexpected: {expected:?}\nstdout: {stdout}\nstderr: {}\nhub:\n{}",
                        String::from_utf8_lossy(&output.stderr),
                        hub.logs()
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            ran += 1;
        }
    }
    assert!(ran >= 7, "the quickstart's commands were found ({ran})");
    let module = hub.module("invoice_ocr");
    assert_eq!(module["state"], "running");
    assert_eq!(
        module["reloads"], 1,
        "the safety edit was applied by reloading, without a restart"
    );

    // The new module passes its own tests.
    let tested = shell("cargo test -p module-invoice_ocr", copy.path());
    assert!(
        tested.status.success(),
        "the new module's tests failed:\n{}\n{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );

    // Bad names are refused with a reason, and nothing is written.
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("plugins")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(&plugins);
    for (name, why) in [
        (
            "Invoices",
            "module name \"Invoices\" is invalid: it must start with a lowercase letter a-z",
        ),
        ("admin", "module name \"admin\" is invalid: it is reserved"),
        ("a__b", "it contains '__'"),
        ("hello", "plugins/hello already exists: choose another name"),
    ] {
        let output = shell(&format!("cargo xtask new-module {name}"), copy.path());
        assert!(!output.status.success(), "{name} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{name}: {stderr}");
    }
    assert_eq!(listing(&plugins), before, "nothing was written");
}

#[test]
fn expected_outputs_match_with_ellipses() {
    assert!(matches(
        r#"{"id":1,"at":"…"}"#,
        r#"{"id":1,"at":"2026-11-26T10:00:00Z"}"#
    ));
    assert!(!matches(r#"{"id":1,"at":"…"}"#, r#"{"id":2,"at":"x"}"#));
    assert!(matches("a…b…c", "a-x-b-y-c"));
    assert!(!matches("a…b…c", "a-x-c"));
    assert!(matches("exact", "exact") && !matches("exact", "exact!"));
}
