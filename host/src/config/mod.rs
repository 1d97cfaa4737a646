//! The hub's one `Config`, read from the environment (and `./.env`), passed explicitly.
//!
//! [`SETTINGS`] lists every variable with its default and one line of help; `.env.example` is
//! rendered from it (a test keeps the file current). `MODULES__{NAME}__{KEY}` variables are kept
//! aside and looked up per module (see [`module::ModuleEnv`], which also resolves a module's
//! effective settings).

pub mod module;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use self::module::ModuleEnv;

/// One environment variable the hub reads.
#[derive(Debug)]
pub struct Setting {
    pub var: &'static str,
    /// The value used when the variable is unset or empty ("" = none).
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting, in the order `.env.example` lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        var: "DATABASE_URL",
        default: "",
        help: "PostgreSQL, e.g. postgres://hub@127.0.0.1:5432/hub; the user owns the database and has CREATEROLE (it makes a role per module); unset: modules with migrations fail with \"set DATABASE_URL\".",
    },
    Setting {
        var: "HUB_BIND",
        default: "127.0.0.1:8000",
        help: "Address the hub listens on (port 0 picks a free port).",
    },
    Setting {
        var: "HUB_ADMIN_TOKEN",
        default: "",
        help: "The bootstrap administrator's bearer token (every permission; also signs in at /login); unset: a random token is generated and logged once at start. Keep it secret; rotate it by changing it and restarting.",
    },
    Setting {
        var: "HUB_METRICS_BIND",
        default: "",
        help: "Address of the Prometheus listener (GET /metrics), e.g. 10.0.0.5:9100 on an internal network (port 0 picks a free port); unset: no listener (requests are still counted for usage analytics, HUB_USAGE).",
    },
    Setting {
        var: "HUB_PUBLIC_URL",
        default: "",
        help: "The hub's address as browsers reach it, e.g. https://hub.example.com (the sign-in redirect, and Secure cookies when https); unset: http://HUB_BIND.",
    },
    Setting {
        var: "HUB_OIDC_ISSUER",
        default: "",
        help: "OpenID Connect issuer URL of the company's identity provider; unset: no single sign-on (tokens and the /login form still work).",
    },
    Setting {
        var: "HUB_OIDC_CLIENT_ID",
        default: "",
        help: "The hub's client id at the identity provider (its redirect URI is HUB_PUBLIC_URL/auth/callback).",
    },
    Setting {
        var: "HUB_OIDC_CLIENT_SECRET",
        default: "",
        help: "The hub's client secret at the identity provider.",
    },
    Setting {
        var: "HUB_OIDC_GROUPS_CLAIM",
        default: "groups",
        help: "The ID token claim that lists the user's groups.",
    },
    Setting {
        var: "HUB_GROUP_ROLES",
        default: "",
        help: "Which hub roles the identity provider's groups give, e.g. hub-admins=admin,it-staff=operator,it-staff=viewer.",
    },
    Setting {
        var: "HUB_SESSION_IDLE_SECS",
        default: "28800",
        help: "A browser session unused this long ends.",
    },
    Setting {
        var: "HUB_SESSION_MAX_SECS",
        default: "604800",
        help: "A browser session ends this long after sign-in, used or not.",
    },
    Setting {
        var: "HUB_TRUSTED_PROXIES",
        default: "",
        help: "Addresses or networks (comma-separated, e.g. 10.0.0.5,10.1.0.0/16) of load balancers whose X-Forwarded-For and X-Forwarded-Proto the hub believes; from anyone else those headers are ignored.",
    },
    Setting {
        var: "HUB_AUTH_FAILURES",
        default: "10",
        help: "Failed sign-ins or unknown tokens from one address within a minute before its attempts are refused with 429 for HUB_AUTH_BLOCK_SECS.",
    },
    Setting {
        var: "HUB_AUTH_BLOCK_SECS",
        default: "60",
        help: "How long an address that failed too often is refused (429 with Retry-After).",
    },
    Setting {
        var: "HUB_AUDIT_RETENTION_DAYS",
        default: "365",
        help: "Audit log rows older than this are deleted.",
    },
    Setting {
        var: "HUB_USAGE",
        default: "true",
        help: "Usage analytics (calls, errors, latency and distinct callers per module route and hour, kept in PostgreSQL; GET /api/v1/modules/{name}/usage); they need DATABASE_URL. false: nothing is counted for them.",
    },
    Setting {
        var: "HUB_USAGE_FLUSH_SECS",
        default: "60",
        help: "How often usage counts are added to PostgreSQL (one statement; also at every hour's end and on SIGTERM): a crash loses at most this long.",
    },
    Setting {
        var: "HUB_USAGE_RETENTION_DAYS",
        default: "400",
        help: "Usage rows (hours) older than this are deleted.",
    },
    Setting {
        var: "HUB_TRUSTED_KEYS",
        default: "",
        help: "Public keys (minisign, base64, as cargo xtask keygen prints them) whose signatures the hub accepts on module packages, separated by commas. Empty: no package installs (unless unsigned ones are allowed).",
    },
    Setting {
        var: "HUB_ALLOW_UNSIGNED_PACKAGES",
        default: "false",
        help: "Development only: install module packages that carry no signature (signed ones are still checked). Logged as a warning at start.",
    },
    Setting {
        var: "HUB_PACKAGE_MAX_BYTES",
        default: "67108864",
        help: "The largest module package accepted, and the most it may unpack to (bytes).",
    },
    Setting {
        var: "HUB_CATALOGS",
        default: "",
        help: "Module catalogs the hub offers from (GET /api/v1/catalog), separated by commas: URLs of an index.json (http:// or https://) or folders holding one (as cargo xtask catalog writes them).",
    },
    Setting {
        var: "HUB_PACKAGE_VERSIONS_KEPT",
        default: "5",
        help: "Installed versions kept per module for rollback (the serving one included); older ones are deleted.",
    },
    Setting {
        var: "HUB_FLEET_HEARTBEAT_SECS",
        default: "5",
        help: "How often this hub records itself and its modules' versions and states in PostgreSQL (GET /api/v1/fleet lists the hubs on the database); needs DATABASE_URL.",
    },
    Setting {
        var: "HUB_FLEET_GONE_SECS",
        default: "30",
        help: "A hub not heard from for this long is shown as gone in GET /api/v1/fleet.",
    },
    Setting {
        var: "HUB_FLEET",
        default: "false",
        help: "Fleet mode: the modules' desired state (package version, enabled, safety, audience, settings) lives in PostgreSQL and every hub on the database applies it within a second; module.json edits are undone. Needs DATABASE_URL; modules join the fleet as packages (POST /api/v1/packages).",
    },
    Setting {
        var: "HUB_FLEET_ROLLOUT",
        default: "all",
        help: "How the fleet applies a new version of a module: all (every hub at once) or rolling (one hub at a time, each healthy before the next); the install's ?rollout= overrides it.",
    },
    Setting {
        var: "HUB_FLEET_ROLL_SOAK_MS",
        default: "2000",
        help: "In a rolling upgrade, how long a hub that started the new version (healthy) keeps the turn before the next hub takes it.",
    },
    Setting {
        var: "HUB_FLEET_AUTO_FINISH",
        default: "true",
        help: "Run a new version's contract migrations (those not marked expand) as soon as every live hub serves it; false: only POST /api/v1/modules/{name}/finish-migrations runs them.",
    },
    Setting {
        var: "MODULES_ENABLED",
        default: "true",
        help: "Global switch for the module system; false: the hub serves with no module loaded.",
    },
    Setting {
        var: "MODULES_DIR",
        default: "plugins",
        help: "Folder holding one folder per module (module.json + library).",
    },
    Setting {
        var: "MODULES_AUTO_RELOAD",
        default: "true",
        help: "Watch MODULES_DIR and apply changed libraries and module.json files without a restart.",
    },
    Setting {
        var: "HUB_RELOAD_DEBOUNCE_MS",
        default: "150",
        help: "How long the files of a module must be quiet before the watcher applies them (at least 10).",
    },
    Setting {
        var: "RUST_LOG",
        default: "info",
        help: "Log filter, e.g. info or hub=debug,info.",
    },
    Setting {
        var: "HUB_LOG_FORMAT",
        default: "pretty",
        help: "Log output: pretty (human) or json (one object per line).",
    },
    Setting {
        var: "HUB_REQUEST_TIMEOUT_MS",
        default: "30000",
        help: "A module handler running longer is cancelled with 504.",
    },
    Setting {
        var: "HUB_MODULE_BLOCKING_THREADS",
        default: "4",
        help: "How many of one module's ctx.spawn_blocking tasks run at once on the hub's blocking pool; the others wait their turn.",
    },
    Setting {
        var: "HUB_HEALTH_TIMEOUT_MS",
        default: "5000",
        help: "A module health check running longer counts as unhealthy.",
    },
    Setting {
        var: "HUB_BODY_LIMIT_BYTES",
        default: "1048576",
        help: "Largest request body passed to a module; larger is refused with 413.",
    },
    Setting {
        var: "HUB_SHUTDOWN_GRACE_MS",
        default: "10000",
        help: "On SIGTERM/SIGINT, how long requests in flight and module shutdown hooks may take.",
    },
    Setting {
        var: "HUB_WORKERS",
        default: "0",
        help: "HTTP worker threads; 0: one per CPU core.",
    },
    Setting {
        var: "HUB_DB_POOL_SIZE",
        default: "16",
        help: "Most connections the hub keeps open to PostgreSQL, all modules and the hub together.",
    },
    Setting {
        var: "HUB_DB_POOL_TIMEOUT_MS",
        default: "5000",
        help: "How long to wait for a free connection, or to connect; then the call fails with 503.",
    },
    Setting {
        var: "HUB_DB_STATEMENT_TIMEOUT_MS",
        default: "5000",
        help: "statement_timeout of a module's statement, unless the module asks for another.",
    },
    Setting {
        var: "HUB_DB_MAX_STATEMENT_TIMEOUT_MS",
        default: "60000",
        help: "The longest a module's statement may run, whatever it asks for (a timeout of 0 means this).",
    },
    Setting {
        var: "HUB_DB_RETRY_MS",
        default: "2000",
        help: "While the database is unreachable, how often the hub tries it again.",
    },
    Setting {
        var: "HUB_RUNTIME_DIR",
        default: "",
        help: "Where the hub makes its private 0700 folder for library copies; unset: the system temp dir.",
    },
];

