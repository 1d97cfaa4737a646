//! `module.json`: the typed manifest of a module, its validation, and the hub's one rewrite of it
//! (`enabled`, written atomically with every other key and its order unchanged).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::names;

/// The file name of a manifest inside a module's folder.
pub const FILE_NAME: &str = "module.json";

/// The manifest of a BMC Hub module: `plugins/<name>/module.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "BMC Hub module manifest (module.json)")]
pub struct Manifest {
    /// The JSON Schema this file follows, for editors; the hub ignores it.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The module's name; must equal its folder's name. Lowercase letters, digits and `_`,
    /// starting with a letter, at most 40 characters, no `__`, not a reserved word (`modules`,
    /// `admin`, `hub`, `static`, Rust keywords, …).
    #[schemars(pattern(r"^[a-z][a-z0-9_]{0,39}$"))]
    pub name: String,
    /// The module's version; must equal the version its library reports (`CARGO_PKG_VERSION`
    /// of the module crate).
    #[schemars(length(min = 1))]
    pub version: String,
    /// One line on what the module does.
    #[serde(default)]
    pub description: String,
    /// Whether the hub should run the module. Only the operator changes it (API or by hand).
    #[serde(default)]
    pub enabled: bool,
    /// The library's file name in the module's folder; default `lib<name>.so` (`.dylib`, `.dll`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Other modules this one needs: name → semver range of their version (`"customers":
    /// "^1.2"`). They start first; the module fails while one is missing, disabled, failed or out
    /// of range.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Other modules' tables this one reads or writes: module → `"read"` or `"write"`
    /// (`"customers": "read"`). Each must be among `dependencies`. PostgreSQL refuses anything
    /// else of another module (403 `not_granted`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub uses: BTreeMap<String, UseMode>,
    /// The plugin-api versions the module accepts, a semver range (`"^0.4"`); checked before the
    /// library is opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_api: Option<String>,
    /// The module's settings; `MODULES__{NAME}__{KEY}` overrides a key.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Safety switches: `read_only` (the module must not write) and `dry_run` (writes are rolled
    /// back), booleans; an absent switch is on.
    #[serde(default)]
    pub safety: SafetyManifest,
    /// Prefix of every table the module's migrations create; default `<name>_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
    /// The module's own permissions: name (`area.verb`) → what it allows (`"items.write":
    /// "Create, change and delete items"`). Roles grant them as `<module>:<name>`; routes
    /// require them with `.require("items.write")`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: BTreeMap<String, String>,
    /// Who sees the module: callers with one of `roles` or `groups`, and/or `percent` of users
    /// (chosen by a stable hash of their id). Everyone else signed in gets 404 as if it were
    /// disabled; an anonymous caller gets 404 on its public routes and 401 (sign in first) on the
    /// others. Absent: everyone who may call its routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    /// Hosts the module may call with `ctx.http()`: `api.example.com` (its http and https
    /// ports), `api.example.com:8443`, `*.example.net` (any subdomain), `*` (any host; `*:8080`
    /// on that port). A host
    /// that resolves to a private, loopback or link-local address is refused unless an entry
    /// names it (or the address) without a wildcard. `MODULES__{NAME}__OUTBOUND` (a JSON array
    /// or a comma-separated list) replaces the list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<String>,
    /// Keys of `config` whose values are secrets (API keys, passwords), besides those whose
    /// names look secret (`password`, `token`, `…_key`…): never shown by the management API,
    /// the console or the audit log. The operator sets them in the environment
    /// (`MODULES__{NAME}__{KEY}`) or in a file (`MODULES__{NAME}__{KEY}_FILE`), not here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// One entry of a module's `outbound` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// As written.
    pub text: String,
    /// `*` or `*:port`: any host.
    pub any: bool,
    /// `*.example.net`: subdomains of `host`.
    pub subdomains: bool,
    /// Lowercase; an IP address as written (IPv6 without brackets).
    pub host: String,
    pub port: Option<u16>,
}

