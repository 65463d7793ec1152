//! Writing content: creating pages, blog posts and comments, and adding labels, with
//! Confluence's validation. It must never write where the caller lacks the permission.

use super::*;
/// Confluence lower-cases labels and refuses spaces and a few punctuation marks.
pub(super) fn check_label(name: &str) -> Result<String, String> {
    let lower = name.trim().to_lowercase();
    let bad = lower.is_empty()
        || lower.chars().count() > 255
        || lower
            .chars()
            .any(|c| c.is_whitespace() || ":;,.?&[]()#^*@!<>".contains(c));
    if bad {
        Err(format!(
            "The label '{name}' contains invalid characters or is empty"
        ))
    } else {
        Ok(lower)
    }
}

/// Label names from `[{"prefix","name"}]`, a single such object, or plain strings.
pub(super) fn label_names(value: &Value) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![value],
        _ => return Err("Labels must be an array of {\"prefix\",\"name\"} objects".to_string()),
    };
    items
        .into_iter()
        .map(|v| {
            let name = v
                .as_str()
                .or_else(|| v.get("name").and_then(Value::as_str))
                .ok_or_else(|| "Each label needs a name".to_string())?;
            check_label(name)
        })
        .collect()
}

pub(super) fn add_label_values(st: &mut ConfState, content_id: u64, names: &[String]) -> Value {
    let mut next = st.next_label_id;
    let content = st.content.get_mut(&content_id).expect("content exists");
    let mut results: Vec<Value> = content
        .pointer("/metadata/labels/results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for name in names {
        if !results.iter().any(|l| l["name"] == name.as_str()) {
            results.push(json!({"prefix": "global", "name": name, "id": next.to_string()}));
            next += 1;
        }
    }
    content["metadata"]["labels"] = label_page(results);
    let labels = content["metadata"]["labels"].clone();
    st.next_label_id = next;
    labels
}

/// The 403 Data Center answers a create the caller may not make in that space, with the
/// message it was seen to carry.
fn create_refused(kind: &str) -> Response {
    conf_error(
        StatusCode::FORBIDDEN,
        &format!(
            "com.atlassian.confluence.api.service.exceptions.PermissionException: Could not create content with type {kind}"
        ),
    )
}