/// The hub's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Option<String>,
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens; `None`: metrics are off.
    pub metrics_bind: Option<SocketAddr>,
    pub admin_token: Option<String>,
    /// The hub's address as browsers reach it, without a trailing slash.
    pub public_url: String,
    pub oidc: Option<OidcConfig>,
    /// Group of the identity provider → hub role, in order.
    pub group_roles: Vec<(String, String)>,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub auth_failures: u32,
    pub auth_block: Duration,
    pub audit_retention_days: u32,
    /// Usage analytics: on only with a database.
    pub usage: bool,
    pub usage_flush: Duration,
    pub usage_retention_days: u32,
    /// Public keys trusted to sign module packages: (key id, base64 key).
    pub trusted_keys: Vec<(String, String)>,
    pub allow_unsigned_packages: bool,
    pub package_max_bytes: usize,
    pub package_versions_kept: u32,
    /// Catalogs: URLs of an `index.json`, or folders holding one.
    pub catalogs: Vec<String>,
    pub fleet_heartbeat: Duration,
    pub fleet_gone: Duration,
    /// Fleet mode (`HUB_FLEET`): the desired state lives in PostgreSQL.
    pub fleet: bool,
    /// `HUB_FLEET_ROLLOUT` is `rolling`.
    pub fleet_rolling: bool,
    pub fleet_roll_soak: Duration,
    pub fleet_auto_finish: bool,
    pub modules_enabled: bool,
    pub modules_dir: PathBuf,
    pub auto_reload: bool,
    pub reload_debounce: Duration,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub request_timeout: Duration,
    /// A module's blocking tasks running at once.
    pub module_blocking_threads: usize,
    pub health_timeout: Duration,
    pub body_limit: usize,
    pub shutdown_grace: Duration,
    pub workers: usize,
    pub runtime_dir: Option<PathBuf>,
    pub db_pool_size: usize,
    pub db_pool_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub db_max_statement_timeout: Duration,
    pub db_retry: Duration,
    pub module_env: ModuleEnv,
}

