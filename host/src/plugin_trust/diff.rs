//! What installing a new version of an installed plugin changes: events,
//! actions declared, settings, limits requested, imports, contract
//! version and signer, and which of the new capabilities the upgrade left
//! ungranted.
//!
//! The diff is computed before anything is written, shown by the CLI, the
//! API's answer and the console, and kept in the change log. It decides
//! nothing except the version order (a downgrade is refused unless the
//! admin allows it): granting is done by `grants` and the install path,
//! which keep an upgrade from granting anything new by itself.
//!
//! What it must never do: read a plugin's code beyond its import list, or
//! describe a capability as granted that the stored grants do not hold.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::Serialize;

use super::grants::{self, HeldLimit, LIMIT_NAMES};
use crate::manifest::{Manifest, SettingSpec};
use crate::runtime::Limits;

/// How the new version compares with the installed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionOrder {
    /// Newer.
    Upgrade,
    /// The same version (a rebuild, or the same files again).
    Same,
    /// Older: refused unless allowed.
    Downgrade,
    /// The versions cannot be compared (not `x.y.z`).
    Unordered,
}

/// Compares two plugin versions: semver when both are, else their
/// dot-separated numbers, else unordered.
pub fn order(installed: &str, new: &str) -> VersionOrder {
    let ordering = match (
        semver::Version::parse(installed),
        semver::Version::parse(new),
    ) {
        (Ok(a), Ok(b)) => Some(b.cmp_precedence(&a)),
        _ => numbers(installed).zip(numbers(new)).map(|(a, b)| b.cmp(&a)),
    };
    match ordering {
        Some(Ordering::Greater) => VersionOrder::Upgrade,
        Some(Ordering::Equal) => VersionOrder::Same,
        Some(Ordering::Less) => VersionOrder::Downgrade,
        None => VersionOrder::Unordered,
    }
}

fn numbers(v: &str) -> Option<Vec<u64>> {
    v.split('.').map(|p| p.parse().ok()).collect()
}

/// One setting that is new, gone or different.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingChange {
    /// The setting's name.
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// What it is now (or was, when removed), in words.
    pub detail: String,
}

/// One limit whose request differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitChange {
    /// Its manifest name (`memory-mib`).
    pub limit: String,
    /// The installed version's request (`None`: the host default).
    pub before: Option<u64>,
    /// The new version's request (`None`: the host default).
    pub after: Option<u64>,
    /// When the new request is above what was granted: what it runs with.
    pub held_at: Option<u64>,
}

/// A value that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Before.
    pub before: String,
    /// After.
    pub after: String,
}

/// What an upgrade changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradeDiff {
    /// The plugin.
    pub plugin: String,
    /// The installed version and the new one.
    pub version: Change,
    /// How they compare.
    pub order: VersionOrder,
    /// Event kinds it newly subscribes to.
    pub events_added: Vec<String>,
    /// Event kinds it no longer subscribes to.
    pub events_removed: Vec<String>,
    /// Action kinds newly declared: not granted by the upgrade.
    pub actions_added: Vec<String>,
    /// Action kinds no longer declared (their grants go with them).
    pub actions_removed: Vec<String>,
    /// Settings added, removed or changed.
    pub settings: Vec<SettingChange>,
    /// Limit requests that differ.
    pub limits: Vec<LimitChange>,
    /// Imports the new component adds (`None`: the installed one could not be read).
    pub imports_added: Option<Vec<String>>,
    /// Imports it no longer has.
    pub imports_removed: Option<Vec<String>>,
    /// The contract version, when it changes.
    pub contract: Option<Change>,
    /// The signature's verdict and signer, when it changes.
    pub signer: Option<Change>,
    /// The component's sha256, when it changes.
    pub sha256: Option<Change>,
}

/// What the diff is computed from, for one side.
pub struct Side<'a> {
    /// Its manifest.
    pub manifest: &'a Manifest,
    /// Its component's imports (`None`: unknown).
    pub imports: Option<&'a [String]>,
    /// Its signature, in words (`SignatureCheck::summary`).
    pub signature: String,
    /// Its component's sha256.
    pub sha256: &'a str,
}

