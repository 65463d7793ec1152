//! Bindings: which plugin runs on which events, where its actions may go,
//! and with which settings; how they are stored (the same SQL on both
//! backends). Bindings arrive validated; nothing here judges them.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::sql::{Column, FromRow, Row, parsed};
use super::{Store, StoreError, StoreResult, json, now_ms};
use crate::model::Event;

/// Where in Confluence a binding applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every space.
    Global,
    /// One space, by key.
    Space(String),
    /// A page and everything under it (child pages, their comments).
    Page(u64),
}

impl Scope {
    /// Whether `event`'s content falls inside this scope. Events without
    /// content (space events, unknown kinds) match only the global scope.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Scope::Global => true,
            Scope::Space(key) => event.content.as_ref().is_some_and(|c| &c.space_key == key),
            Scope::Page(id) => event.content.as_ref().is_some_and(|c| {
                c.id == *id
                    || c.container_id == Some(*id)
                    || c.ancestors.iter().any(|a| a.id == *id)
            }),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Space(key) => write!(f, "space:{key}"),
            Scope::Page(id) => write!(f, "page:{id}"),
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        match s.split_once(':') {
            None if s == "global" => Ok(Scope::Global),
            Some(("space", key)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                Ok(Scope::Space(key.to_owned()))
            }
            Some(("page", id)) => id
                .parse()
                .map(Scope::Page)
                .map_err(|_| format!("`{s}`: a page scope is page:<numeric page id>")),
            _ => Err(format!(
                "`{s}`: a scope is global, space:<KEY> or page:<ID>"
            )),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A binding as the admin creates it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBinding {
    /// The installed plugin to run.
    pub plugin: String,
    /// Only events from this Confluence connection; `None` for every source.
    pub source: Option<String>,
    /// Where in Confluence.
    pub scope: Scope,
    /// Event kinds (WIT names) it runs on; empty means the manifest's.
    pub events: Vec<String>,
    /// Destinations its actions may use (see `dispatch::destination`).
    pub destinations: Vec<String>,
    /// Settings passed to the plugin.
    pub settings: Vec<(String, String)>,
    /// Its deliveries are recorded, never sent.
    pub dry_run: bool,
}

/// A stored binding.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Binding {
    /// Its id, for `unbind`.
    pub id: i64,
    /// The plugin it runs.
    pub plugin: String,
    /// Only events from this source, if set.
    pub source: Option<String>,
    /// Where in Confluence.
    #[schema(value_type = String, example = "space:ENG")]
    pub scope: Scope,
    /// Event kinds it runs on.
    pub events: Vec<String>,
    /// Allowed destinations.
    pub destinations: Vec<String>,
    /// Settings given to the plugin.
    pub settings: Vec<(String, String)>,
    /// Deliveries recorded, never sent.
    pub dry_run: bool,
    /// When it was created.
    pub created_at: i64,
}

impl Binding {
    /// Whether this binding runs on an event of this source and kind.
    pub fn wants(&self, event: &Event) -> bool {
        self.source.as_ref().is_none_or(|s| s == &event.source)
            && self
                .events
                .iter()
                .any(|e| e == "*" || e == event.kind.name())
            && self.scope.matches(event)
    }
}

impl Column for Scope {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<Scope>> {
        parsed(row, column, "binding scope", str::parse)
    }
}

impl FromRow for Binding {
    const COLUMNS: &'static str =
        "id, plugin, source, scope, events, destinations, settings, dry_run, created_at";

    fn from_row(r: &dyn Row) -> StoreResult<Binding> {
        Ok(Binding {
            id: r.get("id")?,
            plugin: r.get("plugin")?,
            source: r.get("source")?,
            scope: r.get("scope")?,
            events: r.json("events", "binding events")?,
            destinations: r.json("destinations", "binding destinations")?,
            settings: r.json("settings", "binding settings")?,
            dry_run: r.get("dry_run")?,
            created_at: r.get("created_at")?,
        })
    }
}

impl Store {
    /// Stores a binding (already validated by the caller) and returns it.
    pub async fn add_binding(&self, b: &NewBinding) -> StoreResult<Binding> {
        let created_at = now_ms();
        let id = self
            .query(
                "INSERT INTO bindings (plugin, source, scope, events, destinations, settings, dry_run, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                vec![
                    (&b.plugin).into(),
                    (&b.source).into(),
                    b.scope.to_string().into(),
                    json(&b.events).into(),
                    json(&b.destinations).into(),
                    json(&b.settings).into(),
                    b.dry_run.into(),
                    created_at.into(),
                ],
                |r| r.get::<i64>("id"),
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt {
                what: "binding id",
                message: "the insert returned no id".into(),
            })?;
        Ok(Binding {
            id,
            plugin: b.plugin.clone(),
            source: b.source.clone(),
            scope: b.scope.clone(),
            events: b.events.clone(),
            destinations: b.destinations.clone(),
            settings: b.settings.clone(),
            dry_run: b.dry_run,
            created_at,
        })
    }