impl HostPattern {
    /// Parse an entry; `Err` says what is wrong with it.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let bad = |why: &str| {
            Err(format!(
                "outbound entry {text:?} {why}: write a host (api.example.com), a host and port (api.example.com:8443), *.example.net, * or *:8080"
            ))
        };
        if let Some(port) = text.strip_prefix('*').filter(|rest| !rest.starts_with('.')) {
            let port = match port.strip_prefix(':').map(str::parse::<u16>) {
                None if port.is_empty() => None,
                Some(Ok(port)) if port > 0 => Some(port),
                _ => return bad("has an invalid port"),
            };
            return Ok(HostPattern {
                text: text.to_owned(),
                any: true,
                subdomains: false,
                host: String::new(),
                port,
            });
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            match rest.split_once(']') {
                Some((ip, "")) => (ip, None),
                Some((ip, port)) => match port.strip_prefix(':').and_then(|p| p.parse().ok()) {
                    Some(port) => (ip, Some(port)),
                    None => return bad("has an invalid port"),
                },
                None => return bad("is an IPv6 address without its closing ]"),
            }
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => match port.parse::<u16>() {
                    Ok(port) if port > 0 => (host, Some(port)),
                    _ => return bad("has an invalid port"),
                },
                None => (text, None),
            }
        };
        let (subdomains, host) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        let is_name = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !(is_name || (is_ip && !subdomains)) {
            return bad("is not a host name or an IP address");
        }
        Ok(HostPattern {
            text: text.to_owned(),
            any: false,
            subdomains,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a URL's `host` (lowercase) and `port` (the scheme's default when it has none:
    /// `default_port`) match.
    pub fn matches(&self, host: &str, port: u16, default_port: bool) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => default_port,
        };
        if self.any {
            return port_ok;
        }
        let host_ok = if self.subdomains {
            host.strip_suffix(self.host.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
        } else {
            host == self.host
        };
        host_ok && port_ok
    }

    /// Whether this entry names one host (or address) exactly: what lets a private address in.
    pub fn is_explicit(&self) -> bool {
        !self.any && !self.subdomains
    }
}

/// The role-name rule, as the audience's schema states it.
const ROLE_NAME: &str = "^[a-z][a-z0-9_-]{0,39}$";
/// The group-name rule: 1 to 200 characters, no control characters.
const GROUP_NAME: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]{1,200}$";

fn names_matching(pattern: &str) -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .pattern(Some(pattern)),
        )
        .build()
}

fn role_names() -> utoipa::openapi::schema::Array {
    names_matching(ROLE_NAME)
}

fn group_names() -> utoipa::openapi::schema::Array {
    names_matching(GROUP_NAME)
}

/// Whether `name` is a role name, a group name.
fn is_role_name(name: &str) -> bool {
    name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_group_name(name: &str) -> bool {
    (1..=200).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

/// A module's audience (see [`Manifest::audience`]).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Hub roles whose holders see the module (role names: lowercase letters, digits, `-` and
    /// `_`, 1 to 40, starting with a letter).
    #[serde(default)]
    #[schemars(inner(regex(pattern = r"^[a-z][a-z0-9_-]{0,39}$")))]
    #[schema(schema_with = role_names)]
    pub roles: Vec<String>,
    /// Identity provider groups whose members see the module (1 to 200 characters, no control
    /// characters).
    #[serde(default)]
    #[schemars(inner(regex(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,200}$")))]
    #[schema(schema_with = group_names)]
    pub groups: Vec<String>,
    /// A share of all users, 0 to 100, chosen by a stable hash of the user's id (a user stays in
    /// or out as the share grows).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schemars(range(max = 100))]
    #[schema(minimum = 0, maximum = 100)]
    pub percent: Option<u8>,
}

/// How a module may use another module's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UseMode {
    /// SELECT.
    Read,
    /// SELECT, INSERT, UPDATE, DELETE (and the sequences behind them).
    Write,
}

