//! A fake of the Confluence Data Center REST API calls Pagehook makes: reading content and
//! users to enrich id-only webhooks, creating pages, comments and labels, and listing the
//! service account's personal access tokens.
//!
//! What it keeps of a created body is what Confluence keeps: the storage format is parsed and
//! written out again on save ([`FakeConfluence::saved_storage`]), so the body read back differs byte for byte
//! from the body sent (macro ids added, entities re-encoded, attributes reordered, empty
//! elements re-closed, whitespace between blocks dropped, XML comments removed) while every
//! macro and its parameters survive. `metadata.properties` in a create request is ignored, as
//! Data Center has been reported to ignore it (content properties need
//! `/rest/api/content/{id}/property` after the content exists); `metadata.labels` is applied.
//!
//! View restrictions are answered as Confluence answers them: a content's
//! `restrictions.read` lists only the restrictions set on that content itself, never those
//! it inherits from a restricted ancestor (Atlassian's CONFSERVER-45609). An ancestor's
//! own restrictions come back only when asked for through the ancestors, with
//! `expand=ancestors.restrictions.read.restrictions.user,ancestors.restrictions.read.restrictions.group`
//! (each ancestor is then expanded like content of its own), or by reading the ancestor
//! itself. Ancestors named in a content's `ancestors` that were never registered exist as
//! plain, unrestricted pages (as they must in Confluence); a purged one
//! ([`FakeConfluence::remove_content`]) answers 404 and is left unexpanded among the
//! ancestors of content that still names it.
//!
//! People other than the service account can sign in too, as the console's space admins do:
//! [`FakeConfluence::add_user`] registers a user with a password and groups,
//! [`FakeConfluence::add_pat`] gives them personal access tokens and
//! [`FakeConfluence::grant_space`] gives a user or group space permissions. With those the fake
//! answers who the caller is (`GET /rest/api/user/current`), the spaces they may view
//! (`GET /rest/api/space`), a space's permissions to those who administer it
//! (`GET /rest/api/space/{spaceKey}/permissions`, Confluence 9.1+) and a user's groups
//! (`GET /rest/api/user/memberof`), in Data Center's shapes. The service account may view every
//! space the fake knows and administers none unless granted.
//!
//! For contract 0.2.0's lookups it also answers, as Data Center documents them:
//! - `GET /rest/api/content/{id}/watchers` (Data Center 9): the users watching content
//!   ([`FakeConfluence::watch`]), paged, only to a Confluence administrator
//!   ([`FakeConfluence::set_service_confluence_admin`]) or an administrator of the content's
//!   space; 403 to anyone else.
//! - `GET /rest/api/content/search?cql=`: CQL search over current content, for the subset of
//!   CQL Pagehook writes (`text ~ "..."`, `siteSearch ~`, `title ~`, `type = x`,
//!   `type in (a, b)`, `space = "KEY"`, joined by `and`). Anything else, a string left open or
//!   an unknown field, is refused with 400 as Confluence refuses CQL it cannot parse.
//! - `GET /rest/api/admin/users/list/active` (Data Center 9.4+): every active user with
//!   `email`, paged, only to a Confluence administrator (403 otherwise).
//! - `GET /rest/experimental/template/page?spaceKey=&expand=body`: a space's page templates
//!   ([`FakeConfluence::put_template`]), with `body.storage` only when `expand` names `body`;
//!   404 for a space the fake does not know.
//!
//! Read restrictions name users by username and by their real user key when the fake knows
//! the user (as Confluence does).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::server::{
    Journal, Next, Server, answer_late, apply_fault, iso_now, json_response, lock, query_param,
    read_body, wait_async, wait_blocking, with_header,
};
use crate::{Fault, RecordedRequest, fixture};

const DAY: Duration = Duration::from_secs(86_400);

/// Username of the service account Pagehook acts as; `GET /rest/api/user/current` returns it
/// and everything the fake creates is authored by it, so loop prevention can be tested.
pub const SERVICE_USERNAME: &str = "pagehook";
/// User key of the service account.
pub const SERVICE_USER_KEY: &str = "8a7f80839e460b0f019e460bfa1e0001";
/// Display name of the service account.
pub const SERVICE_DISPLAY_NAME: &str = "Pagehook";
/// E-mail of the service account.
pub const SERVICE_EMAIL: &str = "pagehook@example.com";

/// Endpoint names for [`FakeConfluence::inject`] and [`FakeConfluence::calls`].
///
/// Note that `GET /rest/api/content` is the *search* (find by title); reading one piece of
/// content by id, as enrichment does, is [`endpoints::GET_CONTENT`].
pub mod endpoints {
    /// `GET /rest/api/content/{id}`: read one piece of content (enrichment).
    pub const GET_CONTENT: &str = "GET /rest/api/content/{id}";
    /// `GET /rest/api/content?spaceKey=&title=&type=`: find content by title.
    pub const SEARCH_CONTENT: &str = "GET /rest/api/content";
    /// `POST /rest/api/content`: create a page, blog post or comment.
    pub const CREATE_CONTENT: &str = "POST /rest/api/content";
    /// `GET /rest/api/content/{id}/child/comment`: list a page's comments.
    pub const LIST_COMMENTS: &str = "GET /rest/api/content/{id}/child/comment";
    /// `POST /rest/api/content/{id}/label`: add labels.
    pub const ADD_LABELS: &str = "POST /rest/api/content/{id}/label";
    /// `GET /rest/api/user?key=`: read a user.
    pub const GET_USER: &str = "GET /rest/api/user";
    /// `GET /rest/api/user/current`: the authenticated account (test connection).
    pub const CURRENT_USER: &str = "GET /rest/api/user/current";
    /// `GET /rest/pat/latest/tokens`: the authenticated account's personal access tokens.
    pub const PAT_TOKENS: &str = "GET /rest/pat/latest/tokens";
    /// `GET /rest/api/space?start=&limit=&type=`: the spaces the caller may view.
    pub const LIST_SPACES: &str = "GET /rest/api/space";
    /// `GET /rest/api/space/{spaceKey}/permissions` (Confluence 9.1+): every permission
    /// granted in a space, answered only to the space's admins.
    pub const SPACE_PERMISSIONS: &str = "GET /rest/api/space/{spaceKey}/permissions";
    /// `GET /rest/api/user/memberof?username=` (or `?key=`): a user's groups.
    pub const MEMBER_OF: &str = "GET /rest/api/user/memberof";
    /// `GET /rest/api/content/{id}/watchers` (Data Center 9): who watches content.
    pub const WATCHERS: &str = "GET /rest/api/content/{id}/watchers";
    /// `GET /rest/api/content/search?cql=`: CQL search.
    pub const CQL_SEARCH: &str = "GET /rest/api/content/search";
    /// `GET /rest/api/admin/users/list/active` (Data Center 9.4+): active users.
    pub const ACTIVE_USERS: &str = "GET /rest/api/admin/users/list/active";
    /// `GET /rest/experimental/template/page?spaceKey=`: a space's page templates.
    pub const PAGE_TEMPLATES: &str = "GET /rest/experimental/template/page";
    /// All of the above.
    pub const ALL: &[&str] = &[
        GET_CONTENT,
        SEARCH_CONTENT,
        CREATE_CONTENT,
        LIST_COMMENTS,
        ADD_LABELS,
        GET_USER,
        CURRENT_USER,
        PAT_TOKENS,
        LIST_SPACES,
        SPACE_PERMISSIONS,
        MEMBER_OF,
        WATCHERS,
        CQL_SEARCH,
        ACTIVE_USERS,
        PAGE_TEMPLATES,
    ];
}

