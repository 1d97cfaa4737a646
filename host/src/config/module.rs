//! A module's settings: the `MODULES__{NAME}__{KEY}` variables, and what a module runs with —
//! its effective safety switches (manifest, default on, overridden by `MODULES__{NAME}__READ_ONLY`
//! and `__DRY_RUN`) and its `config` (the manifest's, keys overridden by the environment).

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use super::parse_bool;
use crate::manifest::Manifest;

/// A module setting that cannot be used; names the variable and says what it expects.
#[derive(Debug, Clone, Error)]
pub enum SettingsError {
    #[error("{var}={value:?} is not a boolean: use true or false")]
    NotABoolean { var: String, value: String },
    /// An `outbound` entry of the environment's list (the manifest's are checked on load).
    #[error("{var}: {reason}")]
    BadOutbound { var: String, reason: String },
    /// The file a `…_FILE` variable names cannot be read (its contents are never shown).
    #[error("{var}={path:?} cannot be read ({reason}): give the hub's user a readable file")]
    SecretFile {
        var: String,
        path: String,
        reason: String,
    },
}

/// Where an effective safety switch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    Manifest,
    Environment,
}

/// The effective safety switches of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Safety {
    pub read_only: bool,
    pub dry_run: bool,
    pub source: SafetySources,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SafetySources {
    pub read_only: Source,
    pub dry_run: Source,
}

/// The `MODULES__{NAME}__{KEY}` variables, kept for lookup per module.
#[derive(Debug, Clone, Default)]
pub struct ModuleEnv {
    /// (lowercased module name, key as written, raw value)
    entries: Vec<(String, String, String)>,
}

impl ModuleEnv {
    pub(crate) fn from_vars(vars: &[(String, String)]) -> ModuleEnv {
        let entries = vars
            .iter()
            .filter_map(|(var, value)| {
                let rest = strip_prefix_ignore_case(var, "MODULES__")?;
                let (name, key) = rest.split_once("__")?;
                (!name.is_empty() && !key.is_empty())
                    .then(|| (name.to_ascii_lowercase(), key.to_owned(), value.clone()))
            })
            .collect();
        ModuleEnv { entries }
    }

