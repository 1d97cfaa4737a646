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
        for (name, source) in [
            ("base.html", BASE),
            ("home.html", HOME),
            ("error.html", ERROR),
            ("login.html", LOGIN),
        ] {
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

/// A minijinja error with its cause and place, in one line.
fn one_line(error: &minijinja::Error) -> String {
    crate::causes::with_causes(error).replace('\n', " ")
}
