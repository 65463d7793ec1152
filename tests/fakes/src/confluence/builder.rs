//! Content JSON in the shapes of the shared fixtures, for tests to register and for the
//! fake to answer creates with. It must never invent fields Data Center does not send.

use super::*;
/// A made-up but stable space id; the fixtures' ENG keeps its own.
pub(super) fn space_id(key: &str) -> u64 {
    if key == "ENG" {
        return 65547;
    }
    65_536
        + key
            .bytes()
            .fold(0u64, |acc, b| (acc * 131 + u64::from(b)) % 1_000_000)
}

pub(super) fn url_title(title: &str) -> String {
    form_urlencoded::byte_serialize(title.as_bytes()).collect()
}

/// Builds content JSON in exactly the shapes of the shared fixtures
/// (`confluence/rest/content-{page,blogpost,comment}.json`).
///
/// It starts from the fixture file and overrides what you set, so anything you do not set
/// keeps the fixture's value (for a page: two labels, two ancestors, version 3 by Ada). Links
/// (`_links.webui`, `_links.self`) are recomputed from id, space and title on `build()`.
#[derive(Debug, Clone)]
pub struct ContentBuilder {
    json: Value,
}

impl ContentBuilder {
    /// A page, from content-page.json.
    pub fn page(id: u64, space_key: &str, title: &str) -> ContentBuilder {
        ContentBuilder {
            json: fixture("confluence/rest/content-page.json"),
        }
        .identity(id, title)
        .space(space_key, &default_space_name(space_key))
    }

    /// A blog post, from content-blogpost.json.
    pub fn blogpost(id: u64, space_key: &str, title: &str) -> ContentBuilder {
        ContentBuilder {
            json: fixture("confluence/rest/content-blogpost.json"),
        }
        .identity(id, title)
        .space(space_key, &default_space_name(space_key))
    }

    /// A comment on page `page_id`, from content-comment.json; its title is
    /// `Re: <page_title>` as Confluence makes it.
    pub fn comment(id: u64, page_id: u64, page_title: &str, space_key: &str) -> ContentBuilder {
        let mut b = ContentBuilder {
            json: fixture("confluence/rest/content-comment.json"),
        }
        .identity(id, &format!("Re: {page_title}"))
        .space(space_key, &default_space_name(space_key));
        b.json["container"]["id"] = json!(page_id.to_string());
        b.json["container"]["title"] = json!(page_title);
        b
    }

    fn identity(mut self, id: u64, title: &str) -> ContentBuilder {
        self.json["id"] = json!(id.to_string());
        self.json["title"] = json!(title);
        if let Some(links) = self.json.get_mut("_links").and_then(Value::as_object_mut) {
            links.remove("tinyui");
        }
        self
    }

    /// Sets the space (and, for pages and blog posts, the container, which is the space).
    pub fn space(mut self, key: &str, name: &str) -> ContentBuilder {
        let id = space_id(key);
        let space = &mut self.json["space"];
        space["key"] = json!(key);
        space["name"] = json!(name);
        space["id"] = json!(id);
        if space.get("_links").is_some() {
            space["_links"] = json!({
                "webui": format!("/spaces/{key}/overview"),
                "self": format!("https://wiki.example.com/rest/api/space/{key}"),
            });
        }
        if self.json["type"] != "comment" {
            self.json["container"] = json!({"id": id, "key": key, "name": name, "type": "global"});
        }
        self
    }

    /// Sets the title.
    pub fn title(mut self, title: &str) -> ContentBuilder {
        self.json["title"] = json!(title);
        self
    }

    /// Sets `status`: `current`, `trashed`, `draft`, `historical`.
    pub fn status(mut self, status: &str) -> ContentBuilder {
        self.json["status"] = json!(status);
        self
    }