/// The credentials the fake accepts; anything else gets 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfluenceAuth {
    /// A personal access token, sent as `Authorization: Bearer <pat>`.
    Bearer(String),
    /// Basic authentication with a username and password.
    Basic {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
}

/// A page, blog post or comment created through `POST /rest/api/content`.
#[derive(Debug, Clone)]
pub struct ConfluenceCreated {
    /// The id the fake assigned.
    pub id: u64,
    /// `page`, `blogpost` or `comment`.
    pub content_type: String,
    /// The title (for comments, Confluence's `Re: <page title>`).
    pub title: String,
    /// The space the content lives in.
    pub space_key: String,
    /// The parent page (pages) or parent comment (replies), if any.
    pub parent_id: Option<u64>,
    /// The page or blog post a comment is on.
    pub container_id: Option<u64>,
    /// The storage-format body as sent.
    pub storage: String,
    /// The storage-format body as saved: what Confluence keeps and answers with afterwards,
    /// rewritten by [`FakeConfluence::saved_storage`] (so it differs from `storage` byte for byte).
    pub stored: String,
    /// Labels sent in `metadata.labels`.
    pub labels: Vec<String>,
    /// `version.minorEdit` as sent (false when absent).
    pub minor_edit: bool,
    /// The request body as sent.
    pub request: Value,
    /// When the content was created.
    pub received_at: Instant,
}

/// Labels added through `POST /rest/api/content/{id}/label`.
#[derive(Debug, Clone)]
pub struct LabelsAdded {
    /// The content labelled.
    pub content_id: u64,
    /// The label names, lower-cased as Confluence stores them.
    pub labels: Vec<String>,
    /// When the request was carried out.
    pub received_at: Instant,
}

struct ConfState {
    base_url: String,
    content: BTreeMap<u64, Value>,
    /// key → (id, name)
    spaces: BTreeMap<String, (u64, String)>,
    /// user key → user JSON
    users: BTreeMap<String, Value>,
    created: Vec<ConfluenceCreated>,
    labels_added: Vec<LabelsAdded>,
    next_id: u64,
    next_label_id: u64,
    /// The service account's personal access tokens: (name, created, expires); the first is
    /// the one the fake's bearer credentials belong to.
    tokens: Vec<(String, SystemTime, Option<SystemTime>)>,
    /// Storage bodies saved so far, for stable macro ids.
    saves: u64,
    /// Content purged with `remove_content` (gone, even as someone's ancestor).
    purged: std::collections::BTreeSet<u64>,
    /// Whether `ancestors.*` expansions reach into each ancestor.
    nested_ancestor_expansion: bool,
    /// People who can sign in besides the service account, by username.
    accounts: BTreeMap<String, Account>,
    /// Space permissions: (space key, subject, operation), in the order granted.
    grants: Vec<(String, Subject, Operation)>,
    /// Watchers by content id: usernames, in the order added.
    watchers: BTreeMap<u64, Vec<String>>,
    /// Whether the service account is a Confluence administrator.
    service_admin: bool,
    /// Page templates: (space key, id, name, storage body), in the order added.
    templates: Vec<(String, u64, String, String)>,
}

/// Someone added with [`FakeConfluence::add_user`].
#[derive(Clone, Default)]
struct Account {
    user_key: String,
    /// `None`: signs in with personal access tokens only.
    password: Option<String>,
    /// Personal access tokens, sent as `Authorization: Bearer <token>`.
    pats: Vec<String>,
    /// Group names, in the order given.
    groups: Vec<String>,
}

/// Who a space permission is granted to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    /// A user, by username.
    User(String),
    /// A group, by name.
    Group(String),
}

/// A space permission: Confluence's `operationKey` and `targetType`
/// (`read`/`space`, `administer`/`space`, `create`/`page`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Operation {
    key: String,
    target: String,
}

/// Who a request is authenticated as.
enum Caller {
    /// The service account, with the fake's own credentials.
    Service,
    /// A user added with [`FakeConfluence::add_user`], by username.
    User(String),
}

struct App {
    journal: Journal,
    auth: ConfluenceAuth,
    state: Mutex<ConfState>,
}

/// A fake Confluence Data Center at `http://127.0.0.1:PORT` (no context path).
///
/// Content is served as registered with [`FakeConfluence::put_content`] (see
/// [`ContentBuilder`]) and collapsed according to `expand` the way Confluence does: a field
/// that was not expanded is absent and listed under `_expandable`. Content whose status is not
/// `current` (e.g. `trashed`) is found only with `status=any` (or its status named).
/// Endpoint names for `inject` and `calls` are in [`endpoints`].
pub struct FakeConfluence {
    app: Arc<App>,
    server: Server,
}

impl FakeConfluence {
    /// Starts a fake that accepts only `auth`. The service account
    /// ([`SERVICE_USERNAME`]) is the authenticated user.
    ///
    /// # Panics
    /// If the shared fixtures cannot be read (see [`crate::fixtures_dir`]).
    pub fn start(auth: ConfluenceAuth) -> FakeConfluence {
        let app = Arc::new(App {
            journal: Journal::default(),
            auth,
            state: Mutex::new(ConfState {
                base_url: String::new(),
                content: BTreeMap::new(),
                spaces: BTreeMap::new(),
                users: BTreeMap::new(),
                created: Vec::new(),
                labels_added: Vec::new(),
                next_id: 3_000_001,
                next_label_id: 5_000_001,
                tokens: vec![(
                    "pagehook".to_string(),
                    SystemTime::now() - DAY,
                    Some(SystemTime::now() + 89 * DAY),
                )],
                saves: 0,
                purged: std::collections::BTreeSet::new(),
                nested_ancestor_expansion: true,
                accounts: BTreeMap::new(),
                grants: Vec::new(),
                watchers: BTreeMap::new(),
                service_admin: false,
                templates: Vec::new(),
            }),
        });
        let router = Router::new().fallback(handle).with_state(app.clone());
        let server = Server::spawn("confluence", router);
        let fake = FakeConfluence { app, server };
        lock(&fake.app.state).base_url = fake.base_url();
        fake.put_user(
            SERVICE_USER_KEY,
            SERVICE_USERNAME,
            SERVICE_DISPLAY_NAME,
            SERVICE_EMAIL,
        );
        fake
    }

