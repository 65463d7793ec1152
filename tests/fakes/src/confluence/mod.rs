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
//! It answers as Atlassian's Data Center REST reference documents, for the release it
//! emulates ([`FakeConfluence::emulate`], [`DcVersion`]); `REFERENCE.md` beside this file
//! holds, for every endpoint, the reference page and version followed and the excerpt relied
//! on. What differs from what a client might wish for:
//!
//! - **No `email` on user objects.** `/rest/api/user`, `/rest/api/user/current`, watchers,
//!   restriction lists, `version.by` and `history.createdBy` carry `type`, `username`,
//!   `userKey`, `profilePicture`, `displayName`, `_links` (where Data Center has them) and
//!   never `email`; `expand=details.personal` is ignored. A person's email comes only from
//!   `GET /rest/mobile/1.0/profile/{username}`, as the instance's email visibility
//!   ([`EmailVisibility`], [`FakeConfluence::set_email_visibility`]) lets the caller see it,
//!   and (10.2+) from the admin user list.
//! - **Endpoints by release.** Content watchers (9.0+), space permissions and
//!   `/rest/api/server-information` (9.1+), the admin user list (9.4+; entries identify the
//!   person only from 10.2) answer 404 as an unknown path on a release without them. The
//!   AppLinks manifest (`/rest/applinks/1.0/manifest`) gives version and build on every
//!   release, without sign-in.
//! - **Permissions.** Watchers only to a Confluence administrator
//!   ([`FakeConfluence::set_service_confluence_admin`], or an added user in
//!   `confluence-administrators`) or the space's administrators; the admin user list only to
//!   Confluence administrators; a space's permissions only to its administrators, 403 to one
//!   who may only view it, or 500 as CONFSERVER-99908 reports
//!   ([`FakeConfluence::set_space_permissions_refusal`]). Creating a page, blog post or
//!   comment, or adding a label, needs the space's "add" permission for that type: 403 with
//!   Data Center's `PermissionException` body otherwise
//!   ([`FakeConfluence::set_service_space_permissions`] takes it from the service account).
//! - **Switches for what is reported, not documented**: a CQL search expanding the ancestors'
//!   fields fails with 404 when one ancestor is trashed
//!   ([`FakeConfluence::set_search_404_on_trashed_ancestor`]); the experimental template
//!   resource and the mobile profile can be absent
//!   ([`FakeConfluence::set_page_templates_available`],
//!   [`FakeConfluence::set_mobile_profile_available`]).
//!
//! People other than the service account can sign in too, as the console's space admins do:
//! [`FakeConfluence::add_user`] registers a user with a password and groups,
//! [`FakeConfluence::add_pat`] gives them personal access tokens and
//! [`FakeConfluence::grant_space`] gives a user or group space permissions. With those the fake
//! answers who the caller is (`GET /rest/api/user/current`), the spaces they may view
//! (`GET /rest/api/space`), a space's permissions to those who administer it and a user's
//! groups (`GET /rest/api/user/memberof`), in Data Center's shapes. The service account may
//! view every space the fake knows and add content to it, and administers none unless granted.
//!
//! For contract 0.2.0's lookups it also answers:
//! - `GET /rest/api/content/{id}/watchers`: the users watching content
//!   ([`FakeConfluence::watch`]), paged.
//! - `GET /rest/api/content/search?cql=`: CQL search over current content, for the subset of
//!   CQL Pagehook writes (`text ~ "..."`, `siteSearch ~`, `title ~`, `type = x`,
//!   `type in (a, b)`, `space = "KEY"`, joined by `and`). Anything else, a string left open or
//!   an unknown field, is refused with 400 as Confluence refuses CQL it cannot parse.
//! - `GET /rest/api/admin/users/list/active`: the active users, paged.
//! - `GET /rest/experimental/template/page?spaceKey=&expand=body`: a space's page templates
//!   ([`FakeConfluence::put_template`]), with `body.storage` only when `expand` names `body`;
//!   404 for a space the fake does not know. Not in the reference: its shape comes from
//!   public code (see `REFERENCE.md`).
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

mod builder;
mod content;
mod cql;
mod people;
mod storage;
mod users;
mod version;
mod writes;

pub use builder::ContentBuilder;
use builder::*;
use content::*;
use cql::*;
pub use people::SpacePermissionsRefusal;
use people::*;
use storage::*;
pub use users::EmailVisibility;
use users::*;
pub use version::DcVersion;
use version::*;
use writes::*;

const DAY: Duration = Duration::from_secs(86_400);