    /// The variables set for module `name`, as (key as written, raw value); `name` matched
    /// case-insensitively.
    pub fn for_module<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The effective safety switches: manifest (default on), overridden by
/// `MODULES__{NAME}__READ_ONLY` / `__DRY_RUN`.
pub fn resolve_safety(manifest: &Manifest, env: &ModuleEnv) -> Result<Safety, SettingsError> {
    let from_manifest = |value: Option<bool>| match value {
        Some(v) => (v, Source::Manifest),
        None => (true, Source::Default),
    };
    let (mut read_only, mut read_only_source) = from_manifest(manifest.safety.read_only);
    let (mut dry_run, mut dry_run_source) = from_manifest(manifest.safety.dry_run);
    for (key, raw) in env.for_module(&manifest.name) {
        let target = if key.eq_ignore_ascii_case("READ_ONLY") {
            (&mut read_only, &mut read_only_source)
        } else if key.eq_ignore_ascii_case("DRY_RUN") {
            (&mut dry_run, &mut dry_run_source)
        } else {
            continue;
        };
        *target.0 = parse_bool(raw).ok_or_else(|| SettingsError::NotABoolean {
            var: format!(
                "MODULES__{}__{}",
                manifest.name.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            ),
            value: raw.to_owned(),
        })?;
        *target.1 = Source::Environment;
    }
    Ok(Safety {
        read_only,
        dry_run,
        source: SafetySources {
            read_only: read_only_source,
            dry_run: dry_run_source,
        },
    })
}

/// The hosts the module may call: `MODULES__{NAME}__OUTBOUND` (a JSON array of strings, or a
/// comma-separated list) when set, else the manifest's `outbound`; each entry parsed.
pub fn resolve_outbound(
    manifest: &Manifest,
    env: &ModuleEnv,
) -> Result<Vec<crate::manifest::HostPattern>, SettingsError> {
    let var = format!("MODULES__{}__OUTBOUND", manifest.name.to_ascii_uppercase());
    let from_env = env
        .for_module(&manifest.name)
        .find(|(key, _)| key.eq_ignore_ascii_case("OUTBOUND"))
        .map(|(_, raw)| match serde_json::from_str::<Vec<String>>(raw) {
            Ok(list) => list,
            Err(_) => raw
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect(),
        });
    let entries = from_env.unwrap_or_else(|| manifest.outbound.clone());
    entries
        .iter()
        .map(|entry| {
            crate::manifest::HostPattern::parse(entry).map_err(|reason| {
                SettingsError::BadOutbound {
                    var: var.clone(),
                    reason,
                }
            })
        })
        .collect()
}

/// Keys of the environment that are the hub's, not settings: the safety switches, the outbound
/// list, the list of secret keys.
const RESERVED_KEYS: [&str; 4] = ["READ_ONLY", "DRY_RUN", "OUTBOUND", "SECRETS"];

/// The manifest's `config`, with `MODULES__{NAME}__{KEY}` overriding keys (matched
/// case-insensitively; a new key is lowercased) and `MODULES__{NAME}__{KEY}_FILE` setting a key
/// to the contents of a file (without its last line break: a secret kept out of the
/// environment). Values parse as JSON, else stay strings. `Err` names the variable of a file
/// that cannot be read.
pub fn resolve_config(
    manifest: &Manifest,
    env: &ModuleEnv,
) -> Result<Map<String, Value>, SettingsError> {
    resolve(manifest, env, true)
}

/// [`resolve_config`]; `read_files: false` puts `null` for a key read from a file (for showing
/// the settings, where a secret is masked anyway).
fn resolve(
    manifest: &Manifest,
    env: &ModuleEnv,
    read_files: bool,
) -> Result<Map<String, Value>, SettingsError> {
    let mut config = manifest.config.clone();
    for (key, raw) in env.for_module(&manifest.name) {
        if RESERVED_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k)) {
            continue;
        }
        let (key, value) = match file_key(key) {
            Some(key) if read_files => {
                let text = std::fs::read_to_string(raw).map_err(|e| SettingsError::SecretFile {
                    var: variable(manifest, &format!("{key}_FILE")),
                    path: raw.to_owned(),
                    reason: e.to_string(),
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                (key, Value::String(text.to_owned()))
            }
            Some(key) => (key, Value::Null),
            None => (
                key,
                serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
            ),
        };
        let existing = config.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned();
        config.insert(existing.unwrap_or_else(|| key.to_ascii_lowercase()), value);
    }
    Ok(config)
}

/// `API_KEY_FILE` → `API_KEY`: a key whose value is read from a file.
fn file_key(key: &str) -> Option<&str> {
    let cut = key.len().checked_sub("_FILE".len())?;
    (cut > 0 && key.is_char_boundary(cut) && key[cut..].eq_ignore_ascii_case("_FILE"))
        .then(|| &key[..cut])
}

fn variable(manifest: &Manifest, key: &str) -> String {
    format!(
        "MODULES__{}__{}",
        manifest.name.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// Whether setting `key` of `manifest`'s module is a secret: its name looks like one, the
/// manifest's `secrets` or the operator's `MODULES__{NAME}__SECRETS` (comma-separated) name it,
/// or its value comes from a file.
pub fn is_secret(manifest: &Manifest, env: &ModuleEnv, key: &str) -> bool {
    looks_secret(key)
        || manifest.secrets.iter().any(|s| s.eq_ignore_ascii_case(key))
        || env.for_module(&manifest.name).any(|(k, raw)| {
            (k.eq_ignore_ascii_case("SECRETS")
                && raw.split(',').any(|s| s.trim().eq_ignore_ascii_case(key)))
                || file_key(k).is_some_and(|k| k.eq_ignore_ascii_case(key))
        })
}

/// One effective setting of a module, as the management API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Setting {
    pub key: String,
    /// The value; `"********"` for a secret.
    pub value: Value,
    /// A secret: its name looks like one (`password`, `secret`, `token`, `…_key`…), the
    /// manifest's `secrets` or `MODULES__{NAME}__SECRETS` name it, or it is read from a file
    /// (`MODULES__{NAME}__{KEY}_FILE`). Its value is never shown.
    pub secret: bool,
    /// `manifest` (module.json's `config`) or `environment` (`MODULES__{NAME}__{KEY}` or
    /// `…_FILE`, which win).
    pub source: Source,
}

/// What a secret's value is shown as.
pub const MASK: &str = "********";

/// Whether a setting's name looks like a secret's.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "credential",
        "private",
        "apikey",
        "api_key",
    ]
    .iter()
    .any(|word| key.contains(word))
        || key == "key"
        || key.ends_with("_key")
}

/// The effective settings of `manifest`'s module, sorted by key, secrets masked.
pub fn settings(manifest: &Manifest, env: &ModuleEnv) -> Vec<Setting> {
    let config = resolve(manifest, env, false).unwrap_or_default();
    let mut settings: Vec<Setting> = config
        .into_iter()
        .map(|(key, value)| {
            let secret = is_secret(manifest, env, &key);
            let from_file = env
                .for_module(&manifest.name)
                .any(|(k, _)| file_key(k).is_some_and(|k| k.eq_ignore_ascii_case(&key)));
            let source = match environment_variable(manifest, env, &key) {
                _ if from_file => Source::Environment,
                Some(_) => Source::Environment,
                None => Source::Manifest,
            };
            Setting {
                value: if secret {
                    Value::String(MASK.to_owned())
                } else {
                    value
                },
                key,
                secret,
                source,
            }
        })
        .collect();
    settings.sort_by(|a, b| a.key.cmp(&b.key));
    settings
}