/// Compares the installed plugin with the new version; `granted` is the
/// limit grant the upgrade leaves in place.
pub fn diff(
    installed: &Side<'_>,
    new: &Side<'_>,
    granted: &crate::manifest::LimitRequest,
    defaults: &Limits,
) -> UpgradeDiff {
    let (old, newm) = (installed.manifest, new.manifest);
    let (events_added, events_removed) = added_removed(&old.events, &newm.events);
    let (actions_added, actions_removed) = added_removed(&old.actions, &newm.actions);
    let held: Vec<HeldLimit> = grants::held(&newm.limits, granted, defaults);
    let before = grants::fields(&old.limits);
    let after = grants::fields(&newm.limits);
    let limits = (0..LIMIT_NAMES.len())
        .filter(|&i| before[i] != after[i])
        .map(|i| LimitChange {
            limit: LIMIT_NAMES[i].to_owned(),
            before: before[i],
            after: after[i],
            held_at: held
                .iter()
                .find(|h| h.limit == LIMIT_NAMES[i])
                .map(|h| h.in_force),
        })
        .collect();
    let (imports_added, imports_removed) = match (installed.imports, new.imports) {
        (Some(a), Some(b)) => {
            let (added, removed) = added_removed(a, b);
            (Some(added), Some(removed))
        }
        _ => (None, None),
    };
    let change = |before: &str, after: &str| {
        (before != after).then(|| Change {
            before: before.to_owned(),
            after: after.to_owned(),
        })
    };
    UpgradeDiff {
        plugin: newm.name.clone(),
        version: Change {
            before: old.version.clone(),
            after: newm.version.clone(),
        },
        order: order(&old.version, &newm.version),
        events_added,
        events_removed,
        actions_added,
        actions_removed,
        settings: settings(old, newm),
        limits,
        imports_added,
        imports_removed,
        contract: change(&old.wit, &newm.wit),
        signer: change(&installed.signature, &new.signature),
        sha256: change(installed.sha256, new.sha256),
    }
}

/// What `b` has that `a` has not, and what `a` has that `b` has not.
fn added_removed(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    (
        b.difference(&a).map(|s| s.to_string()).collect(),
        a.difference(&b).map(|s| s.to_string()).collect(),
    )
}

fn settings(old: &Manifest, new: &Manifest) -> Vec<SettingChange> {
    let mut out = Vec::new();
    for (name, spec) in &new.settings {
        match old.settings.get(name) {
            None => out.push(SettingChange {
                name: name.clone(),
                change: "added",
                detail: setting_said(spec),
            }),
            Some(before) if before != spec => out.push(SettingChange {
                name: name.clone(),
                change: "changed",
                detail: format!("{} (was {})", setting_said(spec), setting_said(before)),
            }),
            Some(_) => {}
        }
    }
    for (name, spec) in &old.settings {
        if !new.settings.contains_key(name) {
            out.push(SettingChange {
                name: name.clone(),
                change: "removed",
                detail: setting_said(spec),
            });
        }
    }
    out
}

fn setting_said(s: &SettingSpec) -> String {
    let mut out = match (&s.default, s.required) {
        (_, true) => "required".to_owned(),
        (Some(d), _) => format!("optional, default {d:?}"),
        (None, false) => "optional".to_owned(),
    };
    if s.confluence_template {
        out.push_str(", names a Confluence template the host reads for it");
    }
    out.push_str(&format!(": {}", s.description));
    out
}

impl UpgradeDiff {
    /// Whether it is a downgrade.
    pub fn is_downgrade(&self) -> bool {
        self.order == VersionOrder::Downgrade
    }

    /// The new capabilities the upgrade left ungranted, in words (empty:
    /// none). `granted_actions` is what the plugin holds after the upgrade.
    pub fn not_granted(&self, granted_actions: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self
            .actions_added
            .iter()
            .filter(|a| !granted_actions.contains(a))
            .map(|a| format!("action {a}"))
            .collect();
        for l in &self.limits {
            if let (Some(after), Some(held)) = (l.after, l.held_at) {
                out.push(format!("{} {after} (runs with {held})", l.limit));
            }
        }
        for s in self.settings.iter().filter(|s| s.change == "added") {
            out.push(format!("setting {} (no binding sets it)", s.name));
        }
        out
    }

