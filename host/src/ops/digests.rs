//! A binding's digest settings: on or off, threshold, window (see
//! [`crate::digest`]), and what each binding is collecting now. Changed
//! here for the CLI, the API and the console alike, with a change-log line;
//! a value out of range is refused whole, naming the setting, and changes
//! nothing.

use serde::Serialize;
use serde_json::json;

use crate::digest::rules::Collecting;
use crate::store::{DigestSettings, Store};

use super::changes::{ChangeAction, log_change};
use super::{AdminError, AdminResult};

/// A change to a binding's digest settings: each field that is `Some`
/// replaces the current value; `defaults` first puts every value back to
/// its default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestChange {
    /// Digests on or off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// More than this many events of one space within the window are a
    /// burst (1 to 10000).
    #[serde(default, deserialize_with = "whole_number")]
    pub threshold: Option<u32>,
    /// The window, in seconds (1 to 86400).
    #[serde(default, deserialize_with = "whole_number")]
    pub window_secs: Option<u32>,
    /// Start from the defaults (on, 20 events, 300 s).
    #[serde(default)]
    pub defaults: bool,
}

/// A count that JSON may write as `20` or `20.0` (JSON Schema's `integer`
/// takes both): anything with a fraction, negative or beyond `u32` is
/// refused naming the value.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::Deserialize as _;
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(v) = n.as_u64() {
        return u32::try_from(v)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{n} is too large")));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&f) => Ok(Some(f as u32)),
        _ => Err(D::Error::custom(format!(
            "expected a whole number of at least 0, got {n}"
        ))),
    }
}

/// One binding's digest settings and what it is collecting.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BindingDigest {
    /// The binding.
    pub binding_id: i64,
    /// Its plugin.
    pub plugin: String,
    /// Its settings.
    pub settings: DigestSettings,
    /// Whether they are the defaults.
    pub default: bool,
    /// Whether its plugin takes digests (`digests = true` in its manifest);
    /// if not, the settings have no effect and every event is its own call.
    pub plugin_takes_digests: bool,
    /// Bursts it is collecting now, one per space.
    pub collecting: Vec<Collecting>,
}

/// Changes binding `id`'s digest settings; returns them as they now are.
pub async fn set(
    store: &Store,
    actor: &str,
    id: i64,
    change: &DigestChange,
) -> AdminResult<DigestSettings> {
    if store.binding(id).await?.is_none() {
        return Err(AdminError::NotFound(format!(
            "no binding with id {id} (see `pagehook bindings`)"
        )));
    }
    let current = if change.defaults {
        DigestSettings::default()
    } else {
        settings_of(store, id).await?
    };
    let new = DigestSettings {
        enabled: change.enabled.unwrap_or(current.enabled),
        threshold: change.threshold.unwrap_or(current.threshold),
        window_secs: change.window_secs.unwrap_or(current.window_secs),
    };
    new.check().map_err(AdminError::Invalid)?;
    let stored = (new != DigestSettings::default()).then_some(new);
    store.set_digest_settings(id, stored).await?;
    log_change(
        store,
        actor,
        ChangeAction::BindingDigest,
        &format!("binding {id}"),
        json!({
            "enabled": new.enabled,
            "threshold": new.threshold,
            "window_secs": new.window_secs,
        }),
    )
    .await;
    Ok(new)
}

/// One binding's digest settings (the defaults unless changed).
pub async fn settings_of(store: &Store, id: i64) -> AdminResult<DigestSettings> {
    Ok(store
        .digest_settings()
        .await?
        .into_iter()
        .find(|(b, _)| *b == id)
        .map(|(_, s)| s)
        .unwrap_or_default())
}

/// Every binding's digest settings and bursts, in binding order (only
/// `binding` when given).
pub async fn list(store: &Store, binding: Option<i64>) -> AdminResult<Vec<BindingDigest>> {
    let settings: std::collections::HashMap<i64, DigestSettings> =
        store.digest_settings().await?.into_iter().collect();
    let plugins: std::collections::HashMap<String, bool> = store
        .plugins()
        .await?
        .into_iter()
        .map(|p| (p.name, p.manifest.digests))
        .collect();
    let collecting = crate::digest::collecting(store).await?;
    let mut out = Vec::new();
    for b in store.bindings(None).await? {
        if binding.is_some_and(|id| id != b.id) {
            continue;
        }
        let s = settings.get(&b.id).copied();
        out.push(BindingDigest {
            binding_id: b.id,
            plugin_takes_digests: plugins.get(&b.plugin).copied().unwrap_or(false),
            plugin: b.plugin,
            settings: s.unwrap_or_default(),
            default: s.is_none(),
            collecting: collecting
                .iter()
                .filter(|c| c.binding_id == b.id)
                .cloned()
                .collect(),
        });
    }
    if let Some(id) = binding
        && out.is_empty()
    {
        return Err(AdminError::NotFound(format!(
            "no binding with id {id} (see `pagehook bindings`)"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::DigestChange;

    fn parse(body: &str) -> Result<DigestChange, String> {
        serde_json::from_str(body).map_err(|e| e.to_string())
    }

    #[test]
    fn counts_are_whole_numbers_however_json_writes_them() {
        let c = parse(r#"{"threshold": 19169.0, "window_secs": 60}"#).unwrap();
        assert_eq!((c.threshold, c.window_secs), (Some(19169), Some(60)));
        assert_eq!(parse(r#"{"threshold": null}"#).unwrap().threshold, None);
        assert_eq!(parse("{}").unwrap(), DigestChange::default());
        for bad in ["2.5", "-1", "4294967296", "1e20", "\"20\""] {
            let e = parse(&format!(r#"{{"threshold": {bad}}}"#)).unwrap_err();
            assert!(!e.is_empty(), "{bad} accepted");
        }
    }
}