/// The `MODULES__{NAME}__{KEY}` variable that sets `key` of `manifest`'s module, if one does
/// (matched case-insensitively; `READ_ONLY` and `DRY_RUN` are keys too).
pub fn environment_variable(manifest: &Manifest, env: &ModuleEnv, key: &str) -> Option<String> {
    env.for_module(&manifest.name)
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(k, _)| {
            format!(
                "MODULES__{}__{}",
                manifest.name.to_ascii_uppercase(),
                k.to_ascii_uppercase()
            )
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> ModuleEnv {
        Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap()
            .module_env
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(Path::new("m/module.json"), "m", text).unwrap()
    }

    #[test]
    fn safety_defaults_on_and_the_environment_overrides_the_manifest() {
        let m = manifest(r#"{"name": "m", "version": "1.0.0", "safety": {"dry_run": false}}"#);
        let s = resolve_safety(&m, &env(&[])).unwrap();
        assert_eq!((s.read_only, s.dry_run), (true, false));
        assert_eq!(
            (s.source.read_only, s.source.dry_run),
            (Source::Default, Source::Manifest)
        );
        let s = resolve_safety(&m, &env(&[("MODULES__M__READ_ONLY", "false")])).unwrap();
        assert_eq!(
            (s.read_only, s.source.read_only),
            (false, Source::Environment)
        );
        assert_eq!(
            resolve_safety(&m, &env(&[("MODULES__M__DRY_RUN", "perhaps")]))
                .unwrap_err()
                .to_string(),
            "MODULES__M__DRY_RUN=\"perhaps\" is not a boolean: use true or false"
        );
    }

    #[test]
    fn settings_show_their_source_and_mask_secrets() {
        let m = manifest(
            r#"{"name": "m", "version": "1.0.0", "config": {"greeting": "Hi", "api_key": "k1", "db_password": "p"}}"#,
        );
        let s = settings(&m, &env(&[("MODULES__M__GREETING", "Hej")]));
        let shown: Vec<(String, Value, bool, Source)> = s
            .into_iter()
            .map(|s| (s.key, s.value, s.secret, s.source))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("api_key".into(), Value::from(MASK), true, Source::Manifest),
                (
                    "db_password".into(),
                    Value::from(MASK),
                    true,
                    Source::Manifest
                ),
                (
                    "greeting".into(),
                    Value::from("Hej"),
                    false,
                    Source::Environment
                ),
            ]
        );
        assert!(
            !looks_secret("keyboard_layout") && looks_secret("KEY") && looks_secret("AccessToken")
        );
        assert_eq!(
            environment_variable(&m, &env(&[("MODULES__M__read_only", "true")]), "READ_ONLY"),
            Some("MODULES__M__READ_ONLY".to_owned())
        );
    }

    #[test]
    fn config_overrides_match_keys_and_parse_json() {
        let m =
            manifest(r#"{"name": "m", "version": "1.0.0", "config": {"Greeting": "Hi", "n": 1}}"#);
        let c = resolve_config(
            &m,
            &env(&[
                ("MODULES__M__GREETING", "Hej"),
                ("MODULES__M__N", "2"),
                ("MODULES__M__NEW_KEY", "[1,2]"),
                ("MODULES__M__READ_ONLY", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(c),
            serde_json::json!({"Greeting": "Hej", "n": 2, "new_key": [1, 2]})
        );
    }

    #[test]
    fn module_variables_match_names_case_insensitively() -> Result<(), crate::config::ConfigError> {
        let config = Config::from_vars(vars(&[
            ("MODULES__HELLO__GREETING", "Hej"),
            ("modules__hello__Extra", "1"),
            ("MODULES__OTHER__GREETING", "Hi"),
            ("MODULES_DIR", "mods"),
            ("MODULES____X", "ignored"),
        ]))?;
        let hello: Vec<_> = config.module_env.for_module("hello").collect();
        assert_eq!(hello, vec![("GREETING", "Hej"), ("Extra", "1")]);
        assert_eq!(config.modules_dir, std::path::PathBuf::from("mods"));
        Ok(())
    }

    #[test]
    fn file_variables_name_their_key_and_secrets_are_marked_three_ways() {
        assert_eq!(file_key("API_KEY_FILE"), Some("API_KEY"));
        assert_eq!(file_key("licence_file"), Some("licence"));
        assert_eq!(file_key("_FILE"), None);
        assert_eq!(file_key("PROFILE"), None);
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "name": "m", "version": "0.1.0", "secrets": ["pin"]
        }))
        .unwrap();
        m.config.insert("region".into(), "eu".into());
        let e = env(&[
            ("MODULES__M__SECRETS", "signature, other"),
            ("MODULES__M__LICENCE_FILE", "/x"),
        ]);
        for key in ["pin", "PIN", "signature", "licence", "api_token"] {
            assert!(is_secret(&m, &e, key), "{key}");
        }
        assert!(!is_secret(&m, &e, "region"));
        assert_eq!(
            resolve_config(&m, &e).unwrap_err().to_string(),
            "MODULES__M__LICENCE_FILE=\"/x\" cannot be read (No such file or directory (os error 2)): give the hub's user a readable file"
        );
    }
}
