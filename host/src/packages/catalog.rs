//! Catalogs (the marketplace): an `index.json` (the `hub-package` crate's `Catalog`) with the
//! packages beside it, served by any web server or read from a folder, named in
//! `HUB_CATALOGS`. What this hub can run of them, and why not; fetching a package and checking
//! it against the SHA-256 its index lists (its signature is the install's to check).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hub_package::{Catalog, CatalogVersion};
use serde::Serialize;

use crate::deps;

/// The most an index may weigh.
const INDEX_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Where a catalog is.
#[derive(Debug, Clone)]
pub enum Location {
    /// The URL of its `index.json`.
    Url(String),
    /// A folder holding `index.json`.
    Folder(PathBuf),
}

impl Location {
    pub fn parse(text: &str) -> Location {
        if text.starts_with("http://") || text.starts_with("https://") {
            Location::Url(text.to_owned())
        } else {
            Location::Folder(PathBuf::from(text))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Location::Url(url) => url.clone(),
            Location::Folder(folder) => folder.display().to_string(),
        }
    }

    /// Read `relative` (a path from the index, or an absolute URL), at most `max_bytes`.
    async fn read(&self, relative: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
        match self {
            Location::Url(index) => {
                let url = if relative.starts_with("http://") || relative.starts_with("https://") {
                    relative.to_owned()
                } else {
                    let base = index.rsplit_once('/').map_or(index.as_str(), |(b, _)| b);
                    format!("{base}/{}", relative.trim_start_matches('/'))
                };
                crate::outbound::fetch_for_hub(&url, max_bytes).await
            }
            Location::Folder(folder) => {
                if relative.starts_with('/') || relative.split('/').any(|p| p == "..") {
                    return Err(format!(
                        "{relative:?} is outside the catalog's folder {}",
                        folder.display()
                    ));
                }
                let path = folder.join(relative);
                read_file(&path, max_bytes)
            }
        }
    }
}