/// Username of the service account Pagehook acts as; `GET /rest/api/user/current` returns it
/// and everything the fake creates is authored by it, so loop prevention can be tested.
pub const SERVICE_USERNAME: &str = "pagehook";
/// User key of the service account.
pub const SERVICE_USER_KEY: &str = "8a7f80839e460b0f019e460bfa1e0001";
/// Display name of the service account.
pub const SERVICE_DISPLAY_NAME: &str = "Pagehook";
/// E-mail of the service account: shown only where Data Center shows one (the mobile profile,
/// the admin user list), never in a user object.
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
    /// `GET /rest/mobile/1.0/profile/{username}`: a person's mobile profile (with `email`
    /// as the instance's email visibility allows).
    pub const MOBILE_PROFILE: &str = "GET /rest/mobile/1.0/profile/{username}";
    /// `GET /rest/api/server-information` (Data Center 9.1+): version and build.
    pub const SERVER_INFORMATION: &str = "GET /rest/api/server-information";
    /// `GET /rest/applinks/1.0/manifest`: the AppLinks manifest (version and build on every
    /// release, no sign-in needed).
    pub const APPLINKS_MANIFEST: &str = "GET /rest/applinks/1.0/manifest";
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
        MOBILE_PROFILE,
        SERVER_INFORMATION,
        APPLINKS_MANIFEST,
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
    /// user key → the person
    users: BTreeMap<String, UserRecord>,
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
    /// The release the fake answers as.
    version: DcVersion,
    /// Who sees email addresses in mobile profiles.
    email_visibility: EmailVisibility,
    /// What a space's permissions answer to a caller who may view but not administer it.
    space_permissions_refusal: SpacePermissionsRefusal,
    /// Whether a CQL search expanding the ancestors' own fields answers 404 for the whole
    /// batch when one result has a trashed ancestor.
    search_404_on_trashed_ancestor: bool,
    /// Whether `/rest/experimental/template/page` exists.
    templates_available: bool,
    /// Whether `/rest/mobile/1.0/profile/{username}` exists.
    mobile_profile_available: bool,
    /// Spaces where the service account's permissions were set explicitly, with exactly
    /// those operations; elsewhere it may view and add content.
    service_limits: BTreeMap<String, Vec<Operation>>,
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
                version: DcVersion::default(),
                email_visibility: EmailVisibility::default(),
                space_permissions_refusal: SpacePermissionsRefusal::default(),
                search_404_on_trashed_ancestor: false,
                templates_available: true,
                mobile_profile_available: true,
                service_limits: BTreeMap::new(),
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
            .map(|u| (u.username.clone(), u.key.clone()))
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
            user_named(&st, username).is_some(),
            "watch: no user {username}"
        );
        let list = st.watchers.entry(id).or_default();
        if !list.iter().any(|u| u == username) {
            list.push(username.to_string());
        }
    }

    /// With `true`, the service account is a Confluence administrator: it may list any
    /// content's watchers and the active users, and sees email addresses in mobile profiles
    /// under [`EmailVisibility::AdminsOnly`]. Off by default. (An added user is a Confluence
    /// administrator while in the `confluence-administrators` group.)
    pub fn set_service_confluence_admin(&self, on: bool) {
        lock(&self.app.state).service_admin = on;
    }

    /// Answers as this Confluence Data Center release does from now on: REST resources the
    /// release does not have answer 404 as an unknown path does, and the version and build
    /// are reported at `/rest/api/server-information` (9.1+) and `/rest/applinks/1.0/manifest`.
    /// [`DcVersion::V10_2`] by default.
    pub fn emulate(&self, version: DcVersion) {
        lock(&self.app.state).version = version;
    }

    /// The release the fake answers as.
    pub fn version(&self) -> DcVersion {
        lock(&self.app.state).version
    }

    /// Sets the instance's email visibility, which the mobile profile obeys
    /// ([`EmailVisibility::Public`] by default).
    pub fn set_email_visibility(&self, visibility: EmailVisibility) {
        lock(&self.app.state).email_visibility = visibility;
    }

    /// What `GET /rest/api/space/{key}/permissions` answers a caller who may view the space
    /// but not administer it: 403 as the reference documents
    /// ([`SpacePermissionsRefusal::Forbidden`], the default) or 500 as reported in
    /// CONFSERVER-99908 ([`SpacePermissionsRefusal::InternalError`]).
    pub fn set_space_permissions_refusal(&self, refusal: SpacePermissionsRefusal) {
        lock(&self.app.state).space_permissions_refusal = refusal;
    }

    /// With `true`, a CQL search that expands the ancestors' own fields
    /// (`expand=ancestors.<something>`) answers 404 for the whole batch when one result has a
    /// trashed ancestor, as reported against Confluence (on Cloud); the same search without
    /// that expansion, or while [`FakeConfluence::set_nested_ancestor_expansion`] is off,
    /// still answers. Off by default.
    pub fn set_search_404_on_trashed_ancestor(&self, on: bool) {
        lock(&self.app.state).search_404_on_trashed_ancestor = on;
    }

    /// With `false`, `/rest/experimental/template/page` does not exist (404 as an unknown
    /// path): an instance without the experimental template resource. On by default.
    pub fn set_page_templates_available(&self, on: bool) {
        lock(&self.app.state).templates_available = on;
    }

    /// With `false`, `/rest/mobile/1.0/profile/{username}` does not exist (404 as an unknown
    /// path): an instance whose mobile plugin is disabled. On by default.
    pub fn set_mobile_profile_available(&self, on: bool) {
        lock(&self.app.state).mobile_profile_available = on;
    }

    /// Sets the service account's permissions in `space` (made known if it was not) to exactly
    /// `operations` (as in [`FakeConfluence::grant_space`]: `"read"`, `"create:page"`,
    /// `"create:blogpost"`, `"create:comment"`, `"administer"`, ...; any operation brings
    /// `read`; an empty list: not even view). Without this the service account may view
    /// every space and add pages, blog posts, comments and attachments (and so labels) in
    /// it, and administers none unless granted.
    pub fn set_service_space_permissions(&self, space: &str, operations: &[&str]) {
        let mut st = lock(&self.app.state);
        if !st.spaces.contains_key(space) {
            st.spaces.insert(
                space.to_string(),
                (space_id(space), default_space_name(space)),
            );
        }
        st.service_limits
            .insert(space.to_string(), operations_with_read(operations));
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

    /// Registers (or replaces) a user for `GET /rest/api/user?key=` (or `?username=`), served
    /// in Data Center's user shape: `type`, `username`, `userKey`, `profilePicture`,
    /// `displayName`, `_links`, and no `email`. The email (empty: none) shows only in the
    /// mobile profile, as the email visibility allows, and in the admin user list (10.2+).
    pub fn put_user(&self, key: &str, username: &str, display_name: &str, email: &str) {
        lock(&self.app.state).users.insert(
            key.to_string(),
            UserRecord {
                key: key.to_string(),
                username: username.to_string(),
                display_name: display_name.to_string(),
                email: email.to_string(),
            },
        );
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
        let wanted = operations_with_read(operations);
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
    MobileProfile(String),
    ServerInformation,
    Manifest,
}

impl Route {
    /// Whether the resource exists on the instance as the fake is set up: the emulated
    /// release has it and no switch took it away.
    fn available(&self, st: &ConfState) -> bool {
        match self {
            Route::Watchers(_) => st.version.has_watchers(),
            Route::SpacePermissions(_) => st.version.has_space_permissions(),
            Route::ServerInformation => st.version.has_server_information(),
            Route::ActiveUsers => st.version.has_admin_user_list(),
            Route::PageTemplates => st.templates_available,
            Route::MobileProfile(_) => st.mobile_profile_available,
            _ => true,
        }
    }
}

/// A path segment with its `%XX` escapes decoded (lossily, as UTF-8).
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    if path.trim_end_matches('/') == "/rest/applinks/1.0/manifest" {
        return if *method == Method::GET {
            Ok((Route::Manifest, endpoints::APPLINKS_MANIFEST))
        } else {
            Err(true)
        };
    }
    if let Some(username) = path.strip_prefix("/rest/mobile/1.0/profile/") {
        let username = username.trim_end_matches('/');
        if username.is_empty() || username.contains('/') {
            return Err(false);
        }
        return if *method == Method::GET {
            Ok((
                Route::MobileProfile(percent_decoded(username)),
                endpoints::MOBILE_PROFILE,
            ))
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
        ["server-information"] => (
            Route::ServerInformation,
            endpoints::SERVER_INFORMATION,
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
    let unknown = || {
        conf_error(
            StatusCode::NOT_FOUND,
            &format!("null for uri: {}", parts.uri),
        )
    };
    let route = match routed {
        Ok((route, _)) => route,
        Err(true) => return conf_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        Err(false) => return unknown(),
    };
    // A resource the instance does not have answers as a path it does not know (any fault
    // queued for it is used up without effect).
    if !route.available(&lock(&app.state)) {
        return unknown();
    }
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
    if let Route::Manifest = route {
        // The AppLinks manifest is public: no sign-in needed.
        return applinks_manifest(&lock(&app.state), parts);
    }
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
        Route::Create => create(&mut st, &caller, body),
        Route::Comments(id) => list_comments(&st, &id, parts),
        Route::Labels(id) => add_labels(&mut st, &caller, &id, body),
        Route::User => get_user(&st, parts),
        Route::CurrentUser => current_user(&st, &caller, parts),
        Route::Spaces => list_spaces(&st, &caller, parts),
        Route::SpacePermissions(key) => space_permissions(&st, &caller, &key),
        Route::MemberOf => member_of(&st, parts),
        Route::Watchers(id) => list_watchers(&st, &caller, &id, parts),
        Route::CqlSearch => cql_search(&st, parts),
        Route::ActiveUsers => active_users(&st, &caller, parts),
        Route::PageTemplates => page_templates(&st, parts),
        Route::MobileProfile(username) => mobile_profile(&st, &caller, &username),
        Route::ServerInformation => server_information(&st),
        Route::Manifest => unreachable!("answered before sign-in"),
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
