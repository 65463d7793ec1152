//! People as Data Center shows them, and the only places it shows a person's email.
//!
//! A user object (`/rest/api/user`, `/rest/api/user/current`, watchers, restriction lists)
//! carries `type`, `username`, `userKey`, `profilePicture`, `displayName`, `_links` and never
//! `email`; `expand=details.personal` (a Cloud expansion) is dropped without a word. An email
//! comes only from the mobile profile (`GET /rest/mobile/1.0/profile/{username}`, obeying the
//! instance's email visibility) and, from 10.2 on, the admin user list. This module must never
//! put `email` into a user object. See `REFERENCE.md` beside it for the sources.

use super::*;

/// Where the picture of a user without one of their own lives, as Data Center answers it.
const DEFAULT_PICTURE: &str = "/images/icons/profilepics/default.svg";

/// The group whose members are Confluence administrators (the "Confluence Administrator"
/// global permission, as a default install grants it).
pub(super) const ADMIN_GROUP: &str = "confluence-administrators";

/// Who may see a person's email, Confluence's "User email visibility" setting (General
/// configuration → Security configuration), as the mobile profile applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmailVisibility {
    /// "public": everyone who may see the profile sees the address.
    #[default]
    Public,
    /// "masked": everyone sees it, written to defeat harvesters (`ada at example dot com`);
    /// it is not an address a client may send to.
    Masked,
    /// "only visible to site administrators": Confluence administrators see it; everyone
    /// else (the person themselves included) gets the profile without `email`.
    AdminsOnly,
    /// Nobody gets an address, administrators included. Not one of Confluence's three
    /// settings: what a client meets when the directory holds no addresses or the profile
    /// answers without them ("any field may be missing").
    Hidden,
}

/// A person the fake knows: registered with `put_user` or `add_user`, or the service account.
#[derive(Debug, Clone)]
pub(super) struct UserRecord {
    pub(super) key: String,
    pub(super) username: String,
    pub(super) display_name: String,
    /// Kept for the mobile profile and the admin user list only.
    pub(super) email: String,
}

/// The user with this username, if the fake knows them.
pub(super) fn user_named<'a>(st: &'a ConfState, username: &str) -> Option<&'a UserRecord> {
    st.users.values().find(|u| u.username == username)
}

fn picture() -> Value {
    json!({"path": DEFAULT_PICTURE, "width": 48, "height": 48, "isDefault": true})
}

/// A user object as Data Center answers one: documented fields only, never `email`. Of the
/// expansions only `status` is known (`"current"`); any other, `details.personal` included,
/// is ignored as Data Center ignores it.
pub(super) fn user_json(st: &ConfState, user: &UserRecord, expand: &str) -> Value {
    let mut out = json!({
        "type": "known",
        "username": user.username,
        "userKey": user.key,
        "profilePicture": picture(),
        "displayName": user.display_name,
        "_links": {
            "base": st.base_url,
            "context": "",
            "self": format!("{}/rest/api/user?key={}", st.base_url, user.key),
        },
    });
    if expand.split(',').any(|e| e.trim() == "status") {
        out["status"] = json!("current");
    } else {
        out["_expandable"] = json!({"status": ""});
    }
    out
}

/// `GET /rest/api/user?key=` or `?username=`: one user object; 404 for a user the fake does
/// not know, 400 without either parameter.
pub(super) fn get_user(st: &ConfState, parts: &Parts) -> Response {
    let expand = query_param(parts, "expand").unwrap_or_default();
    let user = if let Some(key) = query_param(parts, "key") {
        st.users
            .get(&key)
            .ok_or(format!("No user found with key : {key}"))
    } else if let Some(name) = query_param(parts, "username") {
        user_named(st, &name).ok_or(format!("No user found with username : {name}"))
    } else {
        return bad_request("Either a username or a key must be provided");
    };
    match user {
        Ok(u) => json_response(StatusCode::OK, &user_json(st, u, &expand)),
        Err(message) => conf_error(StatusCode::NOT_FOUND, &message),
    }
}

