//! Permissions: the hub's (`modules.read`, …) and each module's (`tickets:items.write`), a set of
//! them with wildcards (`*`, `tickets:*`), and the rule for their names.

use std::collections::{HashMap, HashSet};

/// The hub's own permissions, with what each allows.
pub const HUB_PERMISSIONS: &[(&str, &str)] = &[
    (
        "modules.read",
        "List the modules, their state, routes and graph",
    ),
    (
        "modules.manage",
        "Enable, disable and reload modules; change their audience",
    ),
    ("modules.install", "Install and remove module packages"),
    (
        "users.manage",
        "Manage users, roles and every user's tokens",
    ),
    ("audit.read", "Read the audit log"),
];

pub use crate::names::validate_permission as validate_name;

/// Whether `grant` may appear in a role or a token: `*`, a hub permission, `<module>:*` or
/// `<module>:<permission>`. `Err` says how to write it.
pub fn validate_grant(grant: &str) -> Result<(), String> {
    if grant == "*" || HUB_PERMISSIONS.iter().any(|(p, _)| *p == grant) {
        return Ok(());
    }
    match grant.split_once(':') {
        Some((module, permission)) => {
            crate::names::validate(module).map_err(|reason| {
                format!("permission {grant:?}: module name {module:?} is invalid: {reason}")
            })?;
            if permission == "*" {
                Ok(())
            } else {
                validate_name(permission).map_err(|e| format!("{e} (in {grant:?})"))
            }
        }
        None => Err(format!(
            "permission {grant:?} is neither one of the hub's ({}) nor a module's (<module>:<permission>, <module>:*), nor *",
            HUB_PERMISSIONS
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A set of permissions, with their wildcards resolved on lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// `*`: everything.
    all: bool,
    hub: HashSet<String>,
    modules: HashMap<String, ModuleGrants>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ModuleGrants {
    /// `<module>:*`.
    all: bool,
    names: HashSet<String>,
}

impl Permissions {
    /// The set of these grants (`*`, `modules.read`, `tickets:*`, `tickets:items.write`);
    /// grants that break the rules are left out.
    pub fn from_grants<'a>(grants: impl IntoIterator<Item = &'a str>) -> Permissions {
        let mut set = Permissions::default();
        for grant in grants {
            set.add(grant);
        }
        set
    }

    fn add(&mut self, grant: &str) {
        if grant == "*" {
            self.all = true;
        } else if let Some((module, name)) = grant.split_once(':') {
            let grants = self.modules.entry(module.to_owned()).or_default();
            if name == "*" {
                grants.all = true;
            } else {
                grants.names.insert(name.to_owned());
            }
        } else {
            self.hub.insert(grant.to_owned());
        }
    }

    /// Every permission.
    pub fn everything() -> Permissions {
        Permissions {
            all: true,
            ..Permissions::default()
        }
    }

    pub fn is_everything(&self) -> bool {
        self.all
    }

    /// The hub permission `name`.
    pub fn can(&self, name: &str) -> bool {
        self.all || self.hub.contains(name)
    }

    /// Module `module`'s permission `name`.
    pub fn can_in(&self, module: &str, name: &str) -> bool {
        self.all
            || self
                .modules
                .get(module)
                .is_some_and(|m| m.all || m.names.contains(name))
    }

    /// Whether every permission `grant` stands for is in this set (`*` only if this is
    /// everything; `<module>:*` only if this has all of the module's).
    pub fn covers(&self, grant: &str) -> bool {
        if self.all {
            return true;
        }
        match grant.split_once(':') {
            _ if grant == "*" => false,
            Some((module, "*")) => self.modules.get(module).is_some_and(|m| m.all),
            Some((module, name)) => self.can_in(module, name),
            None => self.hub.contains(grant),
        }
    }

    /// What both sets allow.
    pub fn intersect(&self, other: &Permissions) -> Permissions {
        let mut out = Permissions::default();
        for grant in self.grants().into_iter().filter(|g| other.covers(g)) {
            out.add(&grant);
        }
        for grant in other.grants().into_iter().filter(|g| self.covers(g)) {
            out.add(&grant);
        }
        out
    }

    /// The grants of this set, sorted.
    pub fn grants(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.all {
            out.push("*".to_owned());
        }
        out.extend(self.hub.iter().cloned());
        for (module, grants) in &self.modules {
            if grants.all {
                out.push(format!("{module}:*"));
            }
            out.extend(grants.names.iter().map(|n| format!("{module}:{n}")));
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_area_verb() {
        assert_eq!(validate_name("items.write"), Ok(()));
        assert_eq!(validate_name("crm.contacts.read"), Ok(()));
        for bad in [
            "items",
            "Items.read",
            "items.",
            ".read",
            "items.Write",
            "1x.read",
            "items read",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_grant("modules.delete"),
            Err("permission \"modules.delete\" is neither one of the hub's (modules.read, modules.manage, modules.install, users.manage, audit.read) nor a module's (<module>:<permission>, <module>:*), nor *".to_owned())
        );
        assert_eq!(validate_grant("tickets:*"), Ok(()));
        assert_eq!(validate_grant("tickets:items.read"), Ok(()));
        assert!(validate_grant("Tickets:items.read").is_err());
    }

    #[test]
    fn wildcards_cover_what_they_name() {
        let set = Permissions::from_grants(["modules.read", "tickets:*", "crm:contacts.read"]);
        assert!(set.can("modules.read"));
        assert!(!set.can("modules.manage"));
        assert!(set.can_in("tickets", "anything.at_all"));
        assert!(set.can_in("crm", "contacts.read"));
        assert!(!set.can_in("crm", "contacts.write"));
        assert!(set.covers("tickets:*"));
        assert!(!set.covers("crm:*"));
        assert!(!set.covers("*"));
        assert!(Permissions::everything().covers("*"));
    }

    #[test]
    fn an_intersection_is_what_both_allow() {
        let user = Permissions::from_grants(["modules.read", "tickets:*"]);
        let token =
            Permissions::from_grants(["modules.read", "modules.manage", "tickets:items.read"]);
        assert_eq!(
            user.intersect(&token).grants(),
            vec!["modules.read", "tickets:items.read"]
        );
        let admin = Permissions::everything();
        assert_eq!(admin.intersect(&token), token.intersect(&admin));
        assert_eq!(admin.intersect(&token).grants(), token.grants());
    }
}
