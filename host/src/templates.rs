//! HTML templates: the hub's own (`templates/`: the layout `base.html`, `home.html`,
//! `error.html`, `login.html`) and each module's, compiled with minijinja. This is the only room that knows
//! minijinja; `http::views` renders pages through it.
//!
//! A module's templates live in an environment of their own, built once per instance (so a
//! template that does not parse fails the module's start): `base.html` is the hub's layout, any
//! other name is the module's (`index.html`, or `<module>/index.html`). Autoescaping is on for
//! `.html`.

use std::sync::{Arc, OnceLock};

use minijinja::Environment;
use serde_json::Value;

use crate::assets::ModuleAssets;

const BASE: &str = include_str!("../../templates/base.html");
const HOME: &str = include_str!("../../templates/home.html");
const ERROR: &str = include_str!("../../templates/error.html");
const LOGIN: &str = include_str!("../../templates/login.html");

/// The hub's own templates by name: the pages, and the console's (`admin/…`).
const HUB_TEMPLATES: &[(&str, &str)] = &[
    ("base.html", BASE),
    ("home.html", HOME),
    ("error.html", ERROR),
    ("login.html", LOGIN),
    (
        "admin/layout.html",
        include_str!("../../templates/admin/layout.html"),
    ),
    (
        "admin/modules.html",
        include_str!("../../templates/admin/modules.html"),
    ),
    (
        "admin/rows.html",
        include_str!("../../templates/admin/rows.html"),
    ),
    (
        "admin/module.html",
        include_str!("../../templates/admin/module.html"),
    ),
    (
        "admin/confirm.html",
        include_str!("../../templates/admin/confirm.html"),
    ),
    (
        "admin/graph.html",
        include_str!("../../templates/admin/graph.html"),
    ),
    (
        "admin/fleet.html",
        include_str!("../../templates/admin/fleet.html"),
    ),
    (
        "admin/catalog.html",
        include_str!("../../templates/admin/catalog.html"),
    ),
    (
        "admin/audit.html",
        include_str!("../../templates/admin/audit.html"),
    ),
    (
        "admin/audit_rows.html",
        include_str!("../../templates/admin/audit_rows.html"),
    ),
    (
        "admin/people.html",
        include_str!("../../templates/admin/people.html"),
    ),
    (
        "admin/tokens.html",
        include_str!("../../templates/admin/tokens.html"),
    ),
];

/// A module's templates, parsed, ready to render inside the hub's layout.
pub struct ModuleTemplates {
    env: Environment<'static>,
}

impl ModuleTemplates {
    /// Parse `module`'s templates; `Err` names the first template that does not parse.
    pub fn new(module: &str, assets: &ModuleAssets) -> Result<ModuleTemplates, String> {
        let templates = Arc::new(assets.templates.clone());
        let prefix = format!("{module}/");
        let mut env = Environment::new();
        let lookup = templates.clone();
        env.set_loader(move |name| {
            if name == "base.html" {
                return Ok(Some(BASE.to_owned()));
            }
            let local = name.strip_prefix(&prefix).unwrap_or(name);
            Ok(lookup.get(local).cloned())
        });
        let mut names: Vec<&String> = templates.keys().collect();
        names.sort();
        for name in names {
            env.get_template(name)
                .map_err(|e| format!("template {name} does not parse: {}", one_line(&e)))?;
        }
        Ok(ModuleTemplates { env })
    }

    /// Render `template` with `context`; `Err` is minijinja's reason in one line.
    pub fn render(&self, template: &str, context: Value) -> Result<String, String> {
        self.env
            .get_template(template)
            .and_then(|t| t.render(context))
            .map_err(|e| one_line(&e))
    }
}

/// The hub's own templates, parsed once.
fn hub_environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_filter("ago", ago);
        env.add_filter("bytes", bytes);
        for &(name, source) in HUB_TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!("the hub's template {name} does not parse: {e}");
            }
        }
        env
    })
}

/// Render the hub's own template `name` (`home.html`, `error.html`, `login.html`) with `context`.
pub fn render_hub(name: &str, context: Value) -> Result<String, String> {
    hub_environment()
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|e| e.to_string())
}

/// `{{ time|ago }}`: how long ago an RFC 3339 time was (`12 s ago`, `3 min ago`, `2 h ago`,
/// `4 days ago`), or how soon it comes (`in 12 s`); the text itself if it is not a time.
fn ago(time: &str) -> String {
    let Ok(then) = chrono::DateTime::parse_from_rfc3339(time) else {
        return time.to_owned();
    };
    let millis = (chrono::Utc::now() - then.with_timezone(&chrono::Utc)).num_milliseconds();
    let span = |seconds: i64| match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86400),
    };
    if millis < 0 {
        format!("in {}", span((999 - millis) / 1000))
    } else {
        format!("{} ago", span(millis / 1000))
    }
}

/// `{{ n|bytes }}`: a size in bytes as people read it (`8.0 kB`, `1.2 MB`).
fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n < 1000.0 => format!("{n} B"),
        n if n < 1e6 => format!("{:.1} kB", n / 1e3),
        n if n < 1e9 => format!("{:.1} MB", n / 1e6),
        n => format!("{:.1} GB", n / 1e9),
    }
}

/// A minijinja error with its cause and place, in one line.
fn one_line(error: &minijinja::Error) -> String {
    crate::causes::with_causes(error).replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hub_template_parses() {
        let mut env = Environment::new();
        env.add_filter("ago", ago);
        env.add_filter("bytes", bytes);
        for &(name, source) in HUB_TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {}", one_line(&e)));
        }
    }

    #[test]
    fn ages_and_sizes_read_as_people_say_them() {
        let ten_minutes = (chrono::Utc::now() - chrono::Duration::seconds(601)).to_rfc3339();
        assert_eq!(ago(&ten_minutes), "10 min ago");
        assert_eq!(ago("yesterday"), "yesterday");
        assert_eq!(bytes(16384), "16.4 kB");
        assert_eq!(bytes(999), "999 B");
    }
}