    /// Every binding, oldest first; `plugin` narrows to one plugin's.
    pub async fn bindings(&self, plugin: Option<&str>) -> StoreResult<Vec<Binding>> {
        self.select(
            "FROM bindings WHERE CAST(?1 AS TEXT) IS NULL OR plugin = ?1 ORDER BY id",
            vec![plugin.into()],
        )
        .await
    }

    /// The binding with this id.
    pub async fn binding(&self, id: i64) -> StoreResult<Option<Binding>> {
        self.select_opt("FROM bindings WHERE id = ?1", vec![id.into()])
            .await
    }

    /// Names `workspace` in every Slack destination that names none, so
    /// bindings made while there was one Slack workspace keep meaning it
    /// once a second is connected. Returns how many bindings changed. Each
    /// is rewritten only if its destinations are still those read, so a
    /// change made meanwhile (by another replica) is never overwritten.
    pub async fn qualify_slack_destinations(&self, workspace: &str) -> StoreResult<usize> {
        let mut rewrites = Vec::new();
        for b in self.bindings(None).await? {
            let qualified: Vec<String> = b
                .destinations
                .iter()
                .map(|d| match d.parse::<crate::destination::Destination>() {
                    Ok(dest) => dest.in_workspace(workspace).to_string(),
                    Err(_) => d.clone(),
                })
                .collect();
            if qualified != b.destinations {
                rewrites.push((
                    "UPDATE bindings SET destinations = ?2 WHERE id = ?1 AND destinations = ?3",
                    vec![
                        b.id.into(),
                        json(&qualified).into(),
                        json(&b.destinations).into(),
                    ],
                ));
            }
        }
        let changed = self.execute_all(rewrites).await?;
        Ok(changed.into_iter().filter(|&n| n > 0).count())
    }

    /// Deletes a binding.
    pub async fn remove_binding(&self, id: i64) -> StoreResult<()> {
        let n = self
            .execute("DELETE FROM bindings WHERE id = ?1", vec![id.into()])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no binding with id {id} (see `pagehook bindings`)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Ancestor, Content, EventKind};

    fn event(space: &str, id: u64, ancestors: &[u64], container: Option<u64>) -> Event {
        Event {
            id: "e".into(),
            kind: EventKind::PageCreated,
            name: "page_created".into(),
            occurred_at_ms: 0,
            source: "prod".into(),
            actor: None,
            by_pagehook: false,
            content: Some(Content {
                id,
                content_type: "page".into(),
                title: "t".into(),
                space_key: space.into(),
                space_name: None,
                url: String::new(),
                version: 1,
                minor_edit: false,
                version_message: None,
                labels: vec![],
                ancestors: ancestors
                    .iter()
                    .map(|&id| Ancestor {
                        id,
                        title: String::new(),
                    })
                    .collect(),
                restricted: false,
                container_id: container,
                excerpt: None,
            }),
            update_trigger: None,
            label: None,
            enriched: true,
            people: vec![],
            chat: None,
        }
    }

    #[test]
    fn scopes_parse_print_and_match() {
        for s in ["global", "space:ENG", "page:42"] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        assert!("space:".parse::<Scope>().is_err());
        assert!("page:abc".parse::<Scope>().unwrap_err().contains("numeric"));
        assert!("team:x".parse::<Scope>().is_err());

        let page = Scope::Page(42);
        assert!(page.matches(&event("ENG", 42, &[], None)));
        assert!(page.matches(&event("ENG", 7, &[1, 42], None)), "descendant");
        assert!(
            page.matches(&event("ENG", 9, &[], Some(42))),
            "comment on it"
        );
        assert!(!page.matches(&event("ENG", 7, &[1, 2], None)));
        assert!(Scope::Space("ENG".into()).matches(&event("ENG", 1, &[], None)));
        assert!(!Scope::Space("ENG".into()).matches(&event("OPS", 1, &[], None)));
        let mut no_content = event("ENG", 1, &[], None);
        no_content.content = None;
        assert!(Scope::Global.matches(&no_content));
        assert!(!Scope::Space("ENG".into()).matches(&no_content));
    }
}
