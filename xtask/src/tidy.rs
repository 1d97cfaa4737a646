//! Tidy checks over the source tree, run as tests: every `.rs` file says what it is for, and
//! `unsafe` / `extern "C"` stay in the two files that own the boundary.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::build::root;

    /// The files allowed to hold `unsafe` and `extern "C"`.
    const BOUNDARY_FILES: &[&str] = &["plugin-api/src/ffi.rs", "host/src/loader.rs"];

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

    fn sources() -> Vec<(String, String)> {
        let root = root();
        let mut files = Vec::new();
        for dir in ["host", "plugin-api", "plugins", "xtask"] {
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

    #[test]
    fn every_rust_file_starts_with_a_module_comment() {
        let missing: Vec<String> = sources()
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
        let needles = [
            concat!("uns", "afe {"),
            concat!("uns", "afe fn"),
            concat!("uns", "afe impl"),
            concat!("uns", "afe extern"),
            concat!("uns", "afe("),
            concat!("extern ", "\"C\" fn"),
        ];
        let offenders: Vec<String> = sources()
            .into_iter()
            .filter(|(path, _)| !BOUNDARY_FILES.contains(&path.as_str()))
            .filter(|(_, text)| {
                text.lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .any(|l| needles.iter().any(|n| l.contains(n)))
            })
            .map(|(path, _)| path)
            .collect();
        assert!(
            offenders.is_empty(),
            "move these boundary items into {BOUNDARY_FILES:?}: {offenders:?}"
        );
    }
}
