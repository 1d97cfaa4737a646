//! A module's compiled-in files as the hub keeps them: its templates (text) and its static files
//! (bytes in the library, which is never unloaded). The loader fills it; the instance keeps it;
//! `templates` compiles the templates and `http::views` serves the static files.

use std::collections::HashMap;

/// A module's templates and static files, by path.
#[derive(Debug, Default, Clone)]
pub struct ModuleAssets {
    pub templates: HashMap<String, String>,
    pub statics: HashMap<String, &'static [u8]>,
}
