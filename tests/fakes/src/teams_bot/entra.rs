//! Microsoft Entra ID's v2.0 token endpoint, client-credentials grant only:
//! `POST /login/{tenant}/oauth2/v2.0/token` with a form body.
//!
//! It answers as Entra does (see REFERENCE.md): the `AADSTS` code in `error_description`
//! and `error_codes`, the OAuth `error` and the HTTP status Entra pairs with each. It must
//! never issue a token for a scope other than the Bot Framework's `.default`, for an app
//! in another tenant, or without the right secret.

use std::time::Instant;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SecureRandom as _;
use serde_json::json;

use super::{App, IssuedToken};
use crate::server::{form_pairs, iso_now, json_response, lock, with_header};

/// The only scope a bot asks for to call the Bot Connector.
pub const BOT_FRAMEWORK_SCOPE: &str = "https://api.botframework.com/.default";

fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let iso = iso_now();
    // Entra writes "2024-05-25 13:21:24Z" here.
    let stamp = format!("{}Z", iso.get(..19).unwrap_or(&iso).replace('T', " "));
    let trace = random_id();
    let correlation = random_id();
    json_response(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// A GUID-shaped random id.
fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// An opaque access token: 48 random bytes, base64url. Hosts must not parse it.
fn random_token() -> String {
    let mut b = [0u8; 48];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    B64URL.encode(b)
}

fn missing(param: &str) -> Response {
    entra_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{param}'."),
    )
}

/// Handles one token request for `tenant` (already counted and fault-checked).
pub(super) fn token(app: &App, parts: &Parts, body: &Bytes, tenant: &str) -> Response {
    if parts.method != axum::http::Method::POST {
        return entra_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    let mut st = lock(&app.state);
    if !st.apps.values().any(|a| a.tenant_id == tenant) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let form_body = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let pairs = if form_body {
        form_pairs(body)
    } else {
        Vec::new()
    };
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(grant) = get("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = get("client_id") else {
        return missing("client_id");
    };
    let Some(registered) = st
        .apps
        .get(client_id)
        .filter(|a| a.tenant_id == tenant)
        .cloned()
    else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    let Some(secret) = get("client_secret") else {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if secret != registered.client_secret {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let Some(scope) = get("scope") else {
        return missing("scope");
    };
    if scope != BOT_FRAMEWORK_SCOPE {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let lifetime = st.token_lifetime;
    let access_token = random_token();
    st.tokens.insert(
        access_token.clone(),
        IssuedToken {
            app_id: client_id.to_string(),
            expires_at: Instant::now() + lifetime,
        },
    );
    st.tokens_issued += 1;
    let secs = lifetime.as_secs();
    with_header(
        json_response(
            StatusCode::OK,
            &json!({
                "token_type": "Bearer",
                "expires_in": secs,
                "ext_expires_in": secs,
                "access_token": access_token,
            }),
        ),
        "cache-control",
        "no-store, no-cache",
    )
}
