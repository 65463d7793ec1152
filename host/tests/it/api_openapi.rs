//! The admin API's OpenAPI document and error answers, in process through
//! `pagehook::server::router` on a temp SQLite store: the document is
//! OpenAPI 3.1 and served without auth, lists exactly the routes served,
//! every documented operation is served and answers a status it documents,
//! and errors are `{"error": ...}` JSON that never carries a file path.

use crate::api_support;

use api_support::{App, Auth};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Every route of the admin API, as the console and automation use them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/openapi.json"),
    ("get", "/api/plugins"),
    ("post", "/api/plugins"),
    ("delete", "/api/plugins/{name}"),
    ("post", "/api/plugins/{name}/enable"),
    ("post", "/api/plugins/{name}/disable"),
    ("post", "/api/plugins/{name}/reset"),
    ("put", "/api/plugins/{name}/grants"),
    ("post", "/api/plugins/{name}/grant-limits"),
    ("post", "/api/plugins/upload"),
    ("get", "/api/connections"),
    ("post", "/api/connections"),
    ("delete", "/api/connections/{name}"),
    ("patch", "/api/connections/{name}"),
    ("post", "/api/connections/{name}/test"),
    ("post", "/api/connections/{name}/test-card"),
    ("get", "/api/connections/{name}/channels"),
    ("get", "/api/connections/{name}/spaces"),
    ("get", "/api/connections/{name}/pages"),
    ("get", "/api/bindings"),
    ("post", "/api/bindings"),
    ("delete", "/api/bindings/{id}"),
    ("post", "/api/bindings/{id}/preview"),
    ("get", "/api/digests"),
    ("get", "/api/bindings/{id}/digest"),
    ("put", "/api/bindings/{id}/digest"),
    ("get", "/api/events"),
    ("get", "/api/events/{id}"),
    ("get", "/api/events/{id}/held"),
    ("get", "/api/deliveries"),
    ("post", "/api/deliveries/{id}/retry"),
    ("post", "/api/deliveries/retry-dead"),
    ("get", "/api/deliveries/{id}/attempts"),
    ("get", "/api/audit"),
    ("get", "/api/failures"),
    ("get", "/api/changes"),
    ("get", "/api/doctor"),
    ("get", "/api/links"),
    ("delete", "/api/links/{slack_connection}/{slack_user}"),
];

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                ops.push((method.to_owned(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

#[tokio::test]
async fn the_document_is_openapi_3_1_served_without_auth() {
    let app = App::new();
    let doc = app.document().await;
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "Pagehook admin API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/api/openapi.json"]["get"]["security"],
        json!([])
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn the_document_lists_every_route_and_every_route_is_served() {
    let app = App::new();
    let doc = app.document().await;
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(operations(&doc), expected);

    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let uri = path
            .replace("{name}", "no-such-thing")
            .replace("{id}", "424242")
            .replace("{slack_connection}", "no-such-thing")
            .replace("{slack_user}", "U0NOBODY");
        let method = method.to_uppercase();
        let content_type = op["requestBody"]["content"]
            .as_object()
            .and_then(|c| c.keys().next().cloned());
        let body = match content_type.as_deref() {
            Some("multipart/form-data") => b"--x--\r\n".to_vec(),
            Some(_) => b"{}".to_vec(),
            None => Vec::new(),
        };
        let content_type = content_type.map(|c| match c.as_str() {
            "multipart/form-data" => "multipart/form-data; boundary=x".to_owned(),
            _ => c,
        });
        let a = app
            .send(
                &method,
                &uri,
                body.clone(),
                content_type.as_deref(),
                &[],
                &Auth::admin(),
            )
            .await;
        let error = a.json["error"].as_str().unwrap_or("");
        assert!(
            !(a.status == StatusCode::NOT_FOUND && error.contains("no such API route"))
                && a.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served: {} {}",
            a.status,
            a.json
        );
        assert!(
            op["responses"].get(a.status.as_str()).is_some(),
            "{method} {path} answered {}, which its document does not list: {}",
            a.status,
            a.json
        );
        if a.status.is_client_error() {
            assert!(a.json["error"].is_string(), "{method} {path}: {}", a.json);
        }
        if op.get("security") != Some(&json!([])) {
            let a = app
                .send(
                    &method,
                    &uri,
                    body,
                    content_type.as_deref(),
                    &[],
                    &Auth::None,
                )
                .await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {}",
                a.json
            );
            assert!(op["responses"].get("401").is_some(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn rejections_and_unknown_routes_answer_json() {
    let app = App::new();
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("POST", "/api/bindings", Some("{not json"), 400, "as JSON"),
        (
            "POST",
            "/api/bindings",
            Some(r#"{"plugin": 7}"#),
            422,
            "plugin",
        ),
        (
            "POST",
            "/api/bindings",
            Some(r#"{"plugin": "x", "nope": 1}"#),
            422,
            "nope",
        ),
        ("GET", "/api/events/abc", None, 400, "abc"),
        ("GET", "/api/events?status=lost", None, 400, "lost"),
        ("GET", "/api/events?limit=-1", None, 400, "limit"),
        ("GET", "/api/events?colour=red", None, 400, "colour"),
        ("GET", "/api/nothing-here", None, 404, "no such API route"),
        ("PUT", "/api/plugins", Some("{}"), 405, "method"),
        (
            "POST",
            "/api/plugins",
            Some(r#"{"dir": "/no/such/plugin/dir"}"#),
            400,
            "not a directory",
        ),
        ("POST", "/api/plugins/upload", Some("{}"), 400, "multipart"),
    ];
    for (method, path, body, status, says) in cases {
        let a = app
            .send(
                method,
                path,
                body.unwrap_or("").as_bytes().to_vec(),
                body.map(|_| "application/json"),
                &[],
                &Auth::admin(),
            )
            .await;
        assert_eq!(a.status.as_u16(), *status, "{method} {path}: {}", a.json);
        let error = a.json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", a.json));
        assert!(error.contains(says), "{method} {path}: {error}");
        if *status == 405 {
            assert!(
                a.headers.get("allow").is_some(),
                "405 keeps its Allow header"
            );
        }
    }
    // A body that is not declared JSON.
    let a = app
        .send(
            "POST",
            "/api/bindings",
            b"{}".to_vec(),
            Some("text/plain"),
            &[],
            &Auth::admin(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        a.json["error"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
}

#[tokio::test]
async fn a_failure_inside_pagehook_answers_without_a_path() {
    let app = App::new();
    // The database loses a table behind the server's back.
    let db = app.dir.path().join("pagehook.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE bindings")
        .unwrap();
    let a = app.call("GET", "/api/bindings", None, &Auth::admin()).await;
    assert!(a.status.is_server_error(), "{} {}", a.status, a.json);
    let doc = app.document().await;
    assert!(
        doc["paths"]["/api/bindings"]["get"]["responses"]
            .get(a.status.as_str())
            .is_some()
    );
    let text = a.json.to_string();
    let dir = app.dir.path().display().to_string();
    for leak in [dir.as_str(), "pagehook.db", "bindings", "no such table"] {
        assert!(!text.contains(leak), "`{leak}` in {text}");
    }
    assert!(text.contains("the log has the details"), "{text}");
}
