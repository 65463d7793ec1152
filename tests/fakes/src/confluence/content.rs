//! Reading content: by id, by title, by CQL, a page's comments and a space's templates,
//! collapsed by `expand` as Confluence does. It must never answer a field not asked for.

use super::*;
/// `GET /rest/experimental/template/page?spaceKey=`: the space's page templates, paged, each
/// `{"templateId","name","description","templateType":"page","space"}` and with
/// `expand=body` also `body.storage`.
pub(super) fn page_templates(st: &ConfState, parts: &Parts) -> Response {
    let Some(space) = query_param(parts, "spaceKey") else {
        return bad_request("spaceKey is required for space templates");
    };
    if !st.spaces.contains_key(&space) {
        return conf_error(
            StatusCode::NOT_FOUND,
            &format!("No space with key : {space}"),
        );
    }
    let with_body = query_param(parts, "expand").is_some_and(|e| {
        e.split(',')
            .any(|x| x.trim() == "body" || x.trim() == "body.storage")
    });
    let items = st
        .templates
        .iter()
        .filter(|(s, _, _, _)| *s == space)
        .map(|(s, id, name, body)| {
            let mut t = json!({
                "templateId": id.to_string(),
                "name": name,
                "description": "",
                "templateType": "page",
                "labels": [],
                "space": {"key": s},
                "_links": {"self": format!("{}/rest/experimental/template/{id}", st.base_url)},
            });
            if with_body {
                t["body"] = json!({"storage": {"value": body, "representation": "storage"}});
            } else {
                t["_expandable"] = json!({"body": ""});
            }
            t
        })
        .collect();
    list_page(st, parts, items, 25, 100)
}

/// `GET /rest/api/content/search?cql=&limit=&expand=`: current content matching the CQL,
/// expanded like `GET /rest/api/content/{id}`; 400 for CQL the fake cannot parse.
pub(super) fn cql_search(st: &ConfState, parts: &Parts) -> Response {
    let Some(cql) = query_param(parts, "cql") else {
        return bad_request("The CQL query parameter is required");
    };
    let clauses = match cql_parse(&cql) {
        Ok(c) => c,
        Err(e) => return bad_request(&format!("Could not parse cql : {cql} ({e})")),
    };
    let items: Vec<Value> = st
        .content
        .values()
        .filter(|c| c["status"] == "current")
        .filter(|c| {
            clauses.iter().all(|clause| match clause {
                Clause::Text(words) => {
                    let text = searchable(c);
                    words
                        .split_whitespace()
                        .all(|w| text.contains(&w.trim_end_matches('*').to_lowercase()))
                }
                Clause::Title(words) => {
                    let title = c["title"].as_str().unwrap_or_default().to_lowercase();
                    // CQL's trailing wildcard (`title ~ "plan*"`): a word that starts so.
                    words
                        .split_whitespace()
                        .all(|w| title.contains(&w.trim_end_matches('*').to_lowercase()))
                }
                Clause::Types(types) => types.iter().any(|t| c["type"] == t.as_str()),
                Clause::Space(key) => c["space"]["key"] == key.as_str(),
            })
        })
        .cloned()
        .collect();
    if let Some(trashed) = trashed_ancestor_refusal(st, parts, &items) {
        return not_found(&trashed.to_string());
    }
    paged(st, parts, items)
}

