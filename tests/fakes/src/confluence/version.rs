//! Which Confluence Data Center release the fake answers as, and where a client can read
//! the version and build from.
//!
//! The REST resources Pagehook relies on arrived release by release (content watchers in
//! 9.0, space permissions and server information in 9.1, the admin user list in 9.4, its
//! identifying fields documented in 10.2); an endpoint the emulated release does not have
//! answers as Data Center answers a path it does not know. This module must never serve a
//! resource earlier than the reference lists it. Sources in `REFERENCE.md` beside it.

use super::*;

/// A Confluence Data Center release line the fake can answer as
/// ([`FakeConfluence::emulate`]). Ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum DcVersion {
    /// 8.5 LTS: no content watchers, space permissions, server information or admin user
    /// list REST; version and build only from the AppLinks manifest.
    V8_5,
    /// 9.2 LTS: content watchers (9.0+), space permissions and server information (9.1+); no
    /// admin user list.
    V9_2,
    /// 9.4: everything 9.2 has plus the admin user list, documented with `type`,
    /// `displayName` and `profilePicture` only.
    V9_4,
    /// 10.2 LTS (the default): the admin user list documents `username`, `userKey` and
    /// `email` too.
    #[default]
    V10_2,
}

impl DcVersion {
    /// Every release line, oldest first (for tests that run a flow against each).
    pub const ALL: [DcVersion; 4] = [
        DcVersion::V8_5,
        DcVersion::V9_2,
        DcVersion::V9_4,
        DcVersion::V10_2,
    ];

    /// The version string the instance reports, e.g. `"9.2.6"`.
    pub fn version(self) -> &'static str {
        match self {
            DcVersion::V8_5 => "8.5.20",
            DcVersion::V9_2 => "9.2.6",
            DcVersion::V9_4 => "9.4.1",
            DcVersion::V10_2 => "10.2.1",
        }
    }

    /// The build number the instance reports (made up, shaped like Confluence's).
    pub fn build_number(self) -> u64 {
        match self {
            DcVersion::V8_5 => 9012,
            DcVersion::V9_2 => 9107,
            DcVersion::V9_4 => 9111,
            DcVersion::V10_2 => 10022,
        }
    }

    /// `GET /rest/api/content/{id}/watchers` exists (9.0+).
    pub fn has_watchers(self) -> bool {
        self >= DcVersion::V9_2
    }

    /// `GET /rest/api/space/{key}/permissions` exists (9.1+).
    pub fn has_space_permissions(self) -> bool {
        self >= DcVersion::V9_2
    }

    /// `GET /rest/api/server-information` exists (9.1+).
    pub fn has_server_information(self) -> bool {
        self >= DcVersion::V9_2
    }

    /// `GET /rest/api/admin/users/list/active` exists (9.4+).
    pub fn has_admin_user_list(self) -> bool {
        self >= DcVersion::V9_4
    }

    /// The admin user list's entries identify the person (`username`, `userKey`) and may
    /// carry `email` (documented from 10.2).
    pub fn admin_users_identify(self) -> bool {
        self >= DcVersion::V10_2
    }

    fn build_date(self) -> &'static str {
        match self {
            DcVersion::V8_5 => "2025-03-04T00:00:00.000+0000",
            DcVersion::V9_2 => "2025-06-17T00:00:00.000+0000",
            DcVersion::V9_4 => "2025-05-13T00:00:00.000+0000",
            DcVersion::V10_2 => "2025-12-02T00:00:00.000+0000",
        }
    }
}

/// `GET /rest/api/server-information` (9.1+): the documented `ServerInformation`.
pub(super) fn server_information(st: &ConfState) -> Response {
    let v = st.version;
    json_response(
        StatusCode::OK,
        &json!({
            "baseUrl": st.base_url,
            "version": v.version(),
            "buildNumber": v.build_number(),
            "marketplaceBuildNumber": v.build_number(),
            "buildDate": v.build_date(),
        }),
    )
}

/// The instance's application id, stable for the fake.
const APPLICATION_ID: &str = "4a4f2d8e-6c1b-3f0a-9d2e-7b5c1e0f3a91";

/// `GET /rest/applinks/1.0/manifest` (every release, no sign-in needed): the AppLinks
/// manifest, as XML unless `Accept` asks for JSON.
pub(super) fn applinks_manifest(st: &ConfState, parts: &Parts) -> Response {
    let v = st.version;
    let fields: [(&str, String); 8] = [
        ("id", APPLICATION_ID.to_string()),
        ("name", "Confluence".to_string()),
        ("typeId", "confluence".to_string()),
        ("version", v.version().to_string()),
        ("buildNumber", v.build_number().to_string()),
        ("applinksVersion", "10.0.3".to_string()),
        ("publicSignup", "false".to_string()),
        ("url", st.base_url.clone()),
    ];
    let wants_json = parts
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        let mut out = Map::new();
        for (name, value) in fields {
            let value = match name {
                "buildNumber" => json!(v.build_number()),
                "publicSignup" => json!(false),
                _ => json!(value),
            };
            out.insert(name.to_string(), value);
        }
        return json_response(StatusCode::OK, &Value::Object(out));
    }
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><manifest>");
    for (name, value) in fields {
        xml.push_str(&format!("<{name}>{value}</{name}>"));
    }
    xml.push_str("</manifest>");
    with_header(
        crate::server::text_response(StatusCode::OK, &xml),
        "content-type",
        "application/xml",
    )
}