    /// `http://127.0.0.1:PORT`; REST paths start with `/rest/api/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The listening address (always on 127.0.0.1).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Registers (or replaces) content to serve at `GET /rest/api/content/{id}`.
    ///
    /// `id` overrides the JSON's own, `_links.base`/`_links.self` are pointed at this fake
    /// (Confluence reports its own base URL), and the content's space becomes known so pages
    /// can be created in it.
    pub fn put_content(&self, id: u64, content: Value) {
        let mut st = lock(&self.app.state);
        let mut content = content;
        content["id"] = Value::String(id.to_string());
        let base = st.base_url.clone();
        if let Some(links) = content.get_mut("_links").and_then(Value::as_object_mut) {
            links.insert("base".into(), Value::String(base.clone()));
            links.insert(
                "self".into(),
                Value::String(format!("{base}/rest/api/content/{id}")),
            );
        }
        if let Some(key) = content.pointer("/space/key").and_then(Value::as_str) {
            let space_id = content
                .pointer("/space/id")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| space_id(key));
            let name = content
                .pointer("/space/name")
                .and_then(Value::as_str)
                .unwrap_or(key)
                .to_string();
            st.spaces.entry(key.to_string()).or_insert((space_id, name));
        }
        st.purged.remove(&id);
        st.content.insert(id, content);
    }

    /// Replaces the view restrictions set on content `id` itself (`restrictions.read`), as an
    /// admin does on the page's restrictions dialog; empty lists lift them. Content below it
    /// inherits them without its own `restrictions.read` changing.
    ///
    /// # Panics
    /// If `id` was not registered with [`FakeConfluence::put_content`] (or created).
    pub fn set_read_restrictions(&self, id: u64, users: &[&str], groups: &[&str]) {
        let mut st = lock(&self.app.state);
        let content = st
            .content
            .get_mut(&id)
            .unwrap_or_else(|| panic!("set_read_restrictions: no content {id}"));
        content["restrictions"] = restrictions_json(&id.to_string(), users, groups);
        let known: Vec<(String, String)> = st
            .users
            .values()
            .filter_map(|u| {
                Some((
                    u["username"].as_str()?.to_string(),
                    u["userKey"].as_str()?.to_string(),
                ))
            })
            .collect();
        let content = st.content.get_mut(&id).expect("checked above");
        if let Some(listed) = content
            .pointer_mut("/restrictions/read/restrictions/user/results")
            .and_then(Value::as_array_mut)
        {
            for u in listed {
                let name = u["username"].as_str().unwrap_or_default().to_string();
                if let Some((_, key)) = known.iter().find(|(n, _)| *n == name) {
                    u["userKey"] = json!(key);
                }
            }
        }
    }

    /// Makes `username` (a user the fake knows) watch content `id`, as the "Watch" button
    /// does; listed at `GET /rest/api/content/{id}/watchers`.
    ///
    /// # Panics
    /// If the user is not known (see [`FakeConfluence::put_user`], [`FakeConfluence::add_user`]).
    pub fn watch(&self, id: u64, username: &str) {
        let mut st = lock(&self.app.state);
        assert!(
            st.users.values().any(|u| u["username"] == username),
            "watch: no user {username}"
        );
        let list = st.watchers.entry(id).or_default();
        if !list.iter().any(|u| u == username) {
            list.push(username.to_string());
        }
    }

    /// With `true`, the service account is a Confluence administrator: it may list any
    /// content's watchers and the active users. Off by default.
    pub fn set_service_confluence_admin(&self, on: bool) {
        lock(&self.app.state).service_admin = on;
    }

    /// Adds a page template named `name` to `space` (made known if it was not), or replaces
    /// the body of the one with that name; returns its template id.
    pub fn put_template(&self, space: &str, name: &str, storage: &str) -> u64 {
        let mut st = lock(&self.app.state);
        if !st.spaces.contains_key(space) {
            st.spaces.insert(
                space.to_string(),
                (space_id(space), default_space_name(space)),
            );
        }
        if let Some(t) = st
            .templates
            .iter_mut()
            .find(|(s, _, n, _)| s == space && n == name)
        {
            t.3 = storage.to_string();
            return t.1;
        }
        let id = 7_000_001 + st.templates.len() as u64;
        st.templates
            .push((space.to_string(), id, name.to_string(), storage.to_string()));
        id
    }

    /// Removes the template named `name` from `space`.
    pub fn remove_template(&self, space: &str, name: &str) {
        lock(&self.app.state)
            .templates
            .retain(|(s, _, n, _)| !(s == space && n == name));
    }

    /// With `false`, answers like a server (or a proxy in front of it) that does not expand
    /// beyond the first level of `ancestors`: each ancestor comes back bare (id, type,
    /// status, title), whatever `ancestors.*` asked for, so a client must read every
    /// ancestor itself. On by default.
    pub fn set_nested_ancestor_expansion(&self, on: bool) {
        lock(&self.app.state).nested_ancestor_expansion = on;
    }

    /// The content as currently stored, with every field present (no `expand` applied):
    /// what was registered or created, plus any labels added since.
    pub fn content(&self, id: u64) -> Option<Value> {
        lock(&self.app.state).content.get(&id).cloned()
    }

    /// Purges content: it then answers 404 even with `status=any`, also as an ancestor that
    /// other content still names.
    pub fn remove_content(&self, id: u64) {
        let mut st = lock(&self.app.state);
        st.content.remove(&id);
        st.purged.insert(id);
    }

    /// Makes a space known so pages can be created in it (unknown space → 404).
    pub fn add_space(&self, key: &str, name: &str) {
        lock(&self.app.state)
            .spaces
            .insert(key.to_string(), (space_id(key), name.to_string()));
    }

    /// Registers a user for `GET /rest/api/user?key=` (or `?username=`), in user.json's shape.
    pub fn put_user(&self, key: &str, username: &str, display_name: &str, email: &str) {
        let mut st = lock(&self.app.state);
        let mut user = fixture("confluence/rest/user.json");
        user["userKey"] = json!(key);
        user["username"] = json!(username);
        user["displayName"] = json!(display_name);
        user["email"] = json!(email);
        let base = st.base_url.clone();
        user["_links"] = json!({
            "base": base,
            "context": "",
            "self": format!("{base}/rest/api/user?key={key}"),
        });
        st.users.insert(key.to_string(), user);
    }

    /// Replaces the service account's personal access tokens served at
    /// `GET /rest/pat/latest/tokens`, as `(name, expires at)` (`None`: never expires).
    ///
    /// The first token is the one the fake's own credentials belong to: once its expiry has
    /// passed, every request with the bearer PAT is refused with 401, as Confluence refuses an
    /// expired token (it cannot list its own expiry any more). By default the service account
    /// has one token, `pagehook`, expiring in 89 days.
    pub fn set_tokens(&self, tokens: &[(&str, Option<SystemTime>)]) {
        let created = SystemTime::now() - DAY;
        lock(&self.app.state).tokens = tokens
            .iter()
            .map(|(name, expires)| ((*name).to_string(), created, *expires))
            .collect();
    }

    /// Writes a storage-format body out the way Confluence saves it, as every create does:
    /// macros gain an `ac:macro-id` (`seed` varies them), entities become characters,
    /// attributes are reordered, empty elements re-closed, whitespace between blocks and XML
    /// comments dropped; `Err` for malformed XML (Confluence's 400 "Error parsing xhtml").
    /// Saving a saved body again returns it unchanged.
    pub fn saved_storage(xml: &str, seed: u64) -> Result<String, String> {
        saved_storage(xml, seed)
    }

    /// Adds someone who can sign in with Basic authentication as `username`:`password` (an
    /// empty password: personal access tokens only, see [`FakeConfluence::add_pat`]) and who
    /// belongs to `groups`. They are also served at `GET /rest/api/user?key=` like
    /// [`FakeConfluence::put_user`]'s users, and answer `GET /rest/api/user/current` as
    /// themselves. They may view no space until [`FakeConfluence::grant_space`] says so
    /// (for them or one of their groups).
    ///
    /// # Panics
    /// If `username` is the service account's or was added before.
    pub fn add_user(
        &self,
        username: &str,
        user_key: &str,
        display_name: &str,
        email: &str,
        password: &str,
        groups: &[&str],
    ) {
        assert!(
            username != SERVICE_USERNAME,
            "add_user: {username} is the service account"
        );
        assert!(
            !lock(&self.app.state).accounts.contains_key(username),
            "add_user: {username} was added before"
        );
        self.put_user(user_key, username, display_name, email);
        lock(&self.app.state).accounts.insert(
            username.to_string(),
            Account {
                user_key: user_key.to_string(),
                password: (!password.is_empty()).then(|| password.to_string()),
                pats: Vec::new(),
                groups: groups.iter().map(|g| (*g).to_string()).collect(),
            },
        );
    }

    /// Gives `username` (added with [`FakeConfluence::add_user`]) a personal access token:
    /// `Authorization: Bearer <token>` then authenticates as them.
    ///
    /// # Panics
    /// If `username` was not added.
    pub fn add_pat(&self, username: &str, token: &str) {
        lock(&self.app.state)
            .accounts
            .get_mut(username)
            .unwrap_or_else(|| panic!("add_pat: no user {username}; add_user first"))
            .pats
            .push(token.to_string());
    }

    /// Adds `username` (added with [`FakeConfluence::add_user`]) to `group`.
    ///
    /// # Panics
    /// If `username` was not added.
    pub fn add_to_group(&self, username: &str, group: &str) {
        let mut st = lock(&self.app.state);
        let account = st
            .accounts
            .get_mut(username)
            .unwrap_or_else(|| panic!("add_to_group: no user {username}; add_user first"));
        if !account.groups.iter().any(|g| g == group) {
            account.groups.push(group.to_string());
        }
    }

    /// Grants space permissions in `space` (made known if it was not) to `subject`:
    /// `"group:<name>"` for a group, `"user:<username>"` (or a bare username) for a user.
    /// Each operation is Confluence's `operationKey`, with its `targetType` after a colon
    /// when it is not `space`: `"read"`, `"administer"`, `"export"`, `"restrict_content"`,
    /// `"create:page"`, `"create:blogpost"`, `"delete:comment"`, ...
    ///
    /// As in Confluence, every other space permission comes with "view" (`read`): granting
    /// any operation grants `read` as well. Granting twice changes nothing.
    pub fn grant_space(&self, space: &str, subject: &str, operations: &[&str]) {
        let subject = match subject.split_once(':') {
            Some(("group", name)) => Subject::Group(name.to_string()),
            Some(("user", name)) => Subject::User(name.to_string()),
            Some((kind, _)) => panic!("grant_space: subject kind {kind:?} is not user or group"),
            None => Subject::User(subject.to_string()),
        };
        let mut st = lock(&self.app.state);
        if !st.spaces.contains_key(space) {
            st.spaces.insert(
                space.to_string(),
                (space_id(space), default_space_name(space)),
            );
        }
        let mut wanted: Vec<Operation> = Vec::new();
        if !operations.is_empty() {
            wanted.push(Operation {
                key: "read".into(),
                target: "space".into(),
            });
        }
        for op in operations {
            let (key, target) = op.split_once(':').unwrap_or((op, "space"));
            wanted.push(Operation {
                key: key.to_string(),
                target: target.to_string(),
            });
        }
        for op in wanted {
            let grant = (space.to_string(), subject.clone(), op);
            if !st.grants.contains(&grant) {
                st.grants.push(grant);
            }
        }
    }

    /// Takes every permission `subject` (as in [`FakeConfluence::grant_space`]) has in
    /// `space` away, as removing "view" does in Confluence.
    pub fn revoke_space(&self, space: &str, subject: &str) {
        let subject = match subject.split_once(':') {
            Some(("group", name)) => Subject::Group(name.to_string()),
            Some((_, name)) => Subject::User(name.to_string()),
            None => Subject::User(subject.to_string()),
        };
        lock(&self.app.state)
            .grants
            .retain(|(s, who, _)| !(s == space && *who == subject));
    }

    /// Every page, blog post and comment created, in order.
    pub fn created(&self) -> Vec<ConfluenceCreated> {
        lock(&self.app.state).created.clone()
    }

    /// Blocks until at least `n` items were created, then returns all of them.
    ///
    /// # Panics
    /// After `timeout`. Inside an async test use [`FakeConfluence::wait_for_created_async`].
    pub fn wait_for_created(&self, n: usize, timeout: Duration) -> Vec<ConfluenceCreated> {
        wait_blocking("created Confluence items", n, timeout, || self.created())
    }

    /// Async form of [`FakeConfluence::wait_for_created`]; needs a tokio runtime with timers.
    pub async fn wait_for_created_async(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<ConfluenceCreated> {
        wait_async("created Confluence items", n, timeout, || self.created()).await
    }

    /// Every successful `POST /rest/api/content/{id}/label`, in order.
    pub fn labels_added(&self) -> Vec<LabelsAdded> {
        lock(&self.app.state).labels_added.clone()
    }

    /// How many requests reached an endpoint (see [`endpoints`]; faulted and rejected ones
    /// included).
    pub fn calls(&self, endpoint: &str) -> usize {
        self.app.journal.calls(endpoint)
    }

    /// Queues a fault for the next request to `endpoint`, one of [`endpoints::ALL`], e.g.
    /// `"GET /rest/api/content/{id}"` or `"POST /rest/api/content"`.
    ///
    /// # Panics
    /// For an unknown endpoint name or `Fault::SlackError`.
    pub fn inject(&self, endpoint: &str, fault: Fault) {
        assert!(
            endpoints::ALL.contains(&endpoint),
            "FakeConfluence::inject: unknown endpoint {endpoint:?}; known: {:?}",
            endpoints::ALL
        );
        assert!(
            !matches!(fault, Fault::SlackError(_)),
            "FakeConfluence::inject: Fault::SlackError is Slack-only"
        );
        self.app.journal.inject(endpoint, fault);
    }

    /// Faults still queued for `endpoint`.
    pub fn faults_left(&self, endpoint: &str) -> usize {
        self.app.journal.faults_left(endpoint)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app.journal.requests()
    }
}