/// `GET /rest/api/user/current`: the caller's own user object.
pub(super) fn current_user(st: &ConfState, caller: &Caller, parts: &Parts) -> Response {
    let key = match caller {
        Caller::Service => SERVICE_USER_KEY,
        Caller::User(name) => st.accounts[name].user_key.as_str(),
    };
    let expand = query_param(parts, "expand").unwrap_or_default();
    json_response(StatusCode::OK, &user_json(st, &st.users[key], &expand))
}

/// Whether the caller is a Confluence administrator: the service account when
/// `set_service_confluence_admin(true)`, an added user while in `confluence-administrators`.
pub(super) fn confluence_admin(st: &ConfState, caller: &Caller) -> bool {
    match caller {
        Caller::Service => st.service_admin,
        Caller::User(name) => st.accounts[name].groups.iter().any(|g| g == ADMIN_GROUP),
    }
}

/// `ada@example.com` → `ada at example dot com`, as Confluence masks addresses.
pub(super) fn masked(email: &str) -> String {
    email.replace('@', " at ").replace('.', " dot ")
}

/// The address the mobile profile shows this caller, if any.
fn profile_email(st: &ConfState, caller: &Caller, email: &str) -> Option<String> {
    if email.is_empty() {
        return None;
    }
    match st.email_visibility {
        EmailVisibility::Public => Some(email.to_string()),
        EmailVisibility::Masked => Some(masked(email)),
        EmailVisibility::AdminsOnly => confluence_admin(st, caller).then(|| email.to_string()),
        EmailVisibility::Hidden => None,
    }
}

/// `GET /rest/mobile/1.0/profile/{username}`: the profile Confluence's mobile view reads,
/// the one place Data Center's REST gives a non-administrator a person's email.
///
/// Fields as public code that runs against Data Center reads them: `userName`, `fullName`,
/// `email` (only as the email visibility lets this caller see it), `url`, `avatarUrl`,
/// `anonymous`, `unknownUser`; profile details nobody filled in (`phone`, `department`,
/// `position`, `location`, `about`) are left out. A username Confluence does not know comes
/// back flagged `unknownUser: true`, without `email`.
pub(super) fn mobile_profile(st: &ConfState, caller: &Caller, username: &str) -> Response {
    let Some(user) = user_named(st, username) else {
        return json_response(
            StatusCode::OK,
            &json!({
                "userName": username,
                "fullName": username,
                "anonymous": false,
                "unknownUser": true,
            }),
        );
    };
    let mut profile = json!({
        "userName": user.username,
        "fullName": user.display_name,
        "url": format!("/display/~{}", user.username),
        "avatarUrl": DEFAULT_PICTURE,
        "anonymous": false,
        "unknownUser": false,
    });
    if let Some(email) = profile_email(st, caller, &user.email) {
        profile["email"] = json!(email);
    }
    json_response(StatusCode::OK, &profile)
}

/// `GET /rest/api/admin/users/list/active` (Data Center 9.4+): the active, licensed users,
/// paged (25 by default, 200 at most), only to a Confluence administrator (403 otherwise).
///
/// Each entry has what the reference of the emulated version documents: 9.4 to 10.1 show
/// `type`, `displayName` and `profilePicture` only (nothing that identifies the person); 10.2
/// adds, for known users, `username`, `userKey` and `email` (left out when the fake's email
/// visibility is [`EmailVisibility::Hidden`] or the person has none).
pub(super) fn active_users(st: &ConfState, caller: &Caller, parts: &Parts) -> Response {
    if !confluence_admin(st, caller) {
        return conf_error(
            StatusCode::FORBIDDEN,
            "The calling user does not have permission to view users",
        );
    }
    let identified = st.version.admin_users_identify();
    let items: Vec<Value> = st
        .users
        .values()
        .map(|u| {
            let mut entry = json!({
                "type": "known",
                "displayName": u.display_name,
                "profilePicture": picture(),
            });
            if identified {
                entry["username"] = json!(u.username);
                entry["userKey"] = json!(u.key);
                if st.email_visibility != EmailVisibility::Hidden && !u.email.is_empty() {
                    entry["email"] = json!(u.email);
                }
            }
            entry
        })
        .collect();
    let total = items.len();
    let mut page = list_page_value(st, parts, items, 25, 200);
    page["totalCount"] = json!(total);
    json_response(StatusCode::OK, &page)
}
