//! Confluence page templates as plugin settings.
//!
//! A manifest setting marked `confluence-template = true` names a page
//! template of a Confluence space; retro-writer, for one, writes its pages
//! from such a template. Plugins never reach the network, so the host reads
//! the template and hands the plugin its storage-format body as the
//! setting's value: the binding keeps the template's *name*, the plugin
//! sees its current *body*.
//!
//! A setting's value is `KEY:Template name`, or just `Template name` when
//! the binding is scoped to one space (that space). Text before the first
//! `:` that could be a space key is taken as one, so a template whose name
//! has a colon is written with its space (`ENG:Retro: long form`). Templates are read with
//! `GET /rest/experimental/template/page?spaceKey=KEY&expand=body` (Data
//! Center's content template resource: a space's page templates, paged,
//! each with `name` and, expanded, `body.storage`).
//!
//! - **When a binding is saved** ([`check_settings`], from `ops::bindings::bind`,
//!   so on every bind of the plugin, and a changed binding is saved by
//!   binding again): the template is read fresh; one
//!   that does not exist is an error that names the space's templates, and
//!   nothing is saved. Confluence unreachable then is an error too (the name
//!   cannot be checked).
//! - **At dispatch** ([`Templates::body`], through enrichment's
//!   `template_settings::fill`): the body is cached for the enrichment TTL
//!   and read again when older, so an edited template is picked up. When
//!   Confluence cannot be reached (network, 5xx, 429, refused credentials)
//!   the last known body is used; when none is known the call fails with
//!   [`TemplateError::Unavailable`], and when the template was deleted,
//!   with [`TemplateError::NotFound`].
//!
//! `/rest/experimental/template/page` is not in Data Center's REST
//! reference (its shape is known from code that runs against Data Center),
//! so an instance may not serve it. When it answers 404 and the space is
//! there (`GET /rest/api/space?spaceKey=`), the instance does not serve
//! page templates: [`TemplateError::NotServed`], which refuses the binding
//! when it is saved and fails the binding's call at dispatch with that
//! message (recorded as a `template` failure) instead of waiting for
//! something that will not come.
//!
//! What it must never do: hand a plugin anything but the body of the
//! template the binding names, or put credentials in an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{ClientOptions, ConfluenceAuth, ConfluenceClient};
use crate::manifest::Manifest;
use crate::store::{ConnectionKind, ConnectionRecord};

/// Most templates remembered per source.
const CAP: usize = 1_000;

/// Why a template's body cannot be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The setting's value does not say which template.
    #[error("{0}")]
    Invalid(String),
    /// The space has no template by that name (or the space is not there).
    #[error("{0}")]
    NotFound(String),
    /// This Confluence does not serve page templates at all.
    #[error("{0}")]
    NotServed(String),
    /// Confluence cannot be asked now and no body is known.
    #[error("{message}")]
    Unavailable {
        /// What went wrong.
        message: String,
        /// How long Confluence asked to wait, when it said.
        retry_after: Option<Duration>,
    },
}

/// The space and name a template setting's `value` names; `scope_space` is
/// the binding's space when it is scoped to one.
pub fn template_ref(value: &str, scope_space: Option<&str>) -> Result<(String, String), String> {
    let value = value.trim();
    let (space, name) = match value.split_once(':') {
        Some((space, name)) if is_space_key(space) => (space.to_owned(), name.trim().to_owned()),
        _ => match scope_space {
            Some(space) => (space.to_owned(), value.to_owned()),
            None => {
                return Err(format!(
                    "template `{value}`: say which space it is in, as KEY:Template name (the binding is not scoped to one space)"
                ));
            }
        },
    };
    if name.is_empty() {
        return Err(format!("template setting `{value}` names no template"));
    }
    Ok((space, name))
}

/// Confluence space keys: ASCII letters and digits; personal spaces `~user`.
fn is_space_key(s: &str) -> bool {
    let key = s.strip_prefix('~').unwrap_or(s);
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || (s.starts_with('~') && ".-_@".contains(c)))
}

