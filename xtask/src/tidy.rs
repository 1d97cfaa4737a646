//! Tidy checks over the source tree, run as tests: every `.rs` file says what it is for,
//! `unsafe` / `extern "C"` stay in the files that own the boundary, and each crate's rooms stack
//! one way (a room uses only rooms below it) with one concern each (only `db` names the
//! PostgreSQL driver, only `http` names actix-web, …). The layer tables here are the pictures in
//! `docs/architecture.md`.

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use crate::build::root;

    /// The files allowed to hold `unsafe`.
    const UNSAFE_FILES: &[&str] = &["plugin-api/src/glue.rs", "host/src/loader/mod.rs"];

    /// The files allowed to hold `extern "C"`: the ABI's types (function pointers in the root
    /// module), the glue (the functions behind them) and the loader.
    const EXTERN_C_FILES: &[&str] = &[
        "plugin-api/src/ffi.rs",
        "plugin-api/src/glue.rs",
        "host/src/loader/mod.rs",
    ];

    /// A crate's rooms, bottom up: a room may use the rooms on lower lines, never one on its own
    /// line or above. A room is a file of `src/` or a folder of it (`db/…` is `db`); `lib` and
    /// `main` are the crate roots.
    struct Layers {
        src: &'static str,
        lines: &'static [&'static [&'static str]],
    }

    const HOST: Layers = Layers {
        src: "host/src",
        lines: &[
            &["names", "causes", "assets", "signals"],
            &["manifest", "templates"],
            &["config", "metrics"],
            &["logging", "db", "outbound"],
            &["identity", "usage"],
            &["loader"],
            &["instance"],
            &["registry"],
            &["deps"],
            &["packages"],
            &["lifecycle", "status"],
            &["watcher", "jobs"],
            &["fleet"],
            &["http"],
            &["lib", "main"],
        ],
    };

    const PLUGIN_API: Layers = Layers {
        src: "plugin-api/src",
        lines: &[
            &["ffi"],
            &["panic", "error"],
            &["metrics", "outbound", "blocking", "queue"],
            &["ctx", "schema"],
            &["http"],
            &["jobs", "extract"],
            &["router", "log"],
            &["module", "db"],
            &["glue"],
            &["lib"],
        ],
    };

    const XTASK: Layers = Layers {
        src: "xtask/src",
        lines: &[
            &["build", "pg"],
            &["fixtures", "node", "python", "packages"],
            &["run"],
            &["bench", "new_module", "dist"],
            &["main", "tidy"],
        ],
    };

    /// One concern per room: (what is named, the rooms that may name it). Checked in the host.
    const CONCERNS: &[(&str, &[&str])] = &[
        ("tokio_postgres", &["db"]),
        ("deadpool_postgres", &["db"]),
        ("actix_web", &["http"]),
        ("minijinja", &["templates"]),
        ("reqwest", &["outbound"]),
        ("abi_stable::library", &["loader"]),
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    rust_files(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }

    /// (path relative to the root, text) of every `.rs` file under `dirs`.
    fn sources(dirs: &[&str]) -> Vec<(String, String)> {
        let root = root();
        let mut files = Vec::new();
        for dir in dirs {
            rust_files(&root.join(dir), &mut files);
        }
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let relative = path
                    .strip_prefix(&root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                (relative, text)
            })
            .collect()
    }

    /// The lines of `text` that are code: comment lines (`//`, `//!`, `///`) left out, so that a
    /// doc link or a sentence naming a room is not a use of it.
    fn code_lines(text: &str) -> impl Iterator<Item = &str> {
        text.lines().filter(|l| !l.trim_start().starts_with("//"))
    }

    /// The room of a file, from its path relative to `src`: `db/gateway.rs` → `db`.
    fn room_of(relative: &str) -> &str {
        let first = relative.split('/').next().unwrap_or(relative);
        first.strip_suffix(".rs").unwrap_or(first)
    }

    /// The rooms a file's code refers to, through `crate::x`, `crate::{x, y::z}` and (from a
    /// folder's `mod.rs`) `super::x`.
    fn referred_rooms(relative: &str, text: &str) -> BTreeSet<String> {
        let mut rooms = BTreeSet::new();
        let super_is_root = relative.ends_with("/mod.rs");
        for line in code_lines(text) {
            let mut prefixes = vec!["crate::"];
            if super_is_root {
                prefixes.push("super::");
            }
            for prefix in prefixes {
                let mut rest = line;
                while let Some(at) = rest.find(prefix) {
                    let before = rest[..at].chars().last();
                    rest = &rest[at + prefix.len()..];
                    // `$crate::` is a macro's path in the crate that uses it; `host::crate::`
                    // does not exist; an identifier ending in "crate" is not the keyword.
                    if before
                        .is_some_and(|c| c == '$' || c == ':' || c.is_alphanumeric() || c == '_')
                    {
                        continue;
                    }
                    if let Some(list) = rest.strip_prefix('{') {
                        for item in top_level_items(list) {
                            rooms.insert(item);
                        }
                    } else {
                        let ident: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !ident.is_empty() {
                            rooms.insert(ident);
                        }
                    }
                }
            }
        }
        rooms
    }

    /// The first identifier of each item of a `{a, b::c, d::{e}}` list (up to its closing brace).
    fn top_level_items(list: &str) -> Vec<String> {
        let mut items = Vec::new();
        let mut depth = 0;
        let mut at_item_start = true;
        let mut current = String::new();
        for c in list.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    if !current.is_empty() {
                        items.push(std::mem::take(&mut current));
                    }
                    at_item_start = true;
                }
                c if depth == 0 && at_item_start => {
                    if c.is_alphanumeric() || c == '_' {
                        current.push(c);
                    } else if !current.is_empty() {
                        items.push(std::mem::take(&mut current));
                        at_item_start = false;
                    }
                }
                _ => {}
            }
        }
        if !current.is_empty() {
            items.push(current);
        }
        items
    }

    /// Every reference from a lower or same-line room to a room not below it, and every file in
    /// a room the table does not place.
    fn layering_violations(layers: &Layers, files: &[(String, String)]) -> Vec<String> {
        let line_of = |room: &str| layers.lines.iter().position(|line| line.contains(&room));
        let mut violations = Vec::new();
        for (path, text) in files {
            let Some(relative) = path.strip_prefix(&format!("{}/", layers.src)) else {
                continue;
            };
            let room = room_of(relative);
            let Some(mine) = line_of(room) else {
                violations.push(format!(
                    "{path}: room '{room}' is not in the layer table of {}: place it there and in docs/architecture.md",
                    layers.src
                ));
                continue;
            };
            for other in referred_rooms(relative, text) {
                if other == room {
                    continue;
                }
                match line_of(&other) {
                    Some(theirs) if theirs < mine => {}
                    Some(_) => violations.push(format!(
                        "{path}: room '{room}' uses '{other}', which is not below it"
                    )),
                    // Not a room: an item of the crate root (a macro, a re-export) or a typo
                    // the compiler finds.
                    None => {}
                }
            }
        }
        violations
    }

    /// Every file of the host that names something only other rooms may name.
    fn concern_violations(files: &[(String, String)]) -> Vec<String> {
        let mut violations = Vec::new();
        for (path, text) in files {
            let Some(relative) = path.strip_prefix("host/src/") else {
                continue;
            };
            let room = room_of(relative);
            for (name, owners) in CONCERNS {
                if !owners.contains(&room) && code_lines(text).any(|l| names_item(l, name)) {
                    violations.push(format!(
                        "{path}: names {name}, which only {owners:?} may name"
                    ));
                }
            }
        }
        violations
    }

    /// Whether `line` names `item` as a path (`item::…`, `use item`), not as part of a longer
    /// identifier.
    fn names_item(line: &str, item: &str) -> bool {
        line.match_indices(item).any(|(at, _)| {
            let before = line[..at].chars().last();
            let after = line[at + item.len()..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    }

    #[test]
    fn every_rust_file_starts_with_a_module_comment() {
        let missing: Vec<String> = sources(&["host", "plugin-api", "plugins", "xtask", "testkit"])
            .into_iter()
            .filter(|(_, text)| !text.trim_start().starts_with("//!"))
            .map(|(path, _)| path)
            .collect();
        assert!(
            missing.is_empty(),
            "start these files with a `//!` line saying what they are for: {missing:?}"
        );
    }

    #[test]
    fn unsafe_and_extern_c_stay_at_the_boundary() {
        // Built with concat! so that this file does not match itself.
        let unsafe_needles = [
            concat!("uns", "afe {"),
            concat!("uns", "afe fn"),
            concat!("uns", "afe impl"),
            concat!("uns", "afe extern"),
            concat!("uns", "afe("),
        ];
        let extern_needle = concat!("extern ", "\"C\" fn");
        // A function pointer type (`unsafe extern "C" fn(…)`, no name) is an ABI type, not unsafe
        // code: the ABI's types may name one.
        let pointer_type = concat!("uns", "afe extern \"C\" fn(");
        let mut offenders = Vec::new();
        for (path, text) in sources(&["host", "plugin-api", "plugins", "xtask", "testkit"]) {
            let has = |needles: &[&str]| {
                code_lines(&text).any(|l| {
                    let l = l.replace(pointer_type, "extern \"C\" fn(");
                    needles.iter().any(|n| l.contains(n))
                })
            };
            if !UNSAFE_FILES.contains(&path.as_str()) && has(&unsafe_needles) {
                offenders.push(format!("{path}: unsafe (allowed in {UNSAFE_FILES:?})"));
            }
            if !EXTERN_C_FILES.contains(&path.as_str()) && has(&[extern_needle]) {
                offenders.push(format!(
                    "{path}: extern \"C\" (allowed in {EXTERN_C_FILES:?})"
                ));
            }
        }
        assert!(
            offenders.is_empty(),
            "move these boundary items: {offenders:#?}"
        );
    }

    #[test]
    fn rooms_stack_one_way() {
        let files = sources(&["host/src", "plugin-api/src", "xtask/src"]);
        let mut violations = Vec::new();
        for layers in [&HOST, &PLUGIN_API, &XTASK] {
            violations.extend(layering_violations(layers, &files));
        }
        assert!(
            violations.is_empty(),
            "rooms must use only rooms below them (the layer tables in xtask/src/tidy.rs, drawn in docs/architecture.md): {violations:#?}"
        );
    }

    #[test]
    fn each_host_room_keeps_its_one_concern() {
        let violations = concern_violations(&sources(&["host/src"]));
        assert!(violations.is_empty(), "{violations:#?}");
    }

    #[test]
    fn the_checks_catch_what_they_are_for() {
        let file = |path: &str, text: &str| (path.to_owned(), text.to_owned());
        let files = vec![
            // A lower room naming a higher one inline, in a use list, and through `super::` of a
            // folder's mod.rs.
            file(
                "host/src/registry/mod.rs",
                "pub fingerprint: Option<crate::lifecycle::Fingerprint>,\nuse crate::{names, http::error};\nuse super::status;\n// crate::watcher in a comment does not count\nmacro_rules! m { () => { $crate::lib }; }\n",
            ),
            // A sibling file of a folder uses its own room through `super::`.
            file(
                "host/src/db/gateway.rs",
                "use super::convert;\nuse crate::config::Config;\n",
            ),
            // Two rooms on one line may not use each other.
            file("host/src/status.rs", "use crate::lifecycle::Hub;\n"),
            // A room the table does not know.
            file("host/src/stray.rs", "use crate::names;\n"),
            // Concerns.
            file(
                "host/src/loader/mod.rs",
                "use minijinja::Environment;\nlet x = my_actix_web_thing;\n",
            ),
            file("host/src/templates.rs", "use minijinja::Environment;\n"),
        ];
        let mut layering = layering_violations(&HOST, &files);
        layering.sort();
        assert_eq!(
            layering,
            [
                "host/src/registry/mod.rs: room 'registry' uses 'http', which is not below it",
                "host/src/registry/mod.rs: room 'registry' uses 'lifecycle', which is not below it",
                "host/src/registry/mod.rs: room 'registry' uses 'status', which is not below it",
                "host/src/status.rs: room 'status' uses 'lifecycle', which is not below it",
                "host/src/stray.rs: room 'stray' is not in the layer table of host/src: place it there and in docs/architecture.md",
            ]
        );
        assert_eq!(
            concern_violations(&files),
            ["host/src/loader/mod.rs: names minijinja, which only [\"templates\"] may name"]
        );
    }
}