/// Single sign-on settings (`HUB_OIDC_*`).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub groups_claim: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A setting that could not be read; names the variable and says what it expects.
#[derive(Debug, Error)]
#[error("{var}={value:?} is invalid: {expected}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Read the configuration from `vars` (the environment, or a test's list).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let get = |var: &'static str| -> String {
            let set = vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.trim());
            match set {
                Some(v) if !v.is_empty() => v.to_owned(),
                _ => default_of(var).to_owned(),
            }
        };
        let millis = |var: &'static str| -> Result<Duration, ConfigError> {
            let value = get(var);
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError {
                    var,
                    value,
                    expected: "a whole number of milliseconds",
                })
        };
        let number = |var: &'static str| -> Result<usize, ConfigError> {
            let value = get(var);
            value.parse::<usize>().map_err(|_| ConfigError {
                var,
                value,
                expected: "a whole number",
            })
        };
        let optional = |var: &'static str| Some(get(var)).filter(|v| !v.is_empty());

        let bind_text = get("HUB_BIND");
        let bind = bind_text.parse().map_err(|_| ConfigError {
            var: "HUB_BIND",
            value: bind_text.clone(),
            expected: "an address with a port, like 127.0.0.1:8000",
        })?;
        let metrics_bind = match optional("HUB_METRICS_BIND") {
            Some(text) => Some(text.parse().map_err(|_| ConfigError {
                var: "HUB_METRICS_BIND",
                value: text.clone(),
                expected: "an address with a port, like 127.0.0.1:9100",
            })?),
            None => None,
        };
        let log_format = match get("HUB_LOG_FORMAT").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError {
                    var: "HUB_LOG_FORMAT",
                    value: other.to_owned(),
                    expected: "pretty or json",
                });
            }
        };
        let boolean = |var: &'static str| -> Result<bool, ConfigError> {
            let value = get(var);
            parse_bool(&value).ok_or(ConfigError {
                var,
                value,
                expected: "true or false",
            })
        };
        let modules_enabled = boolean("MODULES_ENABLED")?;
        let seconds = |var: &'static str| -> Result<Duration, ConfigError> {
            let value = get(var);
            value
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or(ConfigError {
                    var,
                    value,
                    expected: "a whole number of seconds, at least 1",
                })
        };
        let public_url = match optional("HUB_PUBLIC_URL") {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                url.trim_end_matches('/').to_owned()
            }
            Some(url) => {
                return Err(ConfigError {
                    var: "HUB_PUBLIC_URL",
                    value: url,
                    expected: "an http:// or https:// URL, like https://hub.example.com",
                });
            }
            None => format!("http://{bind}"),
        };
        let oidc = match optional("HUB_OIDC_ISSUER") {
            None => None,
            Some(issuer) => Some(OidcConfig {
                issuer,
                client_id: optional("HUB_OIDC_CLIENT_ID").ok_or(ConfigError {
                    var: "HUB_OIDC_CLIENT_ID",
                    value: String::new(),
                    expected: "the hub's client id at the identity provider (HUB_OIDC_ISSUER is set)",
                })?,
                client_secret: optional("HUB_OIDC_CLIENT_SECRET").ok_or(ConfigError {
                    var: "HUB_OIDC_CLIENT_SECRET",
                    value: String::new(),
                    expected: "the hub's client secret at the identity provider (HUB_OIDC_ISSUER is set)",
                })?,
                groups_claim: get("HUB_OIDC_GROUPS_CLAIM"),
            }),
        };
        let group_roles_text = get("HUB_GROUP_ROLES");
        let group_roles = group_roles_text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((group, role)) if !group.trim().is_empty() && !role.trim().is_empty() => {
                    Ok((group.trim().to_owned(), role.trim().to_owned()))
                }
                _ => Err(ConfigError {
                    var: "HUB_GROUP_ROLES",
                    value: group_roles_text.clone(),
                    expected: "group=role pairs separated by commas, like hub-admins=admin,staff=viewer",
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proxies_text = get("HUB_TRUSTED_PROXIES");
        let trusted_proxies = proxies_text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError {
                        var: "HUB_TRUSTED_PROXIES",
                        value: proxies_text.clone(),
                        expected: "addresses or networks separated by commas, like 10.0.0.5,10.1.0.0/16",
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let keys_text = get("HUB_TRUSTED_KEYS");
        let trusted_keys = keys_text
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                hub_package::public_key_id(k)
                    .map(|id| (id, k.to_owned()))
                    .ok_or_else(|| ConfigError {
                        var: "HUB_TRUSTED_KEYS",
                        value: keys_text.clone(),
                        expected: "minisign public keys in base64 separated by commas, as cargo xtask keygen prints them (RW…)",
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let small = |var: &'static str| -> Result<u32, ConfigError> {
            let value = get(var);
            value
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError {
                    var,
                    value,
                    expected: "a whole number, at least 1",
                })
        };
        let fleet = boolean("HUB_FLEET")?;
        if fleet && optional("DATABASE_URL").is_none() {
            return Err(ConfigError {
                var: "HUB_FLEET",
                value: "true".to_owned(),
                expected: "false, or set DATABASE_URL too: a fleet keeps its state in PostgreSQL",
            });
        }
        Ok(Config {
            database_url: optional("DATABASE_URL"),
            bind,
            admin_token: optional("HUB_ADMIN_TOKEN"),
            public_url,
            oidc,
            group_roles,
            session_idle: seconds("HUB_SESSION_IDLE_SECS")?,
            session_max: seconds("HUB_SESSION_MAX_SECS")?,
            trusted_proxies,
            auth_failures: small("HUB_AUTH_FAILURES")?,
            auth_block: seconds("HUB_AUTH_BLOCK_SECS")?,
            audit_retention_days: small("HUB_AUDIT_RETENTION_DAYS")?,
            usage: boolean("HUB_USAGE")? && optional("DATABASE_URL").is_some(),
            usage_flush: seconds("HUB_USAGE_FLUSH_SECS")?,
            usage_retention_days: small("HUB_USAGE_RETENTION_DAYS")?,
            trusted_keys,
            allow_unsigned_packages: boolean("HUB_ALLOW_UNSIGNED_PACKAGES")?,
            package_max_bytes: number("HUB_PACKAGE_MAX_BYTES")?,
            package_versions_kept: small("HUB_PACKAGE_VERSIONS_KEPT")?,
            fleet_heartbeat: seconds("HUB_FLEET_HEARTBEAT_SECS")?,
            fleet_gone: seconds("HUB_FLEET_GONE_SECS")?,
            fleet,
            fleet_rolling: match get("HUB_FLEET_ROLLOUT").as_str() {
                "all" => false,
                "rolling" => true,
                other => {
                    return Err(ConfigError {
                        var: "HUB_FLEET_ROLLOUT",
                        value: other.to_owned(),
                        expected: "all or rolling",
                    });
                }
            },
            fleet_roll_soak: millis("HUB_FLEET_ROLL_SOAK_MS")?,
            fleet_auto_finish: boolean("HUB_FLEET_AUTO_FINISH")?,
            catalogs: get("HUB_CATALOGS")
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            modules_enabled,
            modules_dir: PathBuf::from(get("MODULES_DIR")),
            auto_reload: boolean("MODULES_AUTO_RELOAD")?,
            reload_debounce: millis("HUB_RELOAD_DEBOUNCE_MS")?,
            log_filter: get("RUST_LOG"),
            log_format,
            request_timeout: millis("HUB_REQUEST_TIMEOUT_MS")?,
            module_blocking_threads: small("HUB_MODULE_BLOCKING_THREADS")? as usize,
            health_timeout: millis("HUB_HEALTH_TIMEOUT_MS")?,
            body_limit: number("HUB_BODY_LIMIT_BYTES")?,
            shutdown_grace: millis("HUB_SHUTDOWN_GRACE_MS")?,
            workers: number("HUB_WORKERS")?,
            runtime_dir: optional("HUB_RUNTIME_DIR").map(PathBuf::from),
            db_pool_size: number("HUB_DB_POOL_SIZE")?.max(1),
            db_pool_timeout: millis("HUB_DB_POOL_TIMEOUT_MS")?,
            db_statement_timeout: millis("HUB_DB_STATEMENT_TIMEOUT_MS")?,
            db_max_statement_timeout: millis("HUB_DB_MAX_STATEMENT_TIMEOUT_MS")?
                .max(Duration::from_millis(1)),
            db_retry: millis("HUB_DB_RETRY_MS")?.max(Duration::from_millis(100)),
            module_env: ModuleEnv::from_vars(&vars),
            metrics_bind,
        })
    }
}

fn default_of(var: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.var == var)
        .map(|s| s.default)
        .unwrap_or_default()
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), case-insensitive.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `.env.example`, rendered from [`SETTINGS`].
pub fn render_env_example() -> String {
    let mut out = String::from(
        "# Generated from host/src/config/mod.rs (SETTINGS); a test fails when it is stale.\n\
         # Every setting of the hub, with its default. Copy to .env and change what you need.\n\
         # Module settings: MODULES__{NAME}__{KEY}=value (value parsed as JSON, else a string)\n\
         # overrides the key of the module's \"config\"; MODULES__{NAME}__READ_ONLY and\n\
         # MODULES__{NAME}__DRY_RUN override its \"safety\".\n",
    );
    for s in SETTINGS {
        out.push_str(&format!("\n# {}\n", s.help));
        if s.default.is_empty() {
            out.push_str(&format!("# {}=\n", s.var));
        } else {
            out.push_str(&format!("{}={}\n", s.var, s.default));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() -> Result<(), ConfigError> {
        let config = Config::from_vars(vars(&[]))?;
        assert_eq!(config.bind.to_string(), "127.0.0.1:8000");
        assert!(config.modules_enabled);
        assert_eq!(config.modules_dir, PathBuf::from("plugins"));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.admin_token, None);
        assert_eq!(config.log_format, LogFormat::Pretty);
        Ok(())
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_it_expects() {
        let err = Config::from_vars(vars(&[("HUB_REQUEST_TIMEOUT_MS", "soon")]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("HUB_REQUEST_TIMEOUT_MS=\"soon\" is invalid: a whole number of milliseconds")
        );
        let err = Config::from_vars(vars(&[("MODULES_ENABLED", "maybe")]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("MODULES_ENABLED=\"maybe\" is invalid: true or false")
        );
    }

    #[test]
    fn env_example_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example");
        let rendered = render_env_example();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(path, &rendered).expect("write .env.example");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == rendered,
            ".env.example is stale: run `UPDATE_EXPECT=1 cargo test -p host env_example` and commit it"
        );
    }
}
