//! The admin API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` and the types they take and answer, and served without
//! auth at `GET /api/openapi.json`.
//!
//! The answers every operation can give besides its own (401 without
//! credentials, 403 for a caller who may not, 400/413/415/422 for a request
//! that does not parse, 500 and 503 when Pagehook or its database fails)
//! are added here once, so the document lists every status a handler can
//! answer (schemathesis checks that, see `scripts/schemathesis.sh`).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _, ToSchema};

use super::error::ErrorBody;
use crate::server::session::SESSION_COOKIE;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Pagehook admin API",
        description = "The admin's powers over HTTP: plugins, connections, bindings, events and deliveries, \
            the change log, and what works with each connection (the doctor). Authenticate with `Authorization: Bearer <server.admin-token>`, or with a \
            console session's cookie (changes also send its `X-CSRF-Token`). A Confluence space admin's \
            session reads plugins and connections and manages bindings, events and deliveries of their \
            spaces only (403 elsewhere). Errors are `{\"error\": \"...\"}`.",
    ),
    servers((url = "/", description = "This Pagehook server")),
    components(schemas(ErrorBody)),
    tags(
        (name = "plugins", description = "Installed WebAssembly plugins, their grants and breakers"),
        (name = "connections", description = "Slack workspaces, Teams workflows and Confluence instances"),
        (name = "bindings", description = "Which plugin runs on which events, and where its actions may go"),
        (name = "events", description = "Events from Confluence, the audit log and failed plugin calls"),
        (name = "deliveries", description = "The outbox: deliveries, their attempts, retries"),
        (name = "changes", description = "Who changed what, through the API or the console"),
        (name = "people", description = "Links between Slack users and Confluence users (/confluence link)"),
        (name = "doctor", description = "Which features work with each Confluence and Slack connection, measured now"),
        (name = "meta", description = "This document"),
    ),
    modifiers(&Security),
)]
struct ApiDoc;

/// The document, as served.
pub fn document() -> OpenApi {
    let (_, paths) = super::build().split_for_parts();
    let mut doc = ApiDoc::openapi();
    for (path, item) in paths.paths.paths {
        doc.paths.paths.insert(format!("/api{path}"), item);
    }
    if let (Some(into), Some(from)) = (doc.components.as_mut(), paths.components) {
        into.schemas.extend(from.schemas);
    }
    StandardAnswers.modify(&mut doc);
    doc
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
});

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The security schemes: the admin token as a bearer token, or a console
/// session's cookie with its CSRF token in a header (on changes).
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`server.admin-token` from Pagehook's config"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "A console session (sign in at /console/sign-in)",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's CSRF token (the console page's `csrf-token` meta); needed on every change made with a session",
            ))),
        );
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new())
                .add("csrf", Vec::<String>::new()),
        ]);
    }
}

/// The answers shared by every operation, added to each that can give them.
struct StandardAnswers;

/// `(status, reusable response name, what it means)`.
const SHARED: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "The request does not parse or is refused; the message says why",
    ),
    ("401", "Unauthorized", "No credentials, or wrong ones"),
    (
        "403",
        "Forbidden",
        "The caller may not do this: a space admin outside their spaces, or a change by console session without its CSRF token",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than this route takes",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not JSON (`Content-Type: application/json`)",
    ),
    (
        "422",
        "Unprocessable",
        "The body is JSON of the wrong shape",
    ),
    (
        "500",
        "Internal",
        "Pagehook failed; the log has the details",
    ),
    ("503", "Unavailable", "The database cannot be reached"),
];

impl Modify for StandardAnswers {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (_, name, description) in SHARED {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))))
                                .build(),
                        )
                        .build(),
                ),
            );
        }
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                let authenticated = op.security.as_ref().is_none_or(|s| !s.is_empty());
                if !authenticated {
                    continue;
                }
                let parses = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let has_body = op.request_body.is_some();
                for (status, name, _) in SHARED {
                    let applies = match *status {
                        "400" => parses,
                        "413" | "415" | "422" => has_body,
                        _ => true,
                    };
                    if applies {
                        op.responses
                            .responses
                            .entry((*status).to_owned())
                            .or_insert_with(|| {
                                RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                            });
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
    ]
    .into_iter()
    .flatten()
}
