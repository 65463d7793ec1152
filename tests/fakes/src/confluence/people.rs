//! What a caller may do and see: space permissions (granted and checked), the spaces they
//! may view, a user's groups, content watchers and personal access tokens, in Data Center's
//! shapes. It must never let a caller see what Confluence would refuse them.

use super::*;

/// What `GET /rest/api/space/{key}/permissions` answers a caller who may view the space but
/// not administer it ([`FakeConfluence::set_space_permissions_refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpacePermissionsRefusal {
    /// 403, as the reference documents for a caller without the permission.
    #[default]
    Forbidden,
    /// 500, as reported against Data Center 9.x (CONFSERVER-99908).
    InternalError,
}

/// Operations as [`FakeConfluence::grant_space`] takes them (`"read"`, `"create:page"`, ...),
/// with `read` first whenever any is given: every space permission comes with "view".
pub(super) fn operations_with_read(operations: &[&str]) -> Vec<Operation> {
    let mut wanted: Vec<Operation> = Vec::new();
    if !operations.is_empty() {
        wanted.push(Operation {
            key: "read".into(),
            target: "space".into(),
        });
    }
    for op in operations {
        let (key, target) = op.split_once(':').unwrap_or((op, "space"));
        let op = Operation {
            key: key.to_string(),
            target: target.to_string(),
        };
        if !wanted.contains(&op) {
            wanted.push(op);
        }
    }
    wanted
}

/// What the service account may do in a space it was given no explicit permissions in: view
/// it and add content to it.
const SERVICE_DEFAULTS: &[(&str, &str)] = &[
    ("read", "space"),
    ("create", "page"),
    ("create", "blogpost"),
    ("create", "comment"),
    ("create", "attachment"),
];

/// Whether the caller holds `operation` (`key` or `key:target`, target `space` when left out)
/// in `space`, directly or through one of their groups. The service account holds
/// [`SERVICE_DEFAULTS`] in every space the fake knows, or exactly what
/// [`FakeConfluence::set_service_space_permissions`] set there, plus what was granted.
pub(super) fn holds(st: &ConfState, caller: &Caller, space: &str, operation: &str) -> bool {
    let (key, target) = operation.split_once(':').unwrap_or((operation, "space"));
    let (username, groups): (&str, &[String]) = match caller {
        Caller::Service => {
            let own = match st.service_limits.get(space) {
                Some(ops) => ops.iter().any(|op| op.key == key && op.target == target),
                None => st.spaces.contains_key(space) && SERVICE_DEFAULTS.contains(&(key, target)),
            };
            if own {
                return true;
            }
            (SERVICE_USERNAME, &[])
        }
        Caller::User(name) => (name.as_str(), st.accounts[name].groups.as_slice()),
    };
    st.grants.iter().any(|(s, who, op)| {
        s == space
            && op.key == key
            && op.target == target
            && match who {
                Subject::User(u) => u == username,
                Subject::Group(g) => groups.contains(g),
            }
    })
}

/// `GET /rest/api/space`: the spaces the caller may view, by key, in Confluence's list
/// shape. `type` (`global`, `personal`) and repeated `spaceKey` filter; `start` and `limit`
/// page (limit 25 by default; more than [`SPACE_LIMIT_MAX`] is cut to it, as Confluence's
/// fixed system limits do, so clients must follow `_links.next`).
pub(super) fn list_spaces(st: &ConfState, caller: &Caller, parts: &Parts) -> Response {
    let pairs = crate::server::form_pairs(parts.uri.query().unwrap_or("").as_bytes());
    let keys: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "spaceKey")
        .map(|(_, v)| v.as_str())
        .collect();
    let kind = query_param(parts, "type");
    let items: Vec<Value> = st
        .spaces
        .iter()
        .filter(|(key, _)| holds(st, caller, key, "read"))
        .filter(|(key, _)| keys.is_empty() || keys.contains(&key.as_str()))
        .filter(|_| kind.as_deref().is_none_or(|k| k == "global"))
        .map(|(key, (id, name))| {
            json!({
                "id": id,
                "key": key,
                "name": name,
                "type": "global",
                "status": "current",
                "_links": {
                    "webui": format!("/display/{key}"),
                    "self": format!("{}/rest/api/space/{key}", st.base_url),
                },
                "_expandable": {
                    "metadata": "",
                    "icon": "",
                    "description": "",
                    "retentionPolicy": "",
                    "homepage": "",
                },
            })
        })
        .collect();
    list_page(st, parts, items, 25, SPACE_LIMIT_MAX)
}