    /// Replaces the labels (`metadata.labels`), all with the `global` prefix.
    pub fn labels(mut self, labels: &[&str]) -> ContentBuilder {
        let results: Vec<Value> = labels
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"prefix": "global", "name": name, "id": (4_587_600 + i).to_string()}))
            .collect();
        self.json["metadata"]["labels"] = label_page(results);
        self
    }

    /// Sets `version.number`.
    pub fn version(mut self, number: u32) -> ContentBuilder {
        self.json["version"]["number"] = json!(number);
        self
    }

    /// Sets `version.minorEdit` ("notify watchers" unticked), which webhooks do not carry.
    pub fn minor_edit(mut self, minor: bool) -> ContentBuilder {
        self.json["version"]["minorEdit"] = json!(minor);
        self
    }

    /// Sets `version.message`.
    pub fn version_message(mut self, message: &str) -> ContentBuilder {
        self.json["version"]["message"] = json!(message);
        self
    }

    /// Replaces the ancestors, root first: `(id, title)` pairs.
    pub fn ancestors(mut self, ancestors: &[(u64, &str)]) -> ContentBuilder {
        self.json["ancestors"] = Value::Array(
            ancestors
                .iter()
                .map(|(id, title)| {
                    json!({"id": id.to_string(), "type": "page", "status": "current", "title": title})
                })
                .collect(),
        );
        self
    }

    /// Sets the author of the current version and the creator (`version.by`,
    /// `history.createdBy`); use the `SERVICE_*` constants for content Pagehook itself wrote.
    pub fn author(mut self, username: &str, user_key: &str, display_name: &str) -> ContentBuilder {
        let person = json!({
            "type": "known",
            "username": username,
            "userKey": user_key,
            "displayName": display_name,
        });
        self.json["version"]["by"] = person.clone();
        self.json["history"]["createdBy"] = person;
        self
    }

    /// Sets `body.storage` (served with `expand=body.storage`).
    pub fn body_storage(mut self, xml: &str) -> ContentBuilder {
        self.json["body"]["storage"] = json!({"value": xml, "representation": "storage"});
        self
    }

    /// Restricts viewing to these usernames and groups (`restrictions.read`, served with
    /// `expand=restrictions.read.restrictions.user,restrictions.read.restrictions.group`).
    ///
    /// These are this content's own restrictions only: content below it is restricted too
    /// (Confluence applies inherited restrictions) but its own `restrictions.read` stays
    /// empty; the restriction shows there only through the `ancestors.restrictions...`
    /// expansion.
    pub fn read_restricted_to(mut self, users: &[&str], groups: &[&str]) -> ContentBuilder {
        let id = self.json["id"].as_str().unwrap_or_default().to_string();
        self.json["restrictions"] = restrictions_json(&id, users, groups);
        self
    }

    /// Sets any field by JSON pointer (e.g. `"/version/when"`), creating objects on the way:
    /// an escape hatch for shapes the other methods do not cover.
    pub fn set(mut self, pointer: &str, value: Value) -> ContentBuilder {
        let mut target = &mut self.json;
        for part in pointer.split('/').skip(1) {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            target = target
                .as_object_mut()
                .expect("just made an object")
                .entry(part.replace("~1", "/").replace("~0", "~"))
                .or_insert(Value::Null);
        }
        *target = value;
        self
    }

    /// The finished JSON, with links recomputed and empty read restrictions if none were set.
    pub fn build(mut self) -> Value {
        let id = self.json["id"].as_str().unwrap_or_default().to_string();
        let key = self.json["space"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let title = self.json["title"].as_str().unwrap_or_default().to_string();
        let webui = match self.json["type"].as_str() {
            Some("blogpost") => format!("/spaces/{key}/blog/2026/01/12/{id}/{}", url_title(&title)),
            Some("comment") => {
                let page = self.json["container"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let page_title = self.json["container"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let page_ui = format!("/spaces/{key}/pages/{page}/{}", url_title(&page_title));
                self.json["container"]["_links"] = json!({"webui": page_ui});
                format!("{page_ui}?focusedCommentId={id}#comment-{id}")
            }
            _ => format!("/spaces/{key}/pages/{id}/{}", url_title(&title)),
        };
        if let Some(links) = self.json.get_mut("_links").and_then(Value::as_object_mut) {
            links.insert("webui".into(), json!(webui));
            let base = links
                .get("base")
                .and_then(Value::as_str)
                .unwrap_or("https://wiki.example.com")
                .to_string();
            links.insert(
                "self".into(),
                json!(format!("{base}/rest/api/content/{id}")),
            );
        }
        if self.json.get("restrictions").is_none() {
            self.json["restrictions"] = restrictions_json(&id, &[], &[]);
        }
        self.json
    }
}

pub(super) fn default_space_name(key: &str) -> String {
    match key {
        "ENG" => "Engineering".to_string(),
        "INC" => "Incidents".to_string(),
        other => other.to_string(),
    }
}

pub(super) fn label_page(results: Vec<Value>) -> Value {
    let size = results.len();
    json!({"results": results, "start": 0, "limit": 200, "size": size})
}

pub(super) fn restrictions_json(id: &str, users: &[&str], groups: &[&str]) -> Value {
    let users: Vec<Value> = users
        .iter()
        .map(|u| json!({"type": "known", "username": u, "userKey": format!("key-{u}"), "displayName": u}))
        .collect();
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| json!({"type": "group", "name": g}))
        .collect();
    let page = |results: Vec<Value>| {
        let size = results.len();
        json!({"results": results, "start": 0, "limit": 200, "size": size})
    };
    json!({
        "read": {
            "operation": "read",
            "restrictions": {"user": page(users), "group": page(groups)},
            "_expandable": {"content": format!("/rest/api/content/{id}")},
        },
        "update": {
            "operation": "update",
            "restrictions": {"user": page(Vec::new()), "group": page(Vec::new())},
            "_expandable": {"content": format!("/rest/api/content/{id}")},
        },
    })
}
