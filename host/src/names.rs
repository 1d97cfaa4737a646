//! The module name rule, shared by the loader, the management API and `cargo xtask new-module`
//! (which includes this file by path, so it depends on `std` only).
//!
//! A name is `^[a-z][a-z0-9_]{0,39}$`, has no `__` (the separator of `MODULES__{NAME}__{KEY}`),
//! and is not reserved (the hub's own path segments, `hub_`-style prefixes, Rust keywords and
//! the standard crates, because a name becomes a crate's `[lib] name`). A valid name is a single
//! path segment, so a path built from it cannot leave `MODULES_DIR`.

use std::fmt;

/// Names a module may not take.
pub const RESERVED: &[&str] = &[
    // The hub's own path segments and table prefixes.
    "modules",
    "openapi",
    // The hub's API under /api/v1/ and its pages.
    "me",
    "tokens",
    "audit",
    "users",
    "roles",
    "packages",
    "catalog",
    "fleet",
    "docs",
    "login",
    "logout",
    "auth",
    "admin",
    "static",
    "health",
    "graph",
    "hub",
    "module",
    "pg",
    // Crates every module links.
    "std",
    "core",
    "alloc",
    "test",
    "proc_macro",
    // Rust keywords, strict and reserved.
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
];

/// The longest name allowed.
pub const MAX_LEN: usize = 40;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    BadStart,
    BadChar(char),
    DoubleUnderscore,
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("it is empty"),
            NameError::TooLong => write!(f, "it is longer than {MAX_LEN} characters"),
            NameError::BadStart => f.write_str("it must start with a lowercase letter a-z"),
            NameError::BadChar(c) => write!(
                f,
                "it contains {c:?}; only lowercase letters a-z, digits and '_' are allowed"
            ),
            NameError::DoubleUnderscore => {
                f.write_str("it contains '__', which separates parts of MODULES__{NAME}__{KEY}")
            }
            NameError::Reserved => f.write_str("it is reserved"),
        }
    }
}

/// Check `name` against the rule.
pub fn validate(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let first = chars.next().ok_or(NameError::Empty)?;
    if !first.is_ascii_lowercase() {
        return Err(NameError::BadStart);
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        return Err(NameError::BadChar(c));
    }
    if name.len() > MAX_LEN {
        return Err(NameError::TooLong);
    }
    if name.contains("__") {
        return Err(NameError::DoubleUnderscore);
    }
    if RESERVED.contains(&name) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// The permission name rule (a module's `permissions` in `module.json`): `area.verb`, two or more
/// parts of lowercase letters, digits, `_` and `-`, each starting with a letter, at most 64
/// characters. `Err` says what is wrong.
pub fn validate_permission(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "permission {name:?} must be 1 to 64 characters long"
        ));
    }
    let part_ok = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_lowercase())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    if name.split('.').count() < 2 || !name.split('.').all(part_ok) {
        return Err(format!(
            "permission {name:?} must look like area.verb (lowercase letters, digits, _ and -, parts separated by dots, e.g. items.write)"
        ));
    }
    Ok(())
}

/// A folder under `MODULES_DIR` whose name starts with `_` or `.` is not a module (the template
/// lives in `_template`).
pub fn is_hidden_folder(folder: &str) -> bool {
    folder.starts_with('_') || folder.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_names_modules_use() {
        for name in [
            "hello",
            "invoice_ocr",
            "a",
            "m2",
            "a_b_c",
            &"x".repeat(MAX_LEN),
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_each_broken_rule_with_its_reason() {
        let cases = [
            ("", NameError::Empty),
            ("Upper", NameError::BadStart),
            ("1abc", NameError::BadStart),
            ("_x", NameError::BadStart),
            ("a-b", NameError::BadChar('-')),
            ("a/b", NameError::BadChar('/')),
            ("..", NameError::BadStart),
            ("a.b", NameError::BadChar('.')),
            ("%2e%2e", NameError::BadStart),
            ("aB", NameError::BadChar('B')),
            ("a__b", NameError::DoubleUnderscore),
            ("modules", NameError::Reserved),
            ("fn", NameError::Reserved),
            ("std", NameError::Reserved),
        ];
        for (name, reason) in cases {
            assert_eq!(validate(name), Err(reason), "{name:?}");
        }
        assert_eq!(validate(&"x".repeat(MAX_LEN + 1)), Err(NameError::TooLong));
    }
}
