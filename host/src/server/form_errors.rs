//! A request body that could not be read, said as a sentence: serde's
//! "missing field `csrf` at line 1 column 2" becomes "The form has no
//! “csrf”: reload the page and send it again." for a console form, and
//! "the request has no `plugin` (it is required)" for the JSON API.
//!
//! Also the console's own form extractor, [`PageForm`], whose rejection
//! is a page in those words instead of axum's plain text. What it must
//! never do: echo a submitted value (a password may be in the body);
//! only field names and expected types are repeated.

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::de::DeserializeOwned;

/// What serde said, without its position and the extractor's preamble,
/// as a sentence for an API client. Values (`invalid type: string "x"`)
/// are left out.
pub fn api_sentence(raw: &str) -> String {
    // Not JSON at all: where it stops being JSON helps.
    if let Some(rest) = raw
        .trim()
        .strip_prefix("Failed to parse the request body as JSON: ")
    {
        return format!("the body cannot be read as JSON: {rest}");
    }
    let (path, what) = split(raw);
    let field = |name: &str| match &path {
        Some(p) if !p.is_empty() => format!("`{p}.{name}`"),
        _ => format!("`{name}`"),
    };
    if let Some(name) = between(what, "missing field `", "`") {
        return format!("the request has no {} (it is required)", field(name));
    }
    if let Some(name) = between(what, "unknown field `", "`") {
        let known = what
            .split_once("expected one of ")
            .map(|(_, k)| k.replace('`', ""))
            .or_else(|| {
                what.split_once("expected ")
                    .map(|(_, k)| k.replace('`', ""))
            });
        return match known {
            Some(k) => format!("{} is not a field here (fields: {k})", field(name)),
            None => format!("{} is not a field here", field(name)),
        };
    }
    if let Some(expected) = what.split_once(", expected ").map(|(_, e)| e) {
        let given = what
            .strip_prefix("invalid type: ")
            .and_then(|t| t.split([' ', ',']).next())
            .unwrap_or("a value");
        let place = path
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| format!("`{p}` "))
            .unwrap_or_default();
        return format!("{place}must be {expected}, not {}", article(given));
    }
    if what.starts_with("EOF while parsing") || what.starts_with("expected ") {
        return "the body is not complete JSON".to_owned();
    }
    match path {
        Some(p) if !p.is_empty() => format!("`{p}`: {what}"),
        _ => what.to_owned(),
    }
}

/// As [`api_sentence`], for a person who sent a console form.
pub fn form_sentence(raw: &str) -> String {
    let (_, what) = split(raw);
    if let Some(name) = between(what, "missing field `", "`") {
        return format!(
            "The form was sent without its “{name}” field. Reload the page and send it again (it may have been open from an older Pagehook)."
        );
    }
    if let Some(name) = between(what, "unknown field `", "`") {
        return format!(
            "The form sent a field Pagehook does not take (“{name}”). Reload the page and send it again."
        );
    }
    "The form could not be read. Reload the page and send it again.".to_owned()
}

/// `(path, message)` of an extractor's text: axum writes "Failed to
/// deserialize ...: <path>: <serde message> at line L column C".
fn split(raw: &str) -> (Option<String>, &str) {
    let mut text = raw.trim();
    for preamble in [
        "Failed to deserialize the JSON body into the target type: ",
        "Failed to deserialize form body: ",
        "Failed to deserialize form: ",
        "Failed to parse the request body as JSON: ",
        "Failed to deserialize query string: ",
    ] {
        if let Some(rest) = text.strip_prefix(preamble) {
            text = rest;
        }
    }
    if let Some(at) = text.rfind(" at line ") {
        text = &text[..at];
    }
    // "settings.skip: invalid type: ..." (serde_path_to_error's path).
    match text.split_once(": ") {
        Some((path, rest))
            if !path.contains(' ')
                && !path.is_empty()
                && path != "invalid type"
                && !rest.is_empty() =>
        {
            (Some(path.to_owned()), rest)
        }
        _ => (None, text),
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

fn article(kind: &str) -> String {
    match kind {
        "boolean" => "true or false".into(),
        "integer" | "floating" => "a number".into(),
        "string" => "text".into(),
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        "null" => "null".into(),
        other => format!("a {other}"),
    }
}

/// A console form body (`application/x-www-form-urlencoded`) whose
/// rejection is a page that says, in words, what to do.
pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(PageForm(v)),
            Err(r) => Err(rejected_page(&r)),
        }
    }
}

fn rejected_page(r: &FormRejection) -> Response {
    let sentence = match r {
        FormRejection::InvalidFormContentType(_) => {
            "The form was not sent as a form. Reload the page and send it again.".to_owned()
        }
        _ => form_sentence(&r.body_text()),
    };
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Cannot read the form · Pagehook" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                main id="main" {
                    h1 { "Cannot read the form" }
                    p role="alert" class="alert" { (sentence) }
                    p { a href="/console/sign-in" { "Back to sign in" } " · " a href="/console/overview" { "the overview" } }
                }
            }
        }
    };
    let status = if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, Html(body.into_string())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_become_sentences_without_positions_or_values() {
        assert_eq!(
            api_sentence(
                "Failed to deserialize the JSON body into the target type: missing field `plugin` at line 1 column 2"
            ),
            "the request has no `plugin` (it is required)"
        );
        assert_eq!(
            api_sentence(
                "Failed to deserialize the JSON body into the target type: unknown field `plgin`, expected one of `plugin`, `scope` at line 1 column 9"
            ),
            "`plgin` is not a field here (fields: plugin, scope)"
        );
        assert_eq!(
            api_sentence(
                "Failed to deserialize the JSON body into the target type: settings.skip-restricted: invalid type: boolean `true`, expected a string at line 1 column 60"
            ),
            "`settings.skip-restricted` must be a string, not true or false"
        );
        let s = api_sentence(
            "Failed to deserialize the JSON body into the target type: dry_run: invalid type: string \"s3cret\", expected a boolean at line 1 column 9",
        );
        assert_eq!(s, "`dry_run` must be a boolean, not text");
        assert!(!s.contains("s3cret"), "values are never repeated");
        assert_eq!(
            api_sentence(
                "Failed to parse the request body as JSON: key must be a string at line 1 column 2"
            ),
            "the body cannot be read as JSON: key must be a string at line 1 column 2"
        );
        assert_eq!(
            api_sentence(
                "Failed to deserialize the JSON body into the target type: EOF while parsing an object at line 1 column 1"
            ),
            "the body is not complete JSON"
        );
    }

    #[test]
    fn form_errors_say_what_to_do() {
        let s = form_sentence("Failed to deserialize form body: missing field `csrf`");
        assert!(
            s.starts_with("The form was sent without its “csrf” field. Reload"),
            "{s}"
        );
        assert!(!s.contains('`'));
        let s = form_sentence("Failed to deserialize form body: invalid type: \"hunter2\"");
        assert!(!s.contains("hunter2"), "{s}");
    }
}