/// The most spaces one `GET /rest/api/space` answers with. Confluence documents only that
/// "fixed system limits" may cut `limit`; the fake uses 500.
pub(super) const SPACE_LIMIT_MAX: usize = 500;

/// The most groups one `GET /rest/api/user/memberof` answers with (also its default).
pub(super) const GROUP_LIMIT_MAX: usize = 200;

/// `start`/`limit` paging of ready-made items (no `expand`), in Confluence's list shape with
/// a relative `_links.next` while more remain.
pub(super) fn list_page(
    st: &ConfState,
    parts: &Parts,
    items: Vec<Value>,
    default_limit: usize,
    max_limit: usize,
) -> Response {
    json_response(
        StatusCode::OK,
        &list_page_value(st, parts, items, default_limit, max_limit),
    )
}

/// The page [`list_page`] answers with, for answers that add to it.
pub(super) fn list_page_value(
    st: &ConfState,
    parts: &Parts,
    items: Vec<Value>,
    default_limit: usize,
    max_limit: usize,
) -> Value {
    let start: usize = query_param(parts, "start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit: usize = query_param(parts, "limit")
        .and_then(|s| s.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(default_limit)
        .min(max_limit);
    let total = items.len();
    let results: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
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
        links["next"] = json!(format!("{}?{qs}", parts.uri.path()));
    }
    let size = results.len();
    json!({"results": results, "start": start, "limit": limit, "size": size, "_links": links})
}

/// `GET /rest/api/space/{spaceKey}/permissions` (Confluence 9.1+): a bare array of every
/// permission granted in the space, one entry per subject and operation. A user subject
/// carries only its `userKey` and a group its `name`, as Data Center answers
/// (CONFSERVER-100505 asks for usernames to be added). Only the space's admins get it: a
/// caller who may view the space but not administer it gets 403 (or 500, as
/// CONFSERVER-99908 reports, see [`SpacePermissionsRefusal`]), one who may not view it (or
/// an unknown space) 404, as Confluence hides spaces one cannot see.
pub(super) fn space_permissions(st: &ConfState, caller: &Caller, key: &str) -> Response {
    let Some((space_id, _)) = st.spaces.get(key) else {
        return conf_error(StatusCode::NOT_FOUND, &format!("No space with key : {key}"));
    };
    if !holds(st, caller, key, "read") {
        return conf_error(StatusCode::NOT_FOUND, &format!("No space with key : {key}"));
    }
    if !holds(st, caller, key, "administer") {
        return match st.space_permissions_refusal {
            SpacePermissionsRefusal::Forbidden => conf_error(
                StatusCode::FORBIDDEN,
                &format!("User is not permitted to view the permissions of space {key}"),
            ),
            SpacePermissionsRefusal::InternalError => conf_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "java.lang.NullPointerException",
            ),
        };
    }
    let permissions: Vec<Value> = st
        .grants
        .iter()
        .filter(|(s, _, _)| s == key)
        .map(|(_, who, op)| {
            let subject = match who {
                Subject::Group(name) => json!({"type": "group", "name": name}),
                Subject::User(username) => {
                    let user_key = if username == SERVICE_USERNAME {
                        SERVICE_USER_KEY.to_string()
                    } else {
                        st.accounts
                            .get(username)
                            .map_or_else(|| format!("key-{username}"), |a| a.user_key.clone())
                    };
                    json!({"type": "user", "userKey": user_key})
                }
            };
            json!({
                "operation": {"targetType": op.target, "operationKey": op.key},
                "subject": subject,
                "spaceKey": key,
                "spaceId": space_id,
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(permissions))
}

/// `GET /rest/api/user/memberof?username=` (or `?key=`): the user's groups in Confluence's
/// list shape (`{"type":"group","name":...}`), 200 a page at most.
pub(super) fn member_of(st: &ConfState, parts: &Parts) -> Response {
    let username = if let Some(name) = query_param(parts, "username") {
        name
    } else if let Some(key) = query_param(parts, "key") {
        match st.users.get(&key) {
            Some(user) => user.username.clone(),
            None => {
                return conf_error(
                    StatusCode::NOT_FOUND,
                    &format!("No user found with key : {key}"),
                );
            }
        }
    } else {
        return bad_request("Either a username or a key must be provided");
    };
    let groups: Vec<String> = if let Some(account) = st.accounts.get(&username) {
        account.groups.clone()
    } else if user_named(st, &username).is_some() {
        Vec::new()
    } else {
        return conf_error(
            StatusCode::NOT_FOUND,
            &format!("No user found with username : {username}"),
        );
    };
    let items = groups
        .iter()
        .map(|name| {
            json!({
                "type": "group",
                "name": name,
                "_links": {"self": format!("{}/rest/api/group/{name}", st.base_url)},
            })
        })
        .collect();
    list_page(st, parts, items, GROUP_LIMIT_MAX, GROUP_LIMIT_MAX)
}

/// `GET /rest/api/content/{id}/watchers` (Data Center 9.0+): the users watching a page or
/// blog post, paged (25 by default), as user objects (never `email`), only to a Confluence
/// administrator or an administrator of the content's space; 403 to anyone else, 404 for
/// unknown content, 400 for content that is neither a page nor a blog post.
pub(super) fn list_watchers(st: &ConfState, caller: &Caller, id: &str, parts: &Parts) -> Response {
    let Some(content) = id.parse::<u64>().ok().and_then(|n| resolve(st, n)) else {
        return not_found(id);
    };
    if !matches!(content["type"].as_str(), Some("page" | "blogpost")) {
        return bad_request(&format!(
            "Content {id} is not a page or a blog post; only those have watchers here"
        ));
    }
    let space = content["space"]["key"].as_str().unwrap_or_default();
    if !confluence_admin(st, caller) && !holds(st, caller, space, "administer") {
        return conf_error(
            StatusCode::FORBIDDEN,
            "Only a Confluence Administrator or Space Administrator can view the watchers of content",
        );
    }
    let items = st
        .watchers
        .get(&id.parse::<u64>().unwrap_or_default())
        .into_iter()
        .flatten()
        .filter_map(|name| user_named(st, name))
        .map(|u| user_json(st, u, ""))
        .collect();
    list_page(st, parts, items, 25, 200)
}

/// `GET /rest/pat/latest/tokens` for an added user: their tokens, which never expire.
pub(super) fn list_user_tokens(st: &ConfState, username: &str) -> Response {
    let created = iso_at(SystemTime::now() - DAY);
    let tokens: Vec<Value> = st.accounts[username]
        .pats
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"id": 8001 + i as u64, "name": format!("token-{}", i + 1), "createdAt": created}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(tokens))
}

/// `GET /rest/pat/latest/tokens`: a bare JSON array of the account's tokens, newest last,
/// with Confluence's field names; timestamps as Confluence writes them
/// (`2026-01-12T18:07:13.603+0000`). A token that never expires has no `expiringAt`.
pub(super) fn list_tokens(st: &ConfState) -> Response {
    let tokens: Vec<Value> = st
        .tokens
        .iter()
        .enumerate()
        .map(|(i, (name, created, expires))| {
            let mut t = json!({
                "id": 7001 + i as u64,
                "name": name,
                "createdAt": iso_at(*created),
            });
            if let Some(at) = expires {
                t["expiringAt"] = json!(iso_at(*at));
            }
            if i == 0 {
                t["lastAccessedAt"] = json!(iso_at(SystemTime::now()));
            }
            t
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(tokens))
}

/// `2026-01-12T18:07:13.603+0000`, the way Atlassian's REST resources write dates.
pub(super) fn iso_at(at: SystemTime) -> String {
    crate::server::iso_at(at, "+0000")
}

#[cfg(test)]
mod people_tests {
    //! Users, personal access tokens, groups and space permissions: what the console's
    //! Confluence sign-in reads.

    use super::*;

    const ADA_KEY: &str = "8a7f80839e460b0f019e460ba6440001";

    fn fake() -> FakeConfluence {
        let c = FakeConfluence::start(ConfluenceAuth::Bearer("service-pat".into()));
        c.add_user(
            "ada",
            ADA_KEY,
            "Ada Lovelace",
            "ada@example.com",
            "analytical",
            &["confluence-users", "eng-leads"],
        );
        c.add_pat("ada", "ada-pat-1");
        c.add_user(
            "bob",
            "8a7f80839e460b0f019e460ba6440002",
            "Bob",
            "bob@example.com",
            "",
            &["confluence-users"],
        );
        c.add_pat("bob", "bob-pat-1");
        c.grant_space("ENG", "group:eng-leads", &["administer"]);
        c.grant_space("ENG", "group:confluence-users", &["read"]);
        c.grant_space("OPS", "user:ada", &["read", "create:page"]);
        c.grant_space("HR", "bob", &["administer"]);
        c
    }

    fn get(c: &FakeConfluence, path: &str, auth: &str) -> (u16, Value) {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}{path}", c.base_url()))
            .header("authorization", auth)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", B64.encode(format!("{user}:{password}")))
    }

    fn keys(v: &Value) -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn current_user_by_password_or_pat_and_401_otherwise() {
        let c = fake();
        for auth in [basic("ada", "analytical"), "Bearer ada-pat-1".to_string()] {
            let (status, user) = get(&c, "/rest/api/user/current", &auth);
            assert_eq!(status, 200, "{auth}");
            assert_eq!(user["type"], "known");
            assert_eq!(user["username"], "ada");
            assert_eq!(user["userKey"], ADA_KEY);
            assert_eq!(user["displayName"], "Ada Lovelace");
            assert!(user["_links"]["self"].as_str().unwrap().contains(ADA_KEY));
        }
        // The service account is still itself.
        let (status, user) = get(&c, "/rest/api/user/current", "Bearer service-pat");
        assert_eq!((status, user["username"].clone()), (200, json!("pagehook")));
        for auth in [
            basic("ada", "wrong"),
            basic("nobody", "analytical"),
            basic("bob", ""), // bob has no password, only a token
            "Bearer not-a-token".to_string(),
            "Bearer".to_string(),
        ] {
            let (status, body) = get(&c, "/rest/api/user/current", &auth);
            assert_eq!(status, 401, "{auth}");
            assert_eq!(body["statusCode"], 401);
            assert!(body["message"].as_str().unwrap().contains("authenticated"));
        }
        let (status, bob) = get(&c, "/rest/api/user/current", "Bearer bob-pat-1");
        assert_eq!((status, bob["username"].clone()), (200, json!("bob")));
    }

    #[test]
    fn spaces_are_those_the_caller_may_view_paged() {
        let c = fake();
        let (status, page) = get(&c, "/rest/api/space", "Bearer ada-pat-1");
        assert_eq!(status, 200);
        assert_eq!(keys(&page), ["ENG", "OPS"]);
        assert_eq!(page["start"], 0);
        assert_eq!(page["limit"], 25);
        assert_eq!(page["size"], 2);
        assert!(page["_links"].get("next").is_none());
        let eng = &page["results"][0];
        assert_eq!(eng["id"], 65547);
        assert_eq!(eng["name"], "Engineering");
        assert_eq!(eng["type"], "global");
        assert_eq!(eng["status"], "current");
        let (_, bob) = get(&c, "/rest/api/space", "Bearer bob-pat-1");
        assert_eq!(keys(&bob), ["ENG", "HR"]);
        // The service account views every space the fake knows.
        let (_, all) = get(&c, "/rest/api/space", "Bearer service-pat");
        assert_eq!(keys(&all), ["ENG", "HR", "OPS"]);

        let (_, first) = get(&c, "/rest/api/space?limit=1", "Bearer ada-pat-1");
        assert_eq!(keys(&first), ["ENG"]);
        assert_eq!(
            (first["limit"].clone(), first["size"].clone()),
            (json!(1), json!(1))
        );
        let next = first["_links"]["next"].as_str().unwrap().to_string();
        assert!(next.starts_with("/rest/api/space?"), "{next}");
        let (_, second) = get(&c, &next, "Bearer ada-pat-1");
        assert_eq!(keys(&second), ["OPS"]);
        assert_eq!(second["start"], 1);
        assert!(second["_links"].get("next").is_none());

        let (_, personal) = get(&c, "/rest/api/space?type=personal", "Bearer ada-pat-1");
        assert_eq!(personal["size"], 0);
        let (_, global) = get(&c, "/rest/api/space?type=global", "Bearer ada-pat-1");
        assert_eq!(global["size"], 2);
        let (_, capped) = get(&c, "/rest/api/space?limit=100000", "Bearer ada-pat-1");
        assert_eq!(capped["limit"], SPACE_LIMIT_MAX);
        let (status, _) = get(&c, "/rest/api/space", &basic("ada", "nope"));
        assert_eq!(status, 401);
    }

    #[test]
    fn space_permissions_only_for_the_space_admins() {
        let c = fake();
        let (status, perms) = get(
            &c,
            "/rest/api/space/ENG/permissions",
            &basic("ada", "analytical"),
        );
        assert_eq!(status, 200, "{perms}");
        let perms = perms.as_array().unwrap();
        assert_eq!(perms.len(), 3, "{perms:#?}"); // eng-leads read+administer, users read
        for p in perms {
            assert_eq!(p["spaceKey"], "ENG");
            assert_eq!(p["spaceId"], 65547);
            assert_eq!(p["operation"]["targetType"], "space");
        }
        assert!(
            perms
                .iter()
                .any(|p| p["operation"]["operationKey"] == "administer"
                    && p["subject"] == json!({"type": "group", "name": "eng-leads"}))
        );
        // Bob views ENG but does not administer it: 403 in Confluence's error shape.
        let (status, refused) = get(&c, "/rest/api/space/ENG/permissions", "Bearer bob-pat-1");
        assert_eq!(status, 403);
        assert_eq!(refused["statusCode"], 403);
        assert!(refused["message"].as_str().is_some());
        // Ada cannot view HR at all: Confluence answers as if it did not exist.
        let (status, _) = get(&c, "/rest/api/space/HR/permissions", "Bearer ada-pat-1");
        assert_eq!(status, 404);
        let (status, hr) = get(&c, "/rest/api/space/HR/permissions", "Bearer bob-pat-1");
        assert_eq!(status, 200);
        assert!(hr.as_array().unwrap().iter().any(|p| p["subject"]
            == json!({"type": "user", "userKey": "8a7f80839e460b0f019e460ba6440002"})
            && p["operation"]["operationKey"] == "administer"));
        let (status, _) = get(&c, "/rest/api/space/NOPE/permissions", "Bearer bob-pat-1");
        assert_eq!(status, 404);
        // A direct user grant with another target type.
        c.grant_space("OPS", "group:eng-leads", &["administer"]);
        let (_, ops) = get(&c, "/rest/api/space/OPS/permissions", "Bearer ada-pat-1");
        assert!(ops.as_array().unwrap().iter().any(|p| p["operation"]
            == json!({"targetType": "page", "operationKey": "create"})
            && p["subject"]["userKey"] == ADA_KEY));
        // The service account administers nothing unless granted.
        let (status, _) = get(&c, "/rest/api/space/ENG/permissions", "Bearer service-pat");
        assert_eq!(status, 403);
        // Revoking takes "view" and everything else.
        c.revoke_space("ENG", "group:eng-leads");
        let (status, _) = get(&c, "/rest/api/space/ENG/permissions", "Bearer ada-pat-1");
        assert_eq!(status, 403);
        assert_eq!(c.calls(endpoints::SPACE_PERMISSIONS), 8);
    }

    #[test]
    fn member_of_lists_groups_paged() {
        let c = fake();
        let (status, groups) = get(
            &c,
            "/rest/api/user/memberof?username=ada",
            "Bearer bob-pat-1",
        );
        assert_eq!(status, 200);
        let names: Vec<&str> = groups["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                assert_eq!(g["type"], "group");
                g["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(names, ["confluence-users", "eng-leads"]);
        assert_eq!(
            (groups["start"].clone(), groups["size"].clone()),
            (json!(0), json!(2))
        );
        assert_eq!(groups["limit"], 200);
        let (_, by_key) = get(
            &c,
            &format!("/rest/api/user/memberof?key={ADA_KEY}&limit=1"),
            "Bearer ada-pat-1",
        );
        assert_eq!(by_key["results"][0]["name"], "confluence-users");
        assert!(
            by_key["_links"]["next"]
                .as_str()
                .unwrap()
                .contains("start=1")
        );
        c.add_to_group("bob", "hr-admins");
        let (_, bob) = get(
            &c,
            "/rest/api/user/memberof?username=bob",
            "Bearer bob-pat-1",
        );
        assert_eq!(bob["size"], 2);
        let (_, service) = get(
            &c,
            "/rest/api/user/memberof?username=pagehook",
            "Bearer service-pat",
        );
        assert_eq!(service["size"], 0);
        let (status, _) = get(
            &c,
            "/rest/api/user/memberof?username=nobody",
            "Bearer ada-pat-1",
        );
        assert_eq!(status, 404);
        let (status, _) = get(&c, "/rest/api/user/memberof", "Bearer ada-pat-1");
        assert_eq!(status, 400);
    }

    #[test]
    fn service_account_behaviour_is_unchanged() {
        let c = fake();
        let (status, tokens) = get(&c, "/rest/pat/latest/tokens", "Bearer service-pat");
        assert_eq!(status, 200);
        assert_eq!(tokens[0]["name"], "pagehook");
        let (_, ada) = get(&c, "/rest/pat/latest/tokens", "Bearer ada-pat-1");
        assert_eq!(ada.as_array().unwrap().len(), 1);
        assert_eq!(ada[0]["name"], "token-1");
        c.set_tokens(&[("pagehook", Some(SystemTime::now() - DAY))]);
        let (status, _) = get(&c, "/rest/api/user/current", "Bearer service-pat");
        assert_eq!(status, 401, "an expired service PAT is refused as before");
        let (status, _) = get(&c, "/rest/api/user/current", "Bearer ada-pat-1");
        assert_eq!(status, 200, "other people's tokens are theirs");
    }
}