    /// The diff as lines for the CLI (no trailing newlines).
    pub fn lines(&self, granted_actions: &[String]) -> Vec<String> {
        let mut out = vec![format!(
            "{} {} -> {} ({})",
            self.plugin,
            self.version.before,
            self.version.after,
            match self.order {
                VersionOrder::Upgrade => "upgrade",
                VersionOrder::Same => "same version",
                VersionOrder::Downgrade => "DOWNGRADE",
                VersionOrder::Unordered => "versions not comparable",
            }
        )];
        let list = |v: &[String]| v.join(", ");
        if !self.events_added.is_empty() {
            out.push(format!("  + events    {}", list(&self.events_added)));
        }
        if !self.events_removed.is_empty() {
            out.push(format!("  - events    {}", list(&self.events_removed)));
        }
        for a in &self.actions_added {
            let granted = if granted_actions.contains(a) {
                "granted explicitly"
            } else {
                "NOT granted: `pagehook plugin grant` to allow it"
            };
            out.push(format!("  + action    {a} ({granted})"));
        }
        for a in &self.actions_removed {
            out.push(format!(
                "  - action    {a} (no longer declared; its grant is dropped)"
            ));
        }
        for s in &self.settings {
            let sign = match s.change {
                "added" => "+",
                "removed" => "-",
                _ => "~",
            };
            let note = if s.change == "added" {
                " — no binding sets it: the upgrade gives it no value"
            } else {
                ""
            };
            out.push(format!("  {sign} setting   {}: {}{note}", s.name, s.detail));
        }
        let shown = |v: Option<u64>| v.map_or("default".to_owned(), |v| v.to_string());
        for l in &self.limits {
            let held = match l.held_at {
                Some(h) => format!(
                    " (NOT granted: runs with {h} until `pagehook plugin grant {} --limits`)",
                    self.plugin
                ),
                None => String::new(),
            };
            out.push(format!(
                "  ~ limit     {} {} -> {}{held}",
                l.limit,
                shown(l.before),
                shown(l.after)
            ));
        }
        match (&self.imports_added, &self.imports_removed) {
            (Some(added), Some(removed)) => {
                for i in added {
                    out.push(format!("  + import    {i}"));
                }
                for i in removed {
                    out.push(format!("  - import    {i}"));
                }
            }
            _ => out
                .push("  ? imports   the installed component could not be read to compare".into()),
        }
        if let Some(c) = &self.contract {
            out.push(format!("  ~ contract  {} -> {}", c.before, c.after));
        }
        if let Some(c) = &self.signer {
            out.push(format!("  ~ signature {} -> {}", c.before, c.after));
        }
        if let Some(c) = &self.sha256 {
            out.push(format!(
                "  ~ sha256    {} -> {}",
                short(&c.before),
                short(&c.after)
            ));
        }
        if out.len() == 1 {
            out.push("  no change".into());
        }
        out
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::LimitRequest;

    const V1: &str = r#"name = "hello"
version = "1.0.0"
description = "d"
wit = "0.1.0"
component = "hello.wasm"
events = ["page-created"]
actions = ["post-slack"]
[settings.channel]
description = "where"
required = true
"#;

    fn v2() -> String {
        V1.replace("1.0.0", "1.1.0")
            .replace("[\"post-slack\"]", "[\"post-slack\", \"dm-slack\"]")
            + "[settings.greeting]\ndescription = \"words\"\ndefault = \"Hi\"\n[limits]\nmemory-mib = 64\n"
    }

    #[test]
    fn versions_compare_by_semver_then_numbers() {
        assert_eq!(order("1.0.0", "1.1.0"), VersionOrder::Upgrade);
        assert_eq!(order("1.10.0", "1.9.0"), VersionOrder::Downgrade);
        assert_eq!(order("1.0.0", "1.0.0"), VersionOrder::Same);
        assert_eq!(order("1.0.0-rc.1", "1.0.0"), VersionOrder::Upgrade);
        assert_eq!(order("2024.10", "2024.9"), VersionOrder::Downgrade);
        assert_eq!(order("alpha", "beta"), VersionOrder::Unordered);
    }

    #[test]
    fn an_upgrade_adding_an_action_a_setting_and_memory_shows_all_three_ungranted() {
        let (a, b) = (
            Manifest::parse(V1).unwrap(),
            Manifest::parse(&v2()).unwrap(),
        );
        let imports = vec!["pagehook:plugin/log@0.1.0".to_string()];
        let side = |m, sig: &str, sha| Side {
            manifest: m,
            imports: Some(&imports),
            signature: sig.into(),
            sha256: sha,
        };
        let d = diff(
            &side(&a, "unsigned", "aa"),
            &side(&b, "verified: signed by `acme`", "bb"),
            &LimitRequest::default(),
            &Limits::default(),
        );
        assert_eq!(d.order, VersionOrder::Upgrade);
        assert_eq!(d.actions_added, vec!["dm-slack"]);
        assert_eq!(d.settings.len(), 1);
        assert_eq!(d.settings[0].name, "greeting");
        assert_eq!(
            d.limits,
            vec![LimitChange {
                limit: "memory-mib".into(),
                before: None,
                after: Some(64),
                held_at: Some(32),
            }]
        );
        assert_eq!(
            d.not_granted(&["post-slack".into()]),
            vec![
                "action dm-slack",
                "memory-mib 64 (runs with 32)",
                "setting greeting (no binding sets it)"
            ]
        );
        let text = d.lines(&["post-slack".into()]).join("\n");
        for expected in [
            "hello 1.0.0 -> 1.1.0 (upgrade)",
            "+ action    dm-slack (NOT granted",
            "+ setting   greeting: optional, default \"Hi\": words",
            "~ limit     memory-mib default -> 64 (NOT granted: runs with 32",
            "~ signature unsigned -> verified: signed by `acme`",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
        // Once the request is granted, nothing is held.
        let granted = LimitRequest {
            memory_mib: Some(64),
            ..LimitRequest::default()
        };
        let d = diff(
            &side(&a, "", "aa"),
            &side(&b, "", "aa"),
            &granted,
            &Limits::default(),
        );
        assert_eq!(d.limits[0].held_at, None);
        assert_eq!(d.signer, None);
        assert_eq!(d.sha256, None);
    }

    #[test]
    fn an_upgrade_to_a_new_contract_with_other_imports_says_so() {
        let a = Manifest::parse(V1).unwrap();
        let newer = V1
            .replace("1.0.0", "2.0.0")
            .replace("wit = \"0.1.0\"", "wit = \"0.3.0\"");
        let b = Manifest::parse(&newer).unwrap();
        let before = vec!["pagehook:plugin/log@0.1.0".to_string()];
        let after = vec![
            "pagehook:plugin/confluence@0.3.0".to_string(),
            "pagehook:plugin/log@0.3.0".to_string(),
        ];
        let d = diff(
            &Side {
                manifest: &a,
                imports: Some(&before),
                signature: "verified: signed by `acme`".into(),
                sha256: "aa",
            },
            &Side {
                manifest: &b,
                imports: Some(&after),
                signature: "verified: signed by `acme-2027`".into(),
                sha256: "bb",
            },
            &LimitRequest::default(),
            &Limits::default(),
        );
        assert_eq!(d.imports_added.as_deref(), Some(&after[..]));
        assert_eq!(d.imports_removed.as_deref(), Some(&before[..]));
        let contract = d.contract.as_ref().expect("the contract changed");
        assert_eq!(
            (contract.before.as_str(), contract.after.as_str()),
            ("0.1.0", "0.3.0")
        );
        let text = d.lines(&["post-slack".into()]).join("\n");
        for expected in [
            "~ contract  0.1.0 -> 0.3.0",
            "+ import    pagehook:plugin/confluence@0.3.0",
            "- import    pagehook:plugin/log@0.1.0",
            "~ signature verified: signed by `acme` -> verified: signed by `acme-2027`",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
    }
}