fn read_file(path: &Path, max_bytes: usize) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if size > max_bytes as u64 {
        return Err(format!(
            "{} is larger than {max_bytes} bytes",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A catalog as read: its index, or why it could not be read.
pub struct Read {
    pub location: Location,
    pub catalog: Result<Catalog, String>,
}

/// Read every catalog of `locations`.
pub async fn read_all(locations: &[String]) -> Vec<Read> {
    let mut out = Vec::new();
    for text in locations {
        let location = Location::parse(text);
        let bytes = match &location {
            Location::Url(url) => crate::outbound::fetch_for_hub(url, INDEX_MAX_BYTES).await,
            Location::Folder(folder) => read_file(&folder.join("index.json"), INDEX_MAX_BYTES),
        };
        let catalog = bytes.and_then(|bytes| {
            serde_json::from_slice::<Catalog>(&bytes)
                .map_err(|e| format!("its index.json cannot be read: {e}"))
        });
        out.push(Read { location, catalog });
    }
    out
}

/// One version a catalog offers, as `GET /api/v1/catalog` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OfferedVersion {
    pub version: String,
    pub hub_api: Option<String>,
    pub dependencies: BTreeMap<String, String>,
    /// Whether this hub can run it (its dependencies installed, or offered: `needs`).
    pub runnable: bool,
    /// Why it cannot run here: another platform, another plugin-api, a dependency nobody offers.
    pub why_not: Option<String>,
    /// Dependencies not installed that a catalog offers (`?with_dependencies=true` installs
    /// them first).
    pub needs: Vec<String>,
    pub installed: bool,
}

/// A module the catalogs offer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Offer {
    pub name: String,
    pub description: Option<String>,
    /// The catalog it comes from (the first that offers it).
    pub catalog: String,
    /// The version installed here, if any.
    pub installed: Option<String>,
    /// The newest version this hub can run that is newer than the installed one.
    pub upgrade: Option<String>,
    /// Newest first.
    pub versions: Vec<OfferedVersion>,
}

/// What a version needs that is missing here: `Err` why it cannot run at all, else the
/// dependencies a catalog offers.
fn runnable(
    version: &CatalogVersion,
    installed: &BTreeMap<String, String>,
    offered: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    let platform = hub_package::platform();
    if version.platform != platform {
        return Err(format!(
            "built for {}, this hub runs on {platform}",
            version.platform
        ));
    }
    if let Some(range) = &version.hub_api
        && !deps::satisfies(plugin_api::API_VERSION, range)
    {
        return Err(format!(
            "needs plugin-api {range}, this hub has {}",
            plugin_api::API_VERSION
        ));
    }
    let mut needs = Vec::new();
    for (dependency, range) in &version.dependencies {
        if installed
            .get(dependency)
            .is_some_and(|v| deps::satisfies(v, range))
        {
            continue;
        }
        if offered
            .get(dependency)
            .is_some_and(|versions| versions.iter().any(|v| deps::satisfies(v, range)))
        {
            needs.push(format!("{dependency} {range}"));
        } else {
            return Err(format!(
                "needs {dependency} {range}, which is not installed and no catalog offers"
            ));
        }
    }
    Ok(needs)
}

/// The offers of `catalogs` for a hub with `installed` (name → version).
pub fn offers(catalogs: &[Read], installed: &BTreeMap<String, String>) -> Vec<Offer> {
    let mut offered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for read in catalogs {
        for module in read.catalog.iter().flat_map(|c| &c.modules) {
            offered
                .entry(module.name.clone())
                .or_default()
                .extend(module.versions.iter().map(|v| v.version.clone()));
        }
    }
    let mut out: Vec<Offer> = Vec::new();
    for read in catalogs {
        for module in read.catalog.iter().flat_map(|c| &c.modules) {
            if out.iter().any(|o| o.name == module.name) {
                continue;
            }
            let here = installed.get(&module.name).cloned();
            let versions: Vec<OfferedVersion> = module
                .versions
                .iter()
                .map(|v| {
                    let checked = runnable(v, installed, &offered);
                    OfferedVersion {
                        version: v.version.clone(),
                        hub_api: v.hub_api.clone(),
                        dependencies: v.dependencies.clone(),
                        runnable: checked.is_ok(),
                        why_not: checked.as_ref().err().cloned(),
                        needs: checked.unwrap_or_default(),
                        installed: here.as_ref() == Some(&v.version),
                    }
                })
                .collect();
            let newer = |v: &str| match (&here, semver::Version::parse(v)) {
                (None, _) => false,
                (Some(here), Ok(v)) => semver::Version::parse(here).is_ok_and(|h| v > h),
                _ => false,
            };
            let upgrade = versions
                .iter()
                .filter(|v| v.runnable && newer(&v.version))
                .filter_map(|v| Some((semver::Version::parse(&v.version).ok()?, v)))
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, v)| v.version.clone());
            out.push(Offer {
                name: module.name.clone(),
                description: module.description.clone(),
                catalog: read.location.describe(),
                installed: here,
                upgrade,
                versions,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Where version `version` (default: the newest this hub can run) of `name` is offered.
pub fn find<'a>(
    catalogs: &'a [Read],
    name: &str,
    version: Option<&str>,
    installed: &BTreeMap<String, String>,
) -> Option<(&'a Location, &'a CatalogVersion)> {
    let offers = offers(catalogs, installed);
    let wanted = match version {
        Some(v) => v.to_owned(),
        None => {
            let offer = offers.iter().find(|o| o.name == name)?;
            offer
                .versions
                .iter()
                .filter(|v| v.runnable)
                .filter_map(|v| Some((semver::Version::parse(&v.version).ok()?, v)))
                .max_by(|a, b| a.0.cmp(&b.0))?
                .1
                .version
                .clone()
        }
    };
    catalogs.iter().find_map(|read| {
        let module = read
            .catalog
            .as_ref()
            .ok()?
            .modules
            .iter()
            .find(|m| m.name == name)?;
        let found = module.versions.iter().find(|v| v.version == wanted)?;
        Some((&read.location, found))
    })
}

/// The newest offered version of `name` whose version satisfies `range`.
pub fn newest_matching<'a>(
    catalogs: &'a [Read],
    name: &str,
    range: &str,
) -> Option<(&'a Location, &'a CatalogVersion)> {
    catalogs
        .iter()
        .filter_map(|read| Some((&read.location, read.catalog.as_ref().ok()?)))
        .flat_map(|(location, catalog)| {
            catalog
                .modules
                .iter()
                .filter(|m| m.name == name)
                .flat_map(move |m| m.versions.iter().map(move |v| (location, v)))
        })
        .filter(|(_, v)| deps::satisfies(&v.version, range))
        .filter_map(|(l, v)| Some((semver::Version::parse(&v.version).ok()?, l, v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, l, v)| (l, v))
}

/// The package of `version` from `location`, checked against the SHA-256 its index lists.
pub async fn fetch(
    location: &Location,
    version: &CatalogVersion,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    let bytes = location
        .read(&version.url, max_bytes)
        .await
        .map_err(FetchError::Unavailable)?;
    let sha256 = hub_package::sha256_hex(&bytes);
    if sha256 != version.sha256 {
        return Err(FetchError::Hash(format!(
            "the package at {} has SHA-256 {sha256}, its catalog lists {}",
            version.url, version.sha256
        )));
    }
    Ok(bytes)
}

/// Why a package could not be fetched.
#[derive(Debug)]
pub enum FetchError {
    Unavailable(String),
    Hash(String),
}
