//! A binding's settings as its plugin sees them: a setting that names a
//! Confluence page template (`confluence-template = true` in the manifest)
//! is handed over as the template's current storage body, read through the
//! binding's [`Enricher`] (see [`crate::confluence::templates`] for how a
//! template is named, read and cached).
//!
//! It lives in enrichment, not in `confluence/`, because it decides what a
//! plugin sees and needs an [`Enricher`]; `confluence/` never imports
//! enrichment. It must never hand a plugin anything but the body of the
//! template the setting names, nor put credentials in an error.

use super::Enricher;
use crate::confluence::templates::{TemplateError, template_ref};
use crate::manifest::Manifest;

/// `settings` (resolved from a binding) with every template setting's value
/// replaced by its template's body, read through `enricher` (the binding's
/// Confluence source; `None`: it has no REST credentials).
pub async fn fill(
    manifest: &Manifest,
    scope_space: Option<&str>,
    settings: Vec<(String, String)>,
    enricher: Option<&Enricher>,
) -> Result<Vec<(String, String)>, TemplateError> {
    let mut out = Vec::with_capacity(settings.len());
    for (name, value) in settings {
        let is_template = manifest
            .settings
            .get(&name)
            .is_some_and(|s| s.confluence_template);
        if !is_template || value.trim().is_empty() {
            out.push((name, value));
            continue;
        }
        let (space, template) =
            template_ref(&value, scope_space).map_err(TemplateError::Invalid)?;
        let Some(enricher) = enricher else {
            return Err(TemplateError::Unavailable {
                message: format!(
                    "setting `{name}` names Confluence template `{value}`, but the binding's Confluence connection has no token to read it with"
                ),
                retry_after: None,
            });
        };
        let body = enricher
            .template(&space, &template)
            .await
            .map_err(|e| match e {
                TemplateError::NotFound(m) => {
                    TemplateError::NotFound(format!("setting `{name}`: {m}"))
                }
                TemplateError::NotServed(m) => {
                    TemplateError::NotServed(format!("setting `{name}`: {m}"))
                }
                TemplateError::Unavailable {
                    message,
                    retry_after,
                } => TemplateError::Unavailable {
                    message: format!("setting `{name}`: {message}"),
                    retry_after,
                },
                other => other,
            })?;
        out.push((name, body));
    }
    Ok(out)
}