/// A made-up but stable space id; the fixtures' ENG keeps its own.
fn space_id(key: &str) -> u64 {
    if key == "ENG" {
        return 65547;
    }
    65_536
        + key
            .bytes()
            .fold(0u64, |acc, b| (acc * 131 + u64::from(b)) % 1_000_000)
}

fn url_title(title: &str) -> String {
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

fn default_space_name(key: &str) -> String {
    match key {
        "ENG" => "Engineering".to_string(),
        "INC" => "Incidents".to_string(),
        other => other.to_string(),
    }
}

fn label_page(results: Vec<Value>) -> Value {
    let size = results.len();
    json!({"results": results, "start": 0, "limit": 200, "size": size})
}

fn restrictions_json(id: &str, users: &[&str], groups: &[&str]) -> Value {
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

fn conf_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({
            "statusCode": status.as_u16(),
            "data": {"authorized": false, "valid": true, "errors": [], "successful": false},
            "message": message,
            "reason": status.canonical_reason().unwrap_or(""),
        }),
    )
}

fn not_found(id: &str) -> Response {
    conf_error(
        StatusCode::NOT_FOUND,
        &format!("No content found with id: ContentId{{id={id}}}"),
    )
}

fn bad_request(message: &str) -> Response {
    conf_error(StatusCode::BAD_REQUEST, message)
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            let mut r = conf_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            for (name, value) in [
                ("x-ratelimit-limit", "20"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-interval-seconds", "1"),
                ("x-ratelimit-fillrate", "10"),
            ] {
                r = with_header(r, name, value);
            }
            with_header(r, "retry-after", &retry_after_secs.to_string())
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            conf_error(status, &format!("fake confluence: injected HTTP {code}"))
        }
        Fault::SlackError(_) | Fault::Delay(_) | Fault::Reset | Fault::StatusAfterEffect(_) => {
            unreachable!("refused by inject or handled by apply_fault")
        }
    }
}