/// The trashed ancestor a search must fail on, when the fake answers as reported: with
/// [`FakeConfluence::set_search_404_on_trashed_ancestor`] on, nested expansion on and an
/// `expand` reaching into the ancestors (`ancestors.<something>`), one trashed ancestor of
/// any result fails the whole batch.
fn trashed_ancestor_refusal(st: &ConfState, parts: &Parts, items: &[Value]) -> Option<u64> {
    if !st.search_404_on_trashed_ancestor || !st.nested_ancestor_expansion {
        return None;
    }
    let expand = query_param(parts, "expand").unwrap_or_default();
    if !expand
        .split(',')
        .any(|e| e.trim().starts_with("ancestors."))
    {
        return None;
    }
    items
        .iter()
        .flat_map(|c| c["ancestors"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.get("id").and_then(content_id))
        .find(|id| st.content.get(id).is_some_and(|c| c["status"] == "trashed"))
}

/// Top-level fields Confluence leaves out unless `expand` asks for them.
pub(super) const EXPANDABLE: &[&str] = &[
    "space",
    "history",
    "version",
    "ancestors",
    "container",
    "metadata",
    "body",
    "restrictions",
    "children",
    "descendants",
    "operations",
];

/// Shapes stored content the way `expand` would: unexpanded fields are removed and listed in
/// `_expandable`. For `body` and `metadata` only the named parts (`body.storage`,
/// `metadata.labels`) are kept. `ancestors.<x>` expands each ancestor as content of its own
/// with `<x>` (e.g. its own `restrictions`), unless nested expansion is off; an ancestor that
/// was purged stays as listed, unexpanded.
pub(super) fn expand_view(st: &ConfState, content: &Value, expand: &str) -> Value {
    let mut out = content.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    let items: Vec<&str> = expand
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut expandable = Map::new();
    for key in EXPANDABLE {
        if !obj.contains_key(*key) {
            continue;
        }
        let subs: Vec<&str> = items
            .iter()
            .filter_map(|i| {
                if i == key {
                    Some("")
                } else {
                    i.strip_prefix(key).and_then(|r| r.strip_prefix('.'))
                }
            })
            .collect();
        if subs.is_empty() {
            let link = match *key {
                "space" => obj
                    .get("space")
                    .and_then(|s| s.get("key"))
                    .and_then(Value::as_str)
                    .map(|k| format!("/rest/api/space/{k}"))
                    .unwrap_or_default(),
                "history" => format!("/rest/api/content/{id}/history"),
                "children" => format!("/rest/api/content/{id}/child"),
                "descendants" => format!("/rest/api/content/{id}/descendant"),
                "restrictions" => format!("/rest/api/content/{id}/restriction/byOperation"),
                _ => String::new(),
            };
            obj.remove(*key);
            expandable.insert((*key).to_string(), Value::String(link));
        } else if *key == "ancestors" && st.nested_ancestor_expansion {
            let nested: Vec<&str> = subs.iter().copied().filter(|s| !s.is_empty()).collect();
            if nested.is_empty() {
                continue;
            }
            let inner = nested.join(",");
            if let Some(list) = obj.get_mut("ancestors").and_then(Value::as_array_mut) {
                for ancestor in list.iter_mut() {
                    let full = ancestor
                        .get("id")
                        .and_then(content_id)
                        .and_then(|id| resolve(st, id));
                    if let Some(full) = full {
                        *ancestor = expand_view(st, &full, &inner);
                    }
                }
            }
        } else if (*key == "body" || *key == "metadata") && !subs.contains(&"") {
            let wanted: Vec<&str> = subs
                .iter()
                .map(|s| s.split('.').next().unwrap_or(s))
                .collect();
            if let Some(inner) = obj.get_mut(*key).and_then(Value::as_object_mut) {
                let mut inner_expandable = Map::new();
                inner.retain(|k, _| {
                    let keep = wanted.contains(&k.as_str()) || k == "_expandable";
                    if !keep {
                        inner_expandable.insert(k.clone(), Value::String(String::new()));
                    }
                    keep
                });
                if !inner_expandable.is_empty() {
                    inner.insert("_expandable".into(), Value::Object(inner_expandable));
                }
            }
        }
    }
    if !expandable.is_empty() {
        obj.insert("_expandable".into(), Value::Object(expandable));
    }
    out
}

pub(super) fn status_matches(content: &Value, parts: &Parts) -> bool {
    let wanted = query_param(parts, "status").unwrap_or_else(|| "current".to_string());
    let status = content
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("current");
    wanted
        .split(',')
        .map(str::trim)
        .any(|w| w == "any" || w == status)
}

/// A content id as Confluence writes it (a string) or as a number.
pub(super) fn content_id(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Content `id` as Confluence would have it: registered (or created), or else an ancestor
/// that registered content names, which exists in Confluence as a plain page without
/// restrictions of its own; `None` when unknown or purged.
pub(super) fn resolve(st: &ConfState, id: u64) -> Option<Value> {
    if let Some(c) = st.content.get(&id) {
        return Some(c.clone());
    }
    if st.purged.contains(&id) {
        return None;
    }
    let entry = st.content.values().find_map(|c| {
        c.get("ancestors")?
            .as_array()?
            .iter()
            .find(|a| a.get("id").and_then(content_id) == Some(id))
            .cloned()
    })?;
    let key = id.to_string();
    let title = entry["title"].as_str().unwrap_or_default().to_string();
    Some(json!({
        "id": key,
        "type": entry.get("type").cloned().unwrap_or_else(|| json!("page")),
        "status": entry.get("status").cloned().unwrap_or_else(|| json!("current")),
        "title": title,
        "restrictions": restrictions_json(&key, &[], &[]),
        "_links": {
            "base": st.base_url,
            "context": "",
            "self": format!("{}/rest/api/content/{id}", st.base_url),
        },
    }))
}

pub(super) fn get_content(st: &ConfState, id: &str, parts: &Parts) -> Response {
    let found = id
        .parse::<u64>()
        .ok()
        .and_then(|n| resolve(st, n))
        .filter(|c| status_matches(c, parts));
    match found {
        Some(c) => json_response(
            StatusCode::OK,
            &expand_view(st, &c, &query_param(parts, "expand").unwrap_or_default()),
        ),
        None => not_found(id),
    }
}

/// Applies `start`/`limit` (default 25, as Confluence) and wraps results in its list shape.
pub(super) fn paged(st: &ConfState, parts: &Parts, items: Vec<Value>) -> Response {
    let start: usize = query_param(parts, "start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit: usize = query_param(parts, "limit")
        .and_then(|s| s.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(25)
        .min(200);
    let expand = query_param(parts, "expand").unwrap_or_default();
    let total = items.len();
    let results: Vec<Value> = items
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| expand_view(st, c, &expand))
        .collect();
    let path = parts.uri.path();
    let mut links = json!({
        "base": st.base_url,
        "context": "",
        "self": format!("{}{}", st.base_url, parts.uri),
    });
    if start + limit < total {
        let mut query: Vec<(String, String)> =
            crate::server::form_pairs(parts.uri.query().unwrap_or("").as_bytes())
                .into_iter()
                .filter(|(k, _)| k != "start" && k != "limit")
                .collect();
        query.push(("limit".into(), limit.to_string()));
        query.push(("start".into(), (start + limit).to_string()));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        links["next"] = json!(format!("{path}?{qs}"));
    }
    let size = results.len();
    json_response(
        StatusCode::OK,
        &json!({"results": results, "start": start, "limit": limit, "size": size, "_links": links}),
    )
}

pub(super) fn search(st: &ConfState, parts: &Parts) -> Response {
    let kind = query_param(parts, "type").unwrap_or_else(|| "page".to_string());
    let space = query_param(parts, "spaceKey");
    let title = query_param(parts, "title");
    let items: Vec<Value> = st
        .content
        .values()
        .filter(|c| c["type"] == kind.as_str())
        .filter(|c| {
            space
                .as_ref()
                .is_none_or(|k| c["space"]["key"] == k.as_str())
        })
        .filter(|c| {
            title.as_ref().is_none_or(|t| {
                c["title"]
                    .as_str()
                    .is_some_and(|ct| ct.to_lowercase() == t.to_lowercase())
            })
        })
        .filter(|c| status_matches(c, parts))
        .cloned()
        .collect();
    paged(st, parts, items)
}

pub(super) fn list_comments(st: &ConfState, id: &str, parts: &Parts) -> Response {
    if id
        .parse::<u64>()
        .ok()
        .and_then(|n| st.content.get(&n))
        .is_none()
    {
        return not_found(id);
    }
    let all_depths = query_param(parts, "depth").is_some_and(|d| d == "all");
    let items: Vec<Value> = st
        .content
        .values()
        .filter(|c| c["type"] == "comment" && c["container"]["id"] == id)
        .filter(|c| c["status"] == "current")
        .filter(|c| all_depths || c["ancestors"].as_array().is_none_or(Vec::is_empty))
        .cloned()
        .collect();
    paged(st, parts, items)
}
