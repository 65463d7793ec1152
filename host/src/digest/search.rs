//! The Confluence search a digest links to: its space, its content types,
//! since (a day before) its first event, and who, when one person did it
//! all. A superset rather than a miss: CQL dates are read in the searching
//! person's time zone, so the day before the first event is the bound.

use crate::model::Event;

/// `{base}/dosearchsite.action?cql=...` for `events` in `space_key`;
/// `None` when `base` is not an http(s) URL.
pub fn search_url(base: &str, space_key: &str, events: &[Event]) -> Option<String> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return None;
    }
    let cql = cql(space_key, events);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("cql", &cql)
        .finish();
    Some(format!("{base}/dosearchsite.action?{query}"))
}

/// The CQL of [`search_url`].
pub fn cql(space_key: &str, events: &[Event]) -> String {
    let mut clauses = vec![format!("space = {}", quoted(space_key))];
    let mut types: Vec<&str> = events
        .iter()
        .filter_map(|e| e.content.as_ref())
        .map(|c| c.content_type.as_str())
        .filter(|t| matches!(*t, "page" | "blogpost" | "comment" | "attachment"))
        .collect();
    types.sort_unstable();
    types.dedup();
    if !types.is_empty() {
        clauses.push(format!("type in ({})", types.join(", ")));
    }
    if let Some(first) = events
        .iter()
        .map(|e| e.occurred_at_ms)
        .filter(|t| *t > 0)
        .min()
    {
        clauses.push(format!("lastmodified >= \"{}\"", day_before(first)));
    }
    let mut people = events
        .iter()
        .map(|e| e.actor.as_ref().and_then(|a| a.username.as_deref()));
    if let Some(Some(one)) = people.next()
        && people.all(|p| p == Some(one))
    {
        clauses.push(format!("contributor = {}", quoted(one)));
    }
    clauses.join(" and ")
}

/// A CQL string literal.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `yyyy/MM/dd` (UTC) of the day before `ms`.
fn day_before(ms: u64) -> String {
    let seconds = (ms / 1000) as i64 - 86_400;
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!("{:04}/{:02}/{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => "1970/01/01".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(title: &str, by: &str, at: u64) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": format!("acme:{title}"), "kind": "page-created", "name": "page_created",
            "source": "acme", "occurred_at_ms": at,
            "actor": {"key": format!("k-{by}"), "username": by},
            "content": {"id": 1, "content_type": "page", "title": title, "space_key": "ENG",
                        "url": "https://wiki/x", "version": 1}
        }))
        .unwrap()
    }

    #[test]
    fn one_person_one_space_since_the_day_before() {
        // 2026-12-06T22:40:00Z
        let at = 1_796_596_800_000;
        let events = [created("a", "ada", at), created("b", "ada", at + 5_000)];
        assert_eq!(
            cql("ENG", &events),
            r#"space = "ENG" and type in (page) and lastmodified >= "2026/12/05" and contributor = "ada""#
        );
        let mixed = [created("a", "ada", at), created("b", "grace", at)];
        assert!(!cql("ENG", &mixed).contains("contributor"));
        let url = search_url("https://wiki.example.com/confluence/", "ENG", &events).unwrap();
        assert!(
            url.starts_with("https://wiki.example.com/confluence/dosearchsite.action?cql=space+%3D+%22ENG%22+and+type"),
            "{url}"
        );
        assert_eq!(search_url("javascript:alert(1)", "ENG", &events), None);
    }

    #[test]
    fn quotes_in_values_stay_inside_the_literal() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