/// The manifest's `safety` object. An absent switch is on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyManifest {
    /// The module must not write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Writes are rolled back; the module only learns what would have changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Why a manifest was refused. Every message names the file.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{path} is missing: every module folder needs one")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Syntax {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is invalid: {source}")]
    Shape {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: name {name:?} is invalid: {reason} (names match ^[a-z][a-z0-9_]{{0,39}}$)")]
    BadName {
        path: PathBuf,
        name: String,
        reason: names::NameError,
    },
    #[error("{path} says name {name:?} but its folder is {folder:?}: make them equal")]
    NameMismatch {
        path: PathBuf,
        name: String,
        folder: String,
    },
    #[error("{path}: \"library\" must be a file name in the module's folder, not {library:?}")]
    BadLibrary { path: PathBuf, library: String },
    #[error(
        "{path}: version {version:?} is not a semantic version ({reason}): use the module crate's version, e.g. \"0.1.0\""
    )]
    BadVersion {
        path: PathBuf,
        version: String,
        reason: String,
    },
    #[error("{path}: {what} {range:?} is not a semver range ({reason}): write e.g. \"^1.2\"")]
    BadRange {
        path: PathBuf,
        what: String,
        range: String,
        reason: String,
    },
    #[error("{path}: dependency {name:?} is not a module name: {reason}")]
    BadDependency {
        path: PathBuf,
        name: String,
        reason: names::NameError,
    },
    #[error("{path}: module {name:?} depends on itself: remove it from \"dependencies\"")]
    SelfDependency { path: PathBuf, name: String },
    #[error(
        "{path}: \"uses\" names {name:?}, which is not among \"dependencies\": add it there (a module uses only what it needs)"
    )]
    UsesWithoutDependency { path: PathBuf, name: String },
    #[error("{path}: {reason}")]
    BadAccess { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Manifest {
    /// Read and validate the manifest of module `name` in `folder`: the folder's own name must
    /// be a valid module name too, whatever its manifest says.
    pub fn load_named(folder: &Path, name: &str) -> Result<Manifest, ManifestError> {
        let manifest = Manifest::load(folder)?;
        match names::validate(name) {
            Ok(()) => Ok(manifest),
            Err(reason) => Err(ManifestError::BadName {
                path: PathBuf::from(name).join(FILE_NAME),
                name: name.to_owned(),
                reason,
            }),
        }
    }

    /// Read and validate `<folder>/module.json`; the folder's name must be the module's name.
    pub fn load(folder: &Path) -> Result<Manifest, ManifestError> {
        let path = folder.join(FILE_NAME);
        let text = fs::read_to_string(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ManifestError::Missing { path: path.clone() },
            _ => ManifestError::Read {
                path: path.clone(),
                source,
            },
        })?;
        let folder_name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Manifest::parse(&path, &folder_name, &text)
    }

    /// Parse and validate manifest `text` read from `path` in folder `folder_name`.
    pub fn parse(path: &Path, folder_name: &str, text: &str) -> Result<Manifest, ManifestError> {
        let value: Value = serde_json::from_str(text).map_err(|source| ManifestError::Syntax {
            path: path.to_owned(),
            source,
        })?;
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|source| ManifestError::Shape {
                path: path.to_owned(),
                source,
            })?;
        if let Err(reason) = names::validate(&manifest.name) {
            return Err(ManifestError::BadName {
                path: path.to_owned(),
                name: manifest.name,
                reason,
            });
        }
        if manifest.name != folder_name {
            return Err(ManifestError::NameMismatch {
                path: path.to_owned(),
                name: manifest.name,
                folder: folder_name.to_owned(),
            });
        }
        if let Err(e) = semver::Version::parse(&manifest.version) {
            return Err(ManifestError::BadVersion {
                path: path.to_owned(),
                version: manifest.version.clone(),
                reason: e.to_string(),
            });
        }
        let bad_range = |what: String, range: &str| {
            semver::VersionReq::parse(range)
                .err()
                .map(|e| ManifestError::BadRange {
                    path: path.to_owned(),
                    what,
                    range: range.to_owned(),
                    reason: e.to_string(),
                })
        };
        for (dependency, range) in &manifest.dependencies {
            if dependency == &manifest.name {
                return Err(ManifestError::SelfDependency {
                    path: path.to_owned(),
                    name: manifest.name.clone(),
                });
            }
            if let Err(reason) = names::validate(dependency) {
                return Err(ManifestError::BadDependency {
                    path: path.to_owned(),
                    name: dependency.clone(),
                    reason,
                });
            }
            if let Some(error) = bad_range(format!("dependency {dependency}"), range) {
                return Err(error);
            }
        }
        if let Some(name) = manifest
            .uses
            .keys()
            .find(|used| !manifest.dependencies.contains_key(*used))
        {
            return Err(ManifestError::UsesWithoutDependency {
                path: path.to_owned(),
                name: name.clone(),
            });
        }
        if let Some(error) = manifest
            .hub_api
            .as_deref()
            .and_then(|r| bad_range("hub_api".to_owned(), r))
        {
            return Err(error);
        }
        for (permission, description) in &manifest.permissions {
            let problem = match names::validate_permission(permission) {
                Err(reason) => Some(reason),
                Ok(()) if description.trim().is_empty() => Some(format!(
                    "permission {permission:?} needs a description of what it allows"
                )),
                Ok(()) => None,
            };
            if let Some(reason) = problem {
                return Err(ManifestError::BadAccess {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
        if let Some(audience) = &manifest.audience {
            let bad_role = audience.roles.iter().find(|r| !is_role_name(r));
            let bad_group = audience.groups.iter().find(|g| !is_group_name(g));
            let reason = match (bad_role, bad_group) {
                (Some(role), _) => Some(format!(
                    "audience role {role:?} is not a role name (lowercase letters, digits, - and _, 1 to 40, starting with a letter)"
                )),
                (None, Some(group)) => Some(format!(
                    "audience group {group:?} must be 1 to 200 characters without control characters"
                )),
                (None, None) => None,
            };
            if let Some(reason) = reason {
                return Err(ManifestError::BadAccess {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
        if let Some(percent) = manifest.audience.as_ref().and_then(|a| a.percent)
            && percent > 100
        {
            return Err(ManifestError::BadAccess {
                path: path.to_owned(),
                reason: format!("audience percent {percent} must be 0 to 100"),
            });
        }
        if let Some(reason) = manifest
            .outbound
            .iter()
            .find_map(|entry| HostPattern::parse(entry).err())
        {
            return Err(ManifestError::BadAccess {
                path: path.to_owned(),
                reason,
            });
        }
        if let Some(library) = &manifest.library {
            let plain = Path::new(library).file_name().map(|n| n.to_string_lossy())
                == Some(library.as_str().into());
            if !plain || library.starts_with('.') || library.contains('\\') {
                return Err(ManifestError::BadLibrary {
                    path: path.to_owned(),
                    library: library.clone(),
                });
            }
        }
        Ok(manifest)
    }

    /// The prefix of the module's tables: `table_prefix`, else `<name>_`.
    pub fn table_prefix(&self) -> String {
        self.table_prefix
            .clone()
            .unwrap_or_else(|| format!("{}_", self.name))
    }

    /// The library's file name: `library`, else the platform's name for a `cdylib` called `name`.
    pub fn library_file(&self) -> String {
        self.library.clone().unwrap_or_else(|| {
            format!(
                "{}{}{}",
                std::env::consts::DLL_PREFIX,
                self.name,
                std::env::consts::DLL_SUFFIX
            )
        })
    }
}

/// Names of the folders of `dir` that hold a `module.json` and are not hidden (`_x`, `.x`).
pub fn module_folders(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !names::is_hidden_folder(&name) && is_module_folder(&entry.path()) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Whether `folder` holds a `module.json`.
pub fn is_module_folder(folder: &Path) -> bool {
    folder.join(FILE_NAME).is_file()
}

/// Set `"enabled"` in the manifest at `path` to `enabled`, changing nothing else of the file's
/// text: only the value's few characters (or one inserted key). Written to a temporary file in the
/// same folder, flushed, renamed over the original and the folder flushed: a reader sees the old
/// file or the new one, never half of one, and a crash keeps one of them. Returns whether the file
/// changed.
pub fn write_enabled(path: &Path, enabled: bool) -> Result<bool, ManifestError> {
    let text = fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let before: Value = serde_json::from_str(&text).map_err(|source| ManifestError::Syntax {
        path: path.to_owned(),
        source,
    })?;
    let shape = |message: &str| ManifestError::Shape {
        path: path.to_owned(),
        source: serde::de::Error::custom(message),
    };
    let Some(object) = before.as_object() else {
        return Err(shape("the top level must be a JSON object"));
    };
    if object.get("enabled") == Some(&Value::Bool(enabled)) {
        return Ok(false);
    }
    let out = with_enabled(&text, enabled)
        .ok_or_else(|| shape("cannot find where \"enabled\" goes in the top-level object"))?;
    // The edit changed `enabled` and nothing else, or it is not written.
    let mut expected = before.clone();
    if let Some(object) = expected.as_object_mut() {
        object.insert("enabled".to_owned(), Value::Bool(enabled));
    }
    if serde_json::from_str::<Value>(&out).ok().as_ref() != Some(&expected) {
        return Err(shape("rewriting \"enabled\" would change more than it"));
    }
    write_atomically(path, &out)?;
    Ok(true)
}

/// Set the top-level `key` of the manifest at `path` to `value` (`None` removes it), keeping the
/// other keys and their order; the file is written again as pretty JSON, atomically (see
/// [`write_enabled`]), and only if the result is a valid manifest for `folder_name`. Returns
/// whether the file changed.
pub fn write_key(path: &Path, key: &str, value: Option<Value>) -> Result<bool, ManifestError> {
    let text = fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut object: Value =
        serde_json::from_str(&text).map_err(|source| ManifestError::Syntax {
            path: path.to_owned(),
            source,
        })?;
    let Some(map) = object.as_object_mut() else {
        return Err(ManifestError::Shape {
            path: path.to_owned(),
            source: serde::de::Error::custom("the top level must be a JSON object"),
        });
    };
    let before = map.get(key).cloned();
    if before == value {
        return Ok(false);
    }
    match value {
        Some(value) => drop(map.insert(key.to_owned(), value)),
        None => drop(map.shift_remove(key)),
    }
    let mut out = serde_json::to_string_pretty(&object).map_err(|source| ManifestError::Shape {
        path: path.to_owned(),
        source,
    })?;
    out.push('\n');
    let folder_name = path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Manifest::parse(path, &folder_name, &out)?;
    write_atomically(path, &out)?;
    Ok(true)
}

/// Make the manifest at `path` hold `value` (a fleet's desired `module.json`), written as pretty
/// JSON, atomically, if what the file holds now differs, and only if `value` is a valid manifest
/// for the folder. Returns whether the file changed.
pub fn write_value(path: &Path, value: &Value) -> Result<bool, ManifestError> {
    let now: Option<Value> = fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    if now.as_ref() == Some(value) {
        return Ok(false);
    }
    let mut out = serde_json::to_string_pretty(value).map_err(|source| ManifestError::Shape {
        path: path.to_owned(),
        source,
    })?;
    out.push('\n');
    let folder_name = path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Manifest::parse(path, &folder_name, &out)?;
    write_atomically(path, &out)?;
    Ok(true)
}

/// Write `out` to `path`: a temporary file in the same folder, flushed, renamed over the original,
/// the folder flushed.
fn write_atomically(path: &Path, out: &str) -> Result<(), ManifestError> {
    let write_err = |source| ManifestError::Write {
        path: path.to_owned(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".module.json.")
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(write_err)?;
    temp.write_all(out.as_bytes()).map_err(write_err)?;
    temp.as_file().sync_all().map_err(write_err)?;
    if let Ok(meta) = fs::metadata(path) {
        fs::set_permissions(temp.path(), meta.permissions()).map_err(write_err)?;
    }
    temp.persist(path).map_err(|e| write_err(e.error))?;
    // The rename itself is durable once the folder is.
    fs::File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(write_err)?;
    Ok(())
}

/// `text` (a JSON object) with its top-level `"enabled"` value replaced by `enabled`, or the key
/// added first when there is none; every other character as it was. `None` when `text` is not
/// an object this can read.
fn with_enabled(text: &str, enabled: bool) -> Option<String> {
    let value = if enabled { "true" } else { "false" };
    let bytes = text.as_bytes();
    let open = text.find('{')?;
    let mut i = open + 1;
    loop {
        i = skip_space(bytes, i);
        match bytes.get(i)? {
            b'}' => break,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(bytes, i)?;
        let key = &text[i + 1..key_end - 1];
        i = skip_space(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_space(bytes, i + 1);
        let end = skip_value(bytes, start)?;
        if key == "enabled" {
            return Some(format!("{}{value}{}", &text[..start], &text[end..]));
        }
        i = end;
    }
    // No `enabled` yet: first in the object, in the file's own indentation.
    let after = &text[open + 1..];
    let indent: String = after
        .strip_prefix('\n')
        .map(|rest| {
            rest.chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect()
        })
        .unwrap_or_default();
    let insert = if after.starts_with('\n') {
        format!("\n{indent}\"enabled\": {value},")
    } else {
        format!("\"enabled\": {value}, ")
    };
    Some(format!("{}{insert}{}", &text[..=open], after))
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index after the string starting at `i` (a `"`).
fn skip_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The index after the JSON value starting at `i`.
fn skip_value(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'"' => skip_string(bytes, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match bytes.get(j)? {
                    b'"' => {
                        j = skip_string(bytes, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while bytes
                .get(j)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The JSON Schema of `module.json`, as committed in `docs/module.schema.json`.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(Manifest);
    schema.insert(
        "$comment".to_owned(),
        "Generated from host/src/manifest.rs (Manifest); do not edit. A test fails when it is stale.".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The `module.json` reference of `docs/MODULE_SYSTEM.md`, made from the JSON Schema: one row
/// per key with its type, default and description.
pub fn reference_table() -> String {
    let schema: Value = serde_json::from_str(&json_schema()).unwrap_or_default();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = String::from("| key | type | default | what it is |\n|---|---|---|---|\n");
    let rows = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, property) in rows {
        let kind = match (&property["type"], &property["$ref"]) {
            (Value::String(t), _) => t.clone(),
            (Value::Array(types), _) => types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect::<Vec<_>>()
                .join(" or "),
            (_, Value::String(_)) => "object".to_owned(),
            _ => "object".to_owned(),
        };
        let default = if required.contains(&key.as_str()) {
            "required".to_owned()
        } else if let Some(default) = property.get("default") {
            format!("`{default}`")
        } else {
            "none".to_owned()
        };
        let description = property["description"]
            .as_str()
            .unwrap_or("")
            .replace('\n', " ");
        out.push_str(&format!(
            "| `{key}` | {kind} | {default} | {description} |\n"
        ));
    }
    out
}

/// An optional integer as JSON Schema has it: `7` or `7.0` (a number whose fraction is zero is
/// an integer there, and the OpenAPI document promises no more).
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error as _;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let value = if let Some(n) = number.as_i64() {
        T::try_from(n).ok()
    } else if let Some(n) = number.as_u64() {
        T::try_from(n).ok()
    } else {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .and_then(|f| T::try_from(f as i64).ok())
    };
    value
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number in range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_holds_the_current_manifest_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/MODULE_SYSTEM.md");
        let (start, end) = (
            "<!-- module.json reference: generated from the schema by a test -->\n",
            "<!-- end of the reference -->",
        );
        let guide = fs::read_to_string(path).unwrap_or_default();
        let (Some(a), Some(b)) = (guide.find(start), guide.find(end)) else {
            panic!("docs/MODULE_SYSTEM.md lacks the reference markers");
        };
        let current = &guide[a + start.len()..b];
        let table = reference_table();
        if std::env::var_os("UPDATE_EXPECT").is_some() && current != table {
            let updated = format!("{}{table}{}", &guide[..a + start.len()], &guide[b..]);
            fs::write(path, updated).expect("write docs/MODULE_SYSTEM.md");
            return;
        }
        assert!(
            current == table,
            "the module.json reference in docs/MODULE_SYSTEM.md is stale: run `UPDATE_EXPECT=1 cargo test -p host reference` and commit it"
        );
    }

    #[test]
    fn the_committed_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/module.schema.json");
        let generated = json_schema();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            fs::write(path, &generated).expect("write docs/module.schema.json");
        }
        let committed = fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/module.schema.json is stale: run `UPDATE_EXPECT=1 cargo test -p host schema` and commit it"
        );
    }

    #[test]
    fn the_example_manifests_follow_the_schema_and_bad_ones_do_not() {
        let schema: Value = serde_json::from_str(&json_schema()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins");
        for folder in ["hello", "_template"] {
            let text = fs::read_to_string(format!("{root}/{folder}/module.json")).unwrap();
            let manifest: Value = serde_json::from_str(&text).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&manifest)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{folder}/module.json: {errors:?}");
        }
        for bad in [
            serde_json::json!({"name": "x", "version": "1", "colour": "red"}),
            serde_json::json!({"name": "Upper", "version": "1"}),
            serde_json::json!({"version": "1"}),
            serde_json::json!({"name": "x", "version": "1", "safety": {"read_only": "yes"}}),
        ] {
            assert!(!validator.is_valid(&bad), "{bad}");
        }
    }

    fn parse(folder: &str, text: &str) -> Result<Manifest, String> {
        Manifest::parse(Path::new("plugins/x/module.json"), folder, text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fill_what_the_manifest_leaves_out() {
        let m = parse("hello", r#"{"name": "hello", "version": "1.2.3"}"#).unwrap();
        assert_eq!(m.description, "");
        assert!(!m.enabled);
        assert!(m.dependencies.is_empty() && m.config.is_empty());
        assert_eq!(m.safety, SafetyManifest::default());
        assert_eq!(
            m.library_file(),
            format!(
                "{}hello{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )
        );
    }

    #[test]
    fn each_bad_manifest_gets_a_message_naming_the_file() {
        assert_eq!(
            parse("x", "{not json").unwrap_err(),
            "plugins/x/module.json is not valid JSON: key must be a string at line 1 column 2"
        );
        assert_eq!(
            parse("x", r#"{"name": "x", "version": "1.0.0", "colour": "red"}"#).unwrap_err(),
            "plugins/x/module.json is invalid: unknown field `colour`, expected one of `$schema`, `name`, `version`, `description`, `enabled`, `library`, `dependencies`, `uses`, `hub_api`, `config`, `safety`, `table_prefix`, `permissions`, `audience`, `outbound`, `secrets`"
        );
        assert_eq!(
            parse("x", r#"{"version": "1.0.0"}"#).unwrap_err(),
            "plugins/x/module.json is invalid: missing field `name`"
        );
        assert_eq!(
            parse("x", r#"{"name": "X", "version": "1.0.0"}"#).unwrap_err(),
            "plugins/x/module.json: name \"X\" is invalid: it must start with a lowercase letter a-z (names match ^[a-z][a-z0-9_]{0,39}$)"
        );
        assert_eq!(
            parse("y", r#"{"name": "x", "version": "1.0.0"}"#).unwrap_err(),
            "plugins/x/module.json says name \"x\" but its folder is \"y\": make them equal"
        );
        assert_eq!(
            parse(
                "x",
                r#"{"name": "x", "version": "1.0.0", "library": "../evil.so"}"#
            )
            .unwrap_err(),
            "plugins/x/module.json: \"library\" must be a file name in the module's folder, not \"../evil.so\""
        );
        assert_eq!(
            parse("x", r#"{"name": "x", "version": "one"}"#).unwrap_err(),
            "plugins/x/module.json: version \"one\" is not a semantic version (unexpected character 'o' while parsing major version number): use the module crate's version, e.g. \"0.1.0\""
        );
        assert_eq!(
            parse(
                "x",
                r#"{"name": "x", "version": "1.0.0", "dependencies": {"x": "^1"}}"#
            )
            .unwrap_err(),
            "plugins/x/module.json: module \"x\" depends on itself: remove it from \"dependencies\""
        );
        assert_eq!(
            parse(
                "x",
                r#"{"name": "x", "version": "1.0.0", "uses": {"crm": "read"}}"#
            )
            .unwrap_err(),
            "plugins/x/module.json: \"uses\" names \"crm\", which is not among \"dependencies\": add it there (a module uses only what it needs)"
        );
        assert!(
            parse(
                "x",
                r#"{"name": "x", "version": "1.0.0", "dependencies": {"crm": "^1"}, "uses": {"crm": "delete"}}"#
            )
            .is_err(),
            "read or write only"
        );
        assert_eq!(
            parse(
                "x",
                r#"{"name": "x", "version": "1.0.0", "dependencies": {"crm": "one or two"}}"#
            )
            .unwrap_err(),
            "plugins/x/module.json: dependency crm \"one or two\" is not a semver range (unexpected character 'o' while parsing major version number): write e.g. \"^1.2\""
        );
        assert_eq!(
            parse(
                "x",
                r#"{"name": "x", "version": "1.0.0", "dependencies": {"Crm": "^1"}}"#
            )
            .unwrap_err(),
            "plugins/x/module.json: dependency \"Crm\" is not a module name: it must start with a lowercase letter a-z"
        );
        assert_eq!(
            parse(
                "x",
                r#"{"name": "x", "version": "1.0.0", "hub_api": "latest"}"#
            )
            .unwrap_err(),
            "plugins/x/module.json: hub_api \"latest\" is not a semver range (unexpected character 'l' while parsing major version number): write e.g. \"^1.2\""
        );
    }

    #[test]
    fn writing_enabled_keeps_other_keys_and_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(
            &path,
            r#"{"version": "1.0.0", "name": "x", "enabled": false, "config": {"b": 1, "a": 2}}"#,
        )
        .unwrap();
        assert!(write_enabled(&path, true).unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            r#"{"version": "1.0.0", "name": "x", "enabled": true, "config": {"b": 1, "a": 2}}"#,
            "only the value's text changes (issue 12)"
        );
        assert!(
            !write_enabled(&path, true).unwrap(),
            "unchanged value is not rewritten"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn writing_enabled_changes_no_other_character() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let text = "{\n    \"name\": \"x\",\n    \"version\": \"1.0.0\",\n    \"config\": {\"ratio\": 1.10, \"big\": 123456789012345678901234567890, \"s\": \"a,}\\\"b\", \"enabled\": 7},\n    \"enabled\" :   false\n}\n";
        fs::write(&path, text).unwrap();
        assert!(write_enabled(&path, true).unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            text.replace(":   false", ":   true"),
            "numbers keep their text (1.10, big integers), nested keys stay"
        );
        let without = "{\n  \"name\": \"x\",\n  \"version\": \"1.0.0\"\n}\n";
        fs::write(&path, without).unwrap();
        assert!(write_enabled(&path, true).unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\n  \"enabled\": true,\n  \"name\": \"x\",\n  \"version\": \"1.0.0\"\n}\n"
        );
        fs::write(&path, r#"{"name": "x", "version": "1.0.0"}"#).unwrap();
        assert!(write_enabled(&path, false).unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            r#"{"enabled": false, "name": "x", "version": "1.0.0"}"#
        );
    }
}