enum Route {
    Tokens,
    Search,
    Create,
    Get(String),
    Comments(String),
    Labels(String),
    User,
    CurrentUser,
    Spaces,
    SpacePermissions(String),
    MemberOf,
    Watchers(String),
    CqlSearch,
    ActiveUsers,
    PageTemplates,
}

/// Maps a request to its route and endpoint name; `Err(true)` means a known path with the
/// wrong method, `Err(false)` an unknown path.
fn route_of(method: &Method, path: &str) -> Result<(Route, &'static str), bool> {
    if path.trim_end_matches('/') == "/rest/pat/latest/tokens" {
        return if *method == Method::GET {
            Ok((Route::Tokens, endpoints::PAT_TOKENS))
        } else {
            Err(true)
        };
    }
    if path.trim_end_matches('/') == "/rest/experimental/template/page" {
        return if *method == Method::GET {
            Ok((Route::PageTemplates, endpoints::PAGE_TEMPLATES))
        } else {
            Err(true)
        };
    }
    let Some(rest) = path.strip_prefix("/rest/api/") else {
        return Err(false);
    };
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let (route, endpoint, wanted) = match segs.as_slice() {
        ["content"] if method == Method::POST => {
            (Route::Create, endpoints::CREATE_CONTENT, Method::POST)
        }
        ["content"] => (Route::Search, endpoints::SEARCH_CONTENT, Method::GET),
        ["content", "search"] => (Route::CqlSearch, endpoints::CQL_SEARCH, Method::GET),
        ["content", id, "watchers"] => (
            Route::Watchers(id.to_string()),
            endpoints::WATCHERS,
            Method::GET,
        ),
        ["admin", "users", "list", "active"] => {
            (Route::ActiveUsers, endpoints::ACTIVE_USERS, Method::GET)
        }
        ["content", id] => (
            Route::Get(id.to_string()),
            endpoints::GET_CONTENT,
            Method::GET,
        ),
        ["content", id, "child", "comment"] => (
            Route::Comments(id.to_string()),
            endpoints::LIST_COMMENTS,
            Method::GET,
        ),
        ["content", id, "label"] => (
            Route::Labels(id.to_string()),
            endpoints::ADD_LABELS,
            Method::POST,
        ),
        ["user"] => (Route::User, endpoints::GET_USER, Method::GET),
        ["user", "current"] => (Route::CurrentUser, endpoints::CURRENT_USER, Method::GET),
        ["user", "memberof"] => (Route::MemberOf, endpoints::MEMBER_OF, Method::GET),
        ["space"] => (Route::Spaces, endpoints::LIST_SPACES, Method::GET),
        ["space", key, "permissions"] => (
            Route::SpacePermissions(key.to_string()),
            endpoints::SPACE_PERMISSIONS,
            Method::GET,
        ),
        _ => return Err(false),
    };
    if *method == wanted {
        Ok((route, endpoint))
    } else {
        Err(true)
    }
}

fn authorized(auth: &ConfluenceAuth, parts: &Parts) -> bool {
    let Some((scheme, value)) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    match auth {
        ConfluenceAuth::Bearer(pat) => scheme.eq_ignore_ascii_case("bearer") && value.trim() == pat,
        ConfluenceAuth::Basic { username, password } => {
            scheme.eq_ignore_ascii_case("basic")
                && B64
                    .decode(value.trim())
                    .is_ok_and(|d| d == format!("{username}:{password}").as_bytes())
        }
    }
}