/// Reads template `name` of `space` now: its storage body, or why not.
pub async fn check(
    client: &ConfluenceClient,
    space: &str,
    name: &str,
) -> Result<String, TemplateError> {
    let templates = match client.page_templates(space).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(match client.space_exists(space).await {
                Ok(true) => TemplateError::NotServed(not_served(space)),
                Ok(false) => TemplateError::NotFound(format!(
                    "Confluence space `{space}` does not exist (or Pagehook's account may not see it), so it has no template `{name}`"
                )),
                Err(e) => TemplateError::Unavailable {
                    retry_after: e.retry_after(),
                    message: format!(
                        "reading the templates of space `{space}` answered 404, and whether the space exists cannot be told: {e}"
                    ),
                },
            });
        }
        Err(e) => {
            return Err(TemplateError::Unavailable {
                retry_after: e.retry_after(),
                message: format!("reading the templates of space `{space}`: {e}"),
            });
        }
    };
    let named = |t: &&Value| t.get("name").and_then(Value::as_str) == Some(name);
    let found = templates.iter().find(named).or_else(|| {
        let mut same = templates.iter().filter(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
        match (same.next(), same.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    });
    let Some(template) = found else {
        let names: Vec<&str> = templates
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .collect();
        return Err(TemplateError::NotFound(format!(
            "space `{space}` has no page template `{name}` (its templates: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    template
        .pointer("/body/storage/value")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TemplateError::Unavailable {
            message: format!(
                "Confluence answered template `{name}` of space `{space}` without its body"
            ),
            retry_after: None,
        })
}

/// What the admin reads when the instance has no template resource.
fn not_served(space: &str) -> String {
    format!(
        "this Confluence does not serve page templates (GET /rest/experimental/template/page answered 404 for space `{space}`, which exists; that resource is not part of Data Center's REST reference and is missing on this instance): clear the setting so the plugin uses its own template"
    )
}

/// Template bodies of one Confluence source, cached for a TTL.
pub struct Templates {
    ttl: Duration,
    /// (space, name) → (read at, body).
    bodies: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl Templates {
    /// Bodies kept fresh for `ttl`.
    pub fn new(ttl: Duration) -> Templates {
        Templates {
            ttl,
            bodies: Mutex::new(HashMap::new()),
        }
    }

    /// The current body of template `name` in `space` (see the module doc).
    pub async fn body(
        &self,
        client: &ConfluenceClient,
        space: &str,
        name: &str,
    ) -> Result<String, TemplateError> {
        let key = (space.to_owned(), name.to_owned());
        let known = self
            .bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some((at, body)) = &known
            && at.elapsed() < self.ttl
        {
            return Ok(body.clone());
        }
        match check(client, space, name).await {
            Ok(body) => {
                let mut bodies = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
                if bodies.len() >= CAP {
                    bodies.clear();
                }
                bodies.insert(key, (Instant::now(), body.clone()));
                Ok(body)
            }
            Err(TemplateError::Unavailable { message, .. }) if known.is_some() => {
                tracing::warn!(
                    space,
                    template = name,
                    "{message}; using the template as last read"
                );
                Ok(known.map(|(_, b)| b).unwrap_or_default())
            }
            Err(e) => Err(e),
        }
    }
}

/// The check made when a binding is saved: every template setting in
/// `settings` (resolved, defaults included) names a template that exists,
/// read with the credentials of the binding's Confluence connection
/// (`source`, or else the only Confluence connection with a token). `Err`
/// says what is wrong, for the admin; nothing is saved then.
pub async fn check_settings(
    manifest: &Manifest,
    scope_space: Option<&str>,
    settings: &[(String, String)],
    connections: &[ConnectionRecord],
    source: Option<&str>,
) -> Result<(), String> {
    let named: Vec<(&String, &String)> = settings
        .iter()
        .filter(|(name, value)| {
            !value.trim().is_empty()
                && manifest
                    .settings
                    .get(name)
                    .is_some_and(|s| s.confluence_template)
        })
        .map(|(n, v)| (n, v))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let readable: Vec<&ConnectionRecord> = connections
        .iter()
        .filter(|c| c.kind == ConnectionKind::Confluence)
        .filter(|c| source.is_none_or(|s| c.name == s))
        .filter(|c| !matches!(ConfluenceAuth::of(c), Ok(None)))
        .collect();
    let conn = match readable.as_slice() {
        [only] => *only,
        [] => {
            return Err(format!(
                "setting `{}` names a Confluence page template, and Pagehook reads it with a Confluence connection's token: {}",
                named[0].0,
                match source {
                    Some(s) => format!("connection `{s}` has none"),
                    None => "no Confluence connection has one".to_owned(),
                }
            ));
        }
        several => {
            let names: Vec<&str> = several.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "setting `{}` names a Confluence page template: say which Confluence connection it is in with --source ({})",
                named[0].0,
                names.join(", ")
            ));
        }
    };
    let auth = ConfluenceAuth::of(conn)?.ok_or("the connection has no token")?;
    let client = ConfluenceClient::new(
        &conn.url,
        auth,
        ClientOptions {
            proxy: conn.proxy.clone(),
            ..ClientOptions::default()
        },
    );
    for (name, value) in named {
        let (space, template) = template_ref(value, scope_space)?;
        check(&client, &space, &template)
            .await
            .map_err(|e| format!("setting `{name}`: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_instance_without_the_template_resource_says_so() {
        use pagehook_fakes::{ConfluenceAuth as FakeAuth, FakeConfluence};
        let fake = FakeConfluence::start(FakeAuth::Bearer("tpl-pat".into()));
        fake.put_template("ENG", "Retro", "<p>retro</p>");
        let client = ConfluenceClient::new(
            &fake.base_url(),
            ConfluenceAuth::Bearer(crate::secret::Secret::new("tpl-pat")),
            ClientOptions::default(),
        );
        assert_eq!(
            check(&client, "ENG", "Retro").await,
            Ok("<p>retro</p>".into())
        );
        fake.set_page_templates_available(false);
        let err = check(&client, "ENG", "Retro").await.unwrap_err();
        assert!(
            matches!(&err, TemplateError::NotServed(m) if m.starts_with("this Confluence does not serve page templates")),
            "{err:?}"
        );
        let err = check(&client, "NOPE", "Retro").await.unwrap_err();
        assert!(
            matches!(&err, TemplateError::NotFound(m) if m.contains("`NOPE` does not exist")),
            "{err:?}"
        );
    }

    #[test]
    fn a_template_setting_names_its_space_or_takes_the_bindings() {
        assert_eq!(
            template_ref("ENG:Retrospective", None),
            Ok(("ENG".into(), "Retrospective".into()))
        );
        assert_eq!(
            template_ref("  OPS:Retro: the long one ", Some("ENG")),
            Ok(("OPS".into(), "Retro: the long one".into()))
        );
        assert_eq!(
            template_ref("Sprint review", Some("ENG")),
            Ok(("ENG".into(), "Sprint review".into()))
        );
        assert_eq!(
            template_ref("Q3 review: notes", Some("ENG")),
            Ok(("ENG".into(), "Q3 review: notes".into())),
            "`Q3 review` is no space key"
        );
        assert_eq!(
            template_ref("~ada:Notes", None),
            Ok(("~ada".into(), "Notes".into()))
        );
        assert!(template_ref("Retrospective", None).is_err());
        assert!(template_ref("ENG:", None).is_err());
    }
}