/// `POST /rest/api/content/{id}/label`: adds labels (lower-cased) to content the caller may
/// edit, which in Confluence is the space's "add" permission for that type of content
/// (`create:page` for a page); 404 for content they cannot see, 403 for content they may
/// only view.
pub(super) fn add_labels(st: &mut ConfState, caller: &Caller, id: &str, body: &Bytes) -> Response {
    let Some(content_id) = id
        .parse::<u64>()
        .ok()
        .filter(|n| st.content.contains_key(n))
    else {
        return not_found(id);
    };
    let content = &st.content[&content_id];
    let space = content["space"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = content["type"].as_str().unwrap_or("page").to_string();
    if !holds(st, caller, &space, "read") {
        return not_found(id);
    }
    if !holds(st, caller, &space, &format!("create:{kind}")) {
        return conf_error(
            StatusCode::FORBIDDEN,
            &format!(
                "com.atlassian.confluence.api.service.exceptions.PermissionException: User not permitted to add labels to content ContentId{{id={content_id}}}"
            ),
        );
    }
    let names = match serde_json::from_slice::<Value>(body)
        .map_err(|e| format!("Could not parse the request body: {e}"))
        .and_then(|v| label_names(&v))
    {
        Ok(n) if !n.is_empty() => n,
        Ok(_) => return bad_request("No labels given"),
        Err(message) => return bad_request(&message),
    };
    let labels = add_label_values(st, content_id, &names);
    st.labels_added.push(LabelsAdded {
        content_id,
        labels: names,
        received_at: Instant::now(),
    });
    json_response(StatusCode::OK, &labels)
}

/// `POST /rest/api/content`: creates a page, blog post or comment as Confluence validates
/// it. The caller must be able to view the space (404 otherwise, as for content they cannot
/// see) and hold its "add" permission for that type (`create:page`, `create:blogpost`,
/// `create:comment`); without it, 403 in Data Center's error shape
/// (`PermissionException: Could not create content with type page`).
pub(super) fn create(st: &mut ConfState, caller: &Caller, body: &Bytes) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("The request body must be a JSON object"),
        Err(e) => return bad_request(&format!("Could not parse the request body: {e}")),
    };
    let kind = request["type"].as_str().unwrap_or_default().to_string();
    if !matches!(kind.as_str(), "page" | "blogpost" | "comment") {
        return bad_request(&format!("Unsupported content type: '{kind}'"));
    }
    let storage = match request.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(b) => match b.get("storage") {
            Some(s) if s["representation"] == "storage" => match s["value"].as_str() {
                Some(v) => v.to_string(),
                None => return bad_request("body.storage.value must be a string"),
            },
            _ => {
                return bad_request(
                    "Unsupported body: send body.storage with \"representation\": \"storage\"",
                );
            }
        },
    };
    st.saves += 1;
    let stored = match saved_storage(&storage, st.saves) {
        Ok(saved) => saved,
        Err(e) => return bad_request(&format!("Error parsing xhtml: {e}")),
    };
    let labels = match request.pointer("/metadata/labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => match label_names(v) {
            Ok(l) => l,
            Err(message) => return bad_request(&message),
        },
    };
    let minor_edit = request
        .pointer("/version/minorEdit")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let id_of = |v: &Value| -> Option<u64> {
        match v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    };
    let parent_id = request
        .pointer("/ancestors/0/id")
        .map(|v| id_of(v).ok_or(()));
    let parent_id = match parent_id {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(())) => return bad_request("ancestors[0].id must be a content id"),
    };
    let max_id = st.content.keys().next_back().copied().unwrap_or(0);
    let id = st.next_id.max(max_id + 1);

    let (mut builder, space_key, container_id) = if kind == "comment" {
        let Some(container_id) = request.pointer("/container/id").and_then(id_of) else {
            return bad_request("A comment needs container.id");
        };
        let Some(container) = st.content.get(&container_id) else {
            return not_found(&container_id.to_string());
        };
        let space_key = container["space"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !holds(st, caller, &space_key, "read") {
            return not_found(&container_id.to_string());
        }
        if !holds(st, caller, &space_key, "create:comment") {
            return create_refused("comment");
        }
        let container = &st.content[&container_id];
        let page_title = container["title"].as_str().unwrap_or_default().to_string();
        let container_type = container["type"].clone();
        if !matches!(container_type.as_str(), Some("page" | "blogpost")) {
            return bad_request(&format!(
                "Comments can only be added to pages and blog posts; content {container_id} is a {}",
                container_type.as_str().unwrap_or("?")
            ));
        }
        // Confluence resolves the container by id *and* type: a blog post named as a page
        // (or the reverse) is not found, and the comment is refused.
        if let Some(sent) = request.pointer("/container/type").and_then(Value::as_str)
            && Some(sent) != container_type.as_str()
        {
            return bad_request(&format!(
                "Could not find container of type {sent} with id {container_id}: it is a {}",
                container_type.as_str().unwrap_or("?")
            ));
        }
        let mut b = ContentBuilder::comment(id, container_id, &page_title, &space_key)
            .ancestors(&[])
            .set("/container/type", container_type);
        if let Some(parent) = parent_id {
            let ok = st.content.get(&parent).is_some_and(|c| {
                c["type"] == "comment"
                    && c["container"]["id"].as_str() == Some(container_id.to_string().as_str())
            });
            if !ok {
                return bad_request(&format!(
                    "Parent comment {parent} not found on content {container_id}"
                ));
            }
            b = b.set(
                "/ancestors",
                json!([{"id": parent.to_string(), "type": "comment", "status": "current", "title": format!("Re: {page_title}")}]),
            );
        }
        (b, space_key, Some(container_id))
    } else {
        let Some(space_key) = request.pointer("/space/key").and_then(Value::as_str) else {
            return bad_request("A page needs space.key");
        };
        let Some((_, space_name)) = st
            .spaces
            .get(space_key)
            .cloned()
            .filter(|_| holds(st, caller, space_key, "read"))
        else {
            return conf_error(
                StatusCode::NOT_FOUND,
                &format!("No space with key : {space_key}"),
            );
        };
        if !holds(st, caller, space_key, &format!("create:{kind}")) {
            return create_refused(&kind);
        }
        let title = request["title"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        if title.is_empty() {
            return bad_request("Title must not be empty");
        }
        if kind == "page" {
            let duplicate = st.content.values().any(|c| {
                c["type"] == "page"
                    && c["status"] == "current"
                    && c["space"]["key"] == space_key
                    && c["title"]
                        .as_str()
                        .is_some_and(|t| t.to_lowercase() == title.to_lowercase())
            });
            if duplicate {
                return bad_request(
                    "A page with this title already exists: A page already exists with the same TITLE in this space",
                );
            }
        }
        let mut ancestors = Vec::new();
        if let Some(parent) = parent_id {
            let Some(p) = st
                .content
                .get(&parent)
                .filter(|c| c["type"] == "page" && c["space"]["key"] == space_key)
            else {
                return bad_request(&format!(
                    "Could not find parent page with id {parent} in space {space_key}"
                ));
            };
            ancestors = p["ancestors"].as_array().cloned().unwrap_or_default();
            ancestors.push(json!({"id": parent.to_string(), "type": "page", "status": "current", "title": p["title"]}));
        }
        let b = if kind == "page" {
            ContentBuilder::page(id, space_key, &title)
        } else {
            ContentBuilder::blogpost(id, space_key, &title)
        }
        .space(space_key, &space_name)
        .set("/ancestors", Value::Array(ancestors));
        (b, space_key.to_string(), None)
    };

    let now = iso_now();
    builder = builder
        .author(SERVICE_USERNAME, SERVICE_USER_KEY, SERVICE_DISPLAY_NAME)
        .version(1)
        .minor_edit(minor_edit)
        .version_message(
            request
                .pointer("/version/message")
                .and_then(Value::as_str)
                .unwrap_or(""),
        )
        .status("current")
        .set("/version/when", json!(now))
        .set("/history/createdDate", json!(now))
        .set(
            "/body",
            json!({"storage": {"value": stored, "representation": "storage"}}),
        )
        .labels(&[])
        .set("/_links/base", json!(st.base_url));
    let content = builder.build();
    let title = content["title"].as_str().unwrap_or_default().to_string();
    st.content.insert(id, content);
    st.next_id = id + 1;
    if !labels.is_empty() {
        add_label_values(st, id, &labels);
    }
    let content = &st.content[&id];
    let response = created_view(content);
    st.created.push(ConfluenceCreated {
        id,
        content_type: kind,
        title,
        space_key,
        parent_id,
        container_id,
        storage,
        stored,
        labels,
        minor_edit,
        request,
        received_at: Instant::now(),
    });
    json_response(StatusCode::OK, &response)
}

/// The answer to a create, in content-created.json's shape.
pub(super) fn created_view(content: &Value) -> Value {
    let space = &content["space"];
    let version = &content["version"];
    let links = &content["_links"];
    let mut out = json!({
        "id": content["id"],
        "type": content["type"],
        "status": content["status"],
        "title": content["title"],
        "space": {
            "id": space["id"], "key": space["key"], "name": space["name"],
            "type": space["type"], "status": space["status"],
        },
        "version": {
            "number": version["number"], "minorEdit": version["minorEdit"],
            "when": version["when"], "message": version["message"],
        },
        "ancestors": content["ancestors"],
        "_links": {
            "webui": links["webui"], "base": links["base"], "context": "", "self": links["self"],
        },
    });
    if content["type"] == "comment" {
        out["container"] = content["container"].clone();
        out["extensions"] = content["extensions"].clone();
    }
    out
}