async fn handle(State(app): State<Arc<App>>, req: Request<Body>) -> Response {
    let (parts, body) = match read_body(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let routed = route_of(&parts.method, parts.uri.path());
    let fault = app
        .journal
        .record(&parts, &body, routed.as_ref().ok().map(|(_, e)| *e));
    let route = match routed {
        Ok((route, _)) => route,
        Err(true) => return conf_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        Err(false) => {
            return conf_error(
                StatusCode::NOT_FOUND,
                &format!("null for uri: {}", parts.uri),
            );
        }
    };
    let delay = match apply_fault(fault, &parts, fault_response).await {
        Next::Respond(r) => return r,
        Next::Proceed { delay } => delay,
    };
    answer_late(dispatch(&app, &parts, &body, route), delay).await
}

fn dispatch(app: &App, parts: &Parts, body: &Bytes, route: Route) -> Response {
    let expired = matches!(app.auth, ConfluenceAuth::Bearer(_))
        && lock(&app.state)
            .tokens
            .first()
            .and_then(|(_, _, expires)| *expires)
            .is_some_and(|at| at <= SystemTime::now());
    let caller = if authorized(&app.auth, parts) {
        (!expired).then_some(Caller::Service)
    } else {
        user_by_credentials(&lock(&app.state), parts).map(Caller::User)
    };
    let Some(caller) = caller else {
        return with_header(
            conf_error(
                StatusCode::UNAUTHORIZED,
                "Client must be authenticated to access this resource.",
            ),
            "x-seraph-loginreason",
            "AUTHENTICATED_FAILED",
        );
    };
    let mut st = lock(&app.state);
    match route {
        Route::Tokens => match &caller {
            Caller::Service => list_tokens(&st),
            Caller::User(name) => list_user_tokens(&st, name),
        },
        Route::Get(id) => get_content(&st, &id, parts),
        Route::Search => search(&st, parts),
        Route::Create => create(&mut st, body),
        Route::Comments(id) => list_comments(&st, &id, parts),
        Route::Labels(id) => add_labels(&mut st, &id, body),
        Route::User => get_user(&st, parts),
        Route::CurrentUser => {
            let key = match &caller {
                Caller::Service => SERVICE_USER_KEY.to_string(),
                Caller::User(name) => st.accounts[name].user_key.clone(),
            };
            json_response(StatusCode::OK, &st.users[&key].clone())
        }
        Route::Spaces => list_spaces(&st, &caller, parts),
        Route::SpacePermissions(key) => space_permissions(&st, &caller, &key),
        Route::MemberOf => member_of(&st, parts),
        Route::Watchers(id) => list_watchers(&st, &caller, &id, parts),
        Route::CqlSearch => cql_search(&st, parts),
        Route::ActiveUsers => active_users(&st, &caller, parts),
        Route::PageTemplates => page_templates(&st, parts),
    }
}

/// The added user whose password (Basic) or personal access token (Bearer) this request
/// carries, if any.
fn user_by_credentials(st: &ConfState, parts: &Parts) -> Option<String> {
    let (scheme, value) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return st
            .accounts
            .iter()
            .find(|(_, a)| a.pats.iter().any(|p| p == value))
            .map(|(name, _)| name.clone());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(B64.decode(value).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    let account = st.accounts.get(username)?;
    (account.password.as_deref() == Some(password)).then(|| username.to_string())
}

/// Whether the caller holds `operation` (on target `space`) in `space`, directly or through
/// one of their groups. The service account may view every space and holds nothing else
/// unless granted.
fn holds(st: &ConfState, caller: &Caller, space: &str, operation: &str) -> bool {
    let (username, groups): (&str, &[String]) = match caller {
        Caller::Service => {
            if operation == "read" && st.spaces.contains_key(space) {
                return true;
            }
            (SERVICE_USERNAME, &[])
        }
        Caller::User(name) => (name.as_str(), st.accounts[name].groups.as_slice()),
    };
    st.grants.iter().any(|(s, who, op)| {
        s == space
            && op.key == operation
            && op.target == "space"
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
fn list_spaces(st: &ConfState, caller: &Caller, parts: &Parts) -> Response {
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
const SPACE_LIMIT_MAX: usize = 500;

/// The most groups one `GET /rest/api/user/memberof` answers with (also its default).
const GROUP_LIMIT_MAX: usize = 200;

/// `start`/`limit` paging of ready-made items (no `expand`), in Confluence's list shape with
/// a relative `_links.next` while more remain.
fn list_page(
    st: &ConfState,
    parts: &Parts,
    items: Vec<Value>,
    default_limit: usize,
    max_limit: usize,
) -> Response {
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
    json_response(
        StatusCode::OK,
        &json!({"results": results, "start": start, "limit": limit, "size": size, "_links": links}),
    )
}

/// `GET /rest/api/space/{spaceKey}/permissions` (Confluence 9.1+): a bare array of every
/// permission granted in the space, one entry per subject and operation. A user subject
/// carries only its `userKey` and a group its `name`, as Data Center answers
/// (CONFSERVER-100505 asks for usernames to be added). Only the space's admins get it: a
/// caller who may view the space but not administer it gets 403, one who may not view it (or
/// an unknown space) 404, as Confluence hides spaces one cannot see.
fn space_permissions(st: &ConfState, caller: &Caller, key: &str) -> Response {
    let Some((space_id, _)) = st.spaces.get(key) else {
        return conf_error(StatusCode::NOT_FOUND, &format!("No space with key : {key}"));
    };
    if !holds(st, caller, key, "read") {
        return conf_error(StatusCode::NOT_FOUND, &format!("No space with key : {key}"));
    }
    if !holds(st, caller, key, "administer") {
        return conf_error(
            StatusCode::FORBIDDEN,
            &format!("User is not permitted to view the permissions of space {key}"),
        );
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
fn member_of(st: &ConfState, parts: &Parts) -> Response {
    let username = if let Some(name) = query_param(parts, "username") {
        name
    } else if let Some(key) = query_param(parts, "key") {
        match st.users.get(&key).and_then(|u| u["username"].as_str()) {
            Some(name) => name.to_string(),
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
    } else if st
        .users
        .values()
        .any(|u| u["username"] == username.as_str())
    {
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

/// Whether the caller is a Confluence administrator (only the service account can be).
fn confluence_admin(st: &ConfState, caller: &Caller) -> bool {
    matches!(caller, Caller::Service) && st.service_admin
}

/// A user as Data Center lists one among others (watchers, active users).
fn listed_user(st: &ConfState, user: &Value, with_email: bool) -> Value {
    let mut out = json!({
        "type": "known",
        "username": user["username"],
        "userKey": user["userKey"],
        "displayName": user["displayName"],
        "profilePicture": {
            "path": "/images/icons/profilepics/default.svg",
            "width": 48, "height": 48, "isDefault": true,
        },
        "_links": {"self": format!("{}/rest/api/user?key={}", st.base_url, user["userKey"].as_str().unwrap_or_default())},
    });
    if with_email {
        out["email"] = user["email"].clone();
    }
    out
}

/// `GET /rest/api/content/{id}/watchers` (Data Center 9): who watches the content, paged
/// (25 by default), only to a Confluence administrator or an administrator of the content's
/// space; 403 to anyone else, 404 for unknown content.
fn list_watchers(st: &ConfState, caller: &Caller, id: &str, parts: &Parts) -> Response {
    let Some(content) = id.parse::<u64>().ok().and_then(|n| resolve(st, n)) else {
        return not_found(id);
    };
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
        .filter_map(|name| st.users.values().find(|u| u["username"] == name.as_str()))
        .map(|u| listed_user(st, u, false))
        .collect();
    list_page(st, parts, items, 25, 200)
}

/// `GET /rest/api/admin/users/list/active` (Data Center 9.4+): every active user with their
/// email, paged (25 by default, 200 at most), only to a Confluence administrator.
fn active_users(st: &ConfState, caller: &Caller, parts: &Parts) -> Response {
    if !confluence_admin(st, caller) {
        return conf_error(
            StatusCode::FORBIDDEN,
            "Only Confluence administrators may list users",
        );
    }
    let items = st
        .users
        .values()
        .map(|u| listed_user(st, u, true))
        .collect();
    list_page(st, parts, items, 25, 200)
}

/// `GET /rest/experimental/template/page?spaceKey=`: the space's page templates, paged, each
/// `{"templateId","name","description","templateType":"page","space"}` and with
/// `expand=body` also `body.storage`.
fn page_templates(st: &ConfState, parts: &Parts) -> Response {
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

/// One CQL token.
#[derive(Debug, Clone, PartialEq)]
enum Cql {
    Word(String),
    Str(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

fn cql_tokens(cql: &str) -> Result<Vec<Cql>, String> {
    let mut out = Vec::new();
    let mut chars = cql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err("unterminated string".into()),
                        },
                        Some(q) if q == c => break,
                        Some(o) => s.push(o),
                    }
                }
                out.push(Cql::Str(s));
            }
            '~' => {
                chars.next();
                out.push(Cql::Op("~"));
            }
            '=' => {
                chars.next();
                out.push(Cql::Op("="));
            }
            '(' => {
                chars.next();
                out.push(Cql::Open);
            }
            ')' => {
                chars.next();
                out.push(Cql::Close);
            }
            ',' => {
                chars.next();
                out.push(Cql::Comma);
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '.' {
                        w.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Cql::Word(w));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(out)
}

/// One clause of the CQL subset the fake understands.
enum Clause {
    Text(String),
    Title(String),
    Types(Vec<String>),
    Space(String),
}

fn cql_parse(cql: &str) -> Result<Vec<Clause>, String> {
    let tokens = cql_tokens(cql)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    let value = |t: Option<&Cql>| match t {
        Some(Cql::Str(s)) | Some(Cql::Word(s)) => Ok(s.clone()),
        other => Err(format!("expected a value, found {other:?}")),
    };
    loop {
        let Some(Cql::Word(field)) = tokens.get(i) else {
            return Err(format!("expected a field at token {i}"));
        };
        let field = field.to_lowercase();
        match (field.as_str(), tokens.get(i + 1)) {
            ("text" | "sitesearch", Some(Cql::Op("~"))) => {
                clauses.push(Clause::Text(value(tokens.get(i + 2))?));
                i += 3;
            }
            ("title", Some(Cql::Op("~"))) => {
                clauses.push(Clause::Title(value(tokens.get(i + 2))?));
                i += 3;
            }
            ("type", Some(Cql::Op("="))) => {
                clauses.push(Clause::Types(vec![value(tokens.get(i + 2))?]));
                i += 3;
            }
            ("space", Some(Cql::Op("="))) => {
                clauses.push(Clause::Space(value(tokens.get(i + 2))?));
                i += 3;
            }
            ("type", Some(Cql::Word(w))) if w.eq_ignore_ascii_case("in") => {
                if tokens.get(i + 2) != Some(&Cql::Open) {
                    return Err("expected ( after in".into());
                }
                i += 3;
                let mut types = Vec::new();
                loop {
                    types.push(value(tokens.get(i))?);
                    match tokens.get(i + 1) {
                        Some(Cql::Comma) => i += 2,
                        Some(Cql::Close) => {
                            i += 2;
                            break;
                        }
                        other => return Err(format!("expected , or ) in list, found {other:?}")),
                    }
                }
                clauses.push(Clause::Types(types));
            }
            (f, op) => return Err(format!("field '{f}' with {op:?} is not supported here")),
        }
        match tokens.get(i) {
            None => return Ok(clauses),
            Some(Cql::Word(w)) if w.eq_ignore_ascii_case("and") => i += 1,
            other => return Err(format!("expected and, found {other:?}")),
        }
    }
}

/// Text of content for `text ~`: title and storage body without tags, lower case.
fn searchable(c: &Value) -> String {
    let body = c
        .pointer("/body/storage/value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut text = c["title"].as_str().unwrap_or_default().to_lowercase();
    text.push(' ');
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            ch if !in_tag => text.extend(ch.to_lowercase()),
            _ => {}
        }
    }
    text
}

/// `GET /rest/api/content/search?cql=&limit=&expand=`: current content matching the CQL,
/// expanded like `GET /rest/api/content/{id}`; 400 for CQL the fake cannot parse.
fn cql_search(st: &ConfState, parts: &Parts) -> Response {
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
                        .all(|w| text.contains(&w.to_lowercase()))
                }
                Clause::Title(words) => {
                    let title = c["title"].as_str().unwrap_or_default().to_lowercase();
                    words
                        .split_whitespace()
                        .all(|w| title.contains(&w.to_lowercase()))
                }
                Clause::Types(types) => types.iter().any(|t| c["type"] == t.as_str()),
                Clause::Space(key) => c["space"]["key"] == key.as_str(),
            })
        })
        .cloned()
        .collect();
    paged(st, parts, items)
}

/// `GET /rest/pat/latest/tokens` for an added user: their tokens, which never expire.
fn list_user_tokens(st: &ConfState, username: &str) -> Response {
    let created = iso_at(SystemTime::now() - DAY);
    let tokens: Vec<Value> = st.accounts[username]
        .pats
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"id": 8001 + i as u64, "name": format!("token-{}", i + 1), "createdAt": created}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(tokens))
}

/// Top-level fields Confluence leaves out unless `expand` asks for them.
const EXPANDABLE: &[&str] = &[
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
fn expand_view(st: &ConfState, content: &Value, expand: &str) -> Value {
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

fn status_matches(content: &Value, parts: &Parts) -> bool {
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
fn content_id(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Content `id` as Confluence would have it: registered (or created), or else an ancestor
/// that registered content names, which exists in Confluence as a plain page without
/// restrictions of its own; `None` when unknown or purged.
fn resolve(st: &ConfState, id: u64) -> Option<Value> {
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

fn get_content(st: &ConfState, id: &str, parts: &Parts) -> Response {
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
fn paged(st: &ConfState, parts: &Parts, items: Vec<Value>) -> Response {
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

fn search(st: &ConfState, parts: &Parts) -> Response {
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

fn list_comments(st: &ConfState, id: &str, parts: &Parts) -> Response {
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

fn get_user(st: &ConfState, parts: &Parts) -> Response {
    let user = if let Some(key) = query_param(parts, "key") {
        st.users
            .get(&key)
            .ok_or(format!("No user found with key : {key}"))
    } else if let Some(name) = query_param(parts, "username") {
        st.users
            .values()
            .find(|u| u["username"] == name.as_str())
            .ok_or(format!("No user found with username : {name}"))
    } else {
        return bad_request("Either a username or a key must be provided");
    };
    match user {
        Ok(u) => json_response(StatusCode::OK, u),
        Err(message) => conf_error(StatusCode::NOT_FOUND, &message),
    }
}

/// `GET /rest/pat/latest/tokens`: a bare JSON array of the account's tokens, newest last,
/// with Confluence's field names; timestamps as Confluence writes them
/// (`2026-01-12T18:07:13.603+0000`). A token that never expires has no `expiringAt`.
fn list_tokens(st: &ConfState) -> Response {
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
fn iso_at(at: SystemTime) -> String {
    crate::server::iso_at(at, "+0000")
}

/// HTML's named entities that Confluence's storage format accepts but bare XML does not know.
const ENTITIES: &[(&str, u32)] = &[
    ("nbsp", 160),
    ("iexcl", 161),
    ("cent", 162),
    ("pound", 163),
    ("yen", 165),
    ("sect", 167),
    ("copy", 169),
    ("laquo", 171),
    ("reg", 174),
    ("deg", 176),
    ("plusmn", 177),
    ("para", 182),
    ("middot", 183),
    ("raquo", 187),
    ("iquest", 191),
    ("Auml", 196),
    ("Ouml", 214),
    ("times", 215),
    ("Uuml", 220),
    ("szlig", 223),
    ("agrave", 224),
    ("auml", 228),
    ("ccedil", 231),
    ("egrave", 232),
    ("eacute", 233),
    ("ouml", 246),
    ("divide", 247),
    ("uuml", 252),
    ("ndash", 8211),
    ("mdash", 8212),
    ("lsquo", 8216),
    ("rsquo", 8217),
    ("ldquo", 8220),
    ("rdquo", 8221),
    ("bull", 8226),
    ("hellip", 8230),
    ("euro", 8364),
    ("trade", 8482),
    ("larr", 8592),
    ("uarr", 8593),
    ("rarr", 8594),
    ("darr", 8595),
    ("harr", 8596),
];

const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";
const AC_NS: &str = "http://atlassian.com/content";
const RI_NS: &str = "http://atlassian.com/resource/identifier";

/// HTML elements that never have content; Confluence writes them as `<br />`.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose whitespace-only text between children is layout, not content: Confluence
/// drops it when it saves.
const BLOCK_PARENTS: &[&str] = &[
    "ac:structured-macro",
    "ac:rich-text-body",
    "ac:layout",
    "ac:layout-section",
    "ac:layout-cell",
    "ac:task-list",
    "ac:task",
    "ac:link",
    "ac:image",
    "ul",
    "ol",
    "table",
    "colgroup",
    "thead",
    "tbody",
    "tfoot",
    "tr",
];

/// Checks a storage-format body is well-formed XML and writes it out the way Confluence
/// saves it; `Err` (Confluence's 400 "Error parsing xhtml") for a malformed body.
///
/// The fragment is wrapped in a root that declares the `ac:` and `ri:` namespaces and HTML's
/// common named entities, so only genuine mistakes (unclosed tags, stray `&`, unknown
/// prefixes) are refused. What comes out keeps every element, attribute value, text and macro
/// parameter, but not its bytes: every `ac:structured-macro` without one gets an
/// `ac:macro-id`; entities are written as characters (`&quot;` → `"`, `&#228;` → `ä`,
/// `&nbsp;` → U+00A0) and only `&`, `<`, `>` (and `"` in attributes) are escaped; attributes
/// come in reverse name order; empty `ac:`/`ri:` elements and HTML void elements are written
/// self-closed with a space (`<ri:page ... />`, `<br />`), other empty HTML elements as an
/// open and close pair (`<p></p>`); whitespace-only text between block elements is dropped;
/// XML comments and processing instructions are removed. `seed` makes the macro ids differ
/// from one save to the next.
fn saved_storage(xml: &str, seed: u64) -> Result<String, String> {
    let entities: String = ENTITIES
        .iter()
        .map(|(name, code)| format!("<!ENTITY {name} \"&#{code};\">"))
        .collect();
    let doc = format!(
        "<!DOCTYPE ac:confluence [{entities}]><ac:confluence xmlns=\"{XHTML_NS}\" xmlns:ac=\"{AC_NS}\" xmlns:ri=\"{RI_NS}\">{xml}</ac:confluence>"
    );
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&doc, options).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(xml.len() + 64);
    let mut macros = 0u64;
    for child in doc.root_element().children() {
        write_node(child, &mut out, seed, &mut macros, true);
    }
    Ok(out)
}

fn qualified(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(AC_NS) => format!("ac:{name}"),
        Some(RI_NS) => format!("ri:{name}"),
        _ => name.to_string(),
    }
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// A made-up but well-formed macro id, stable for a given save and macro.
fn macro_id(seed: u64, n: u64) -> String {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(n.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        ^ 0x94D0_49BB_1331_11EB;
    let mut hex = String::new();
    for _ in 0..2 {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        hex.push_str(&format!("{x:016x}"));
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn write_node(
    node: roxmltree::Node<'_, '_>,
    out: &mut String,
    seed: u64,
    macros: &mut u64,
    block_parent: bool,
) {
    if node.is_text() {
        let text = node.text().unwrap_or_default();
        if block_parent && text.trim().is_empty() {
            return;
        }
        let parent = node
            .parent()
            .map(|p| qualified(p.tag_name().namespace(), p.tag_name().name()));
        if matches!(
            parent.as_deref(),
            Some("ac:plain-text-body" | "ac:plain-text-link-body")
        ) {
            out.push_str("<![CDATA[");
            out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
            out.push_str("]]>");
        } else {
            escape_text(text, out);
        }
        return;
    }
    if !node.is_element() {
        return; // comments and processing instructions are not kept
    }
    let tag = node.tag_name();
    let name = qualified(tag.namespace(), tag.name());
    let mut attrs: Vec<(String, String)> = node
        .attributes()
        .map(|a| (qualified(a.namespace(), a.name()), a.value().to_string()))
        .collect();
    if name == "ac:structured-macro" && !attrs.iter().any(|(n, _)| n == "ac:macro-id") {
        *macros += 1;
        attrs.push(("ac:macro-id".into(), macro_id(seed, *macros)));
    }
    attrs.sort_by(|a, b| b.0.cmp(&a.0));
    out.push('<');
    out.push_str(&name);
    for (n, v) in &attrs {
        out.push(' ');
        out.push_str(n);
        out.push_str("=\"");
        escape_attr(v, out);
        out.push('"');
    }
    let kept: Vec<roxmltree::Node<'_, '_>> = node
        .children()
        .filter(|c| c.is_element() || c.is_text())
        .collect();
    let blocks = BLOCK_PARENTS.contains(&name.as_str());
    let empty = kept
        .iter()
        .all(|c| c.is_text() && blocks && c.text().unwrap_or_default().trim().is_empty());
    if empty && (name.contains(':') || VOID.contains(&name.as_str())) {
        out.push_str(" />");
        return;
    }
    out.push('>');
    for child in kept {
        write_node(child, out, seed, macros, blocks);
    }
    out.push_str("</");
    out.push_str(&name);
    out.push('>');
}

/// Confluence lower-cases labels and refuses spaces and a few punctuation marks.
fn check_label(name: &str) -> Result<String, String> {
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
fn label_names(value: &Value) -> Result<Vec<String>, String> {
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

fn add_label_values(st: &mut ConfState, content_id: u64, names: &[String]) -> Value {
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

fn add_labels(st: &mut ConfState, id: &str, body: &Bytes) -> Response {
    let Some(content_id) = id
        .parse::<u64>()
        .ok()
        .filter(|n| st.content.contains_key(n))
    else {
        return not_found(id);
    };
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

fn create(st: &mut ConfState, body: &Bytes) -> Response {
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
        let Some((_, space_name)) = st.spaces.get(space_key).cloned() else {
            return conf_error(
                StatusCode::NOT_FOUND,
                &format!("No space with key : {space_key}"),
            );
        };
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
fn created_view(content: &Value) -> Value {
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
