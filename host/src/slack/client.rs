//! One workspace's Web API client: sends each method the way
//! [`methods`](super::methods) says and reads Slack's envelope.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": "..."}` for logical
//! errors, 429 with `Retry-After` when a method's tier limit is reached, and
//! sometimes 5xx. Every outcome becomes a [`SlackError`] the caller can
//! judge; this module never decides whether to retry, and never logs the
//! token.

use std::time::Duration;

use serde_json::Value;

use super::methods::{Encoding, Method};
use crate::http::retry_after;
use crate::secret::Secret;

/// Why a call did not return `ok: true`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// HTTP 429: the method's rate tier is exhausted for now.
    #[error("Slack rate limited {method} (HTTP 429)")]
    RateLimited {
        /// The method called.
        method: &'static str,
        /// Slack's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// An HTTP error status (5xx, or an unexpected 4xx).
    #[error("Slack answered HTTP {status} to {method}")]
    Status {
        /// The method called.
        method: &'static str,
        /// The status code.
        status: u16,
    },
    /// `{"ok": false, "error": code}`.
    #[error("Slack {method}: {code}")]
    Api {
        /// The method called.
        method: &'static str,
        /// Slack's error code (`channel_not_found`, `invalid_auth`, ...).
        code: String,
    },
    /// The request failed on the way (connect, timeout, reset).
    #[error("Slack {method}: request failed: {message}")]
    Transport {
        /// The method called.
        method: &'static str,
        /// What failed, without the URL.
        message: String,
        /// The request may have reached Slack (it failed after connecting).
        maybe_processed: bool,
    },
    /// The answer was not Slack's JSON envelope.
    #[error("Slack {method}: unreadable answer: {message}")]
    Unreadable {
        /// The method called.
        method: &'static str,
        /// Why it could not be read.
        message: String,
    },
}

impl SlackError {
    /// Slack's error code, for logical errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client for one workspace: base URL and bot token.
pub struct SlackClient<'a> {
    http: &'a reqwest::Client,
    base_url: &'a str,
    token: &'a Secret,
}

impl<'a> SlackClient<'a> {
    /// A client calling `base_url` (ending in `/api/`) with `token`.
    pub fn new(http: &'a reqwest::Client, base_url: &'a str, token: &'a Secret) -> Self {
        SlackClient {
            http,
            base_url,
            token,
        }
    }

    /// Calls a read method; `args` go in the query string.
    ///
    /// # Panics
    /// If `method` is a JSON method or an argument is not in its table
    /// (a programming error the tests catch).
    pub async fn read(&self, method: Method, args: &[(&str, String)]) -> Result<Value, SlackError> {
        assert_eq!(
            method.encoding,
            Encoding::Query,
            "{} is a JSON method",
            method.name
        );
        check_arguments(method, args.iter().map(|(k, _)| *k));
        let request = self.http.get(self.url(method)).query(args);
        self.send(method, request).await
    }

    /// Calls a read method as [`Self::read`] does, and also returns the
    /// scopes Slack says the token has: the `x-oauth-scopes` response header
    /// (comma-separated; Slack's own Node SDK reads it into
    /// `response_metadata.scopes`). `None` when Slack sent no such header.
    ///
    /// # Panics
    /// As [`Self::read`].
    pub async fn read_with_scopes(
        &self,
        method: Method,
        args: &[(&str, String)],
    ) -> Result<(Value, Option<Vec<String>>), SlackError> {
        assert_eq!(
            method.encoding,
            Encoding::Query,
            "{} is a JSON method",
            method.name
        );
        check_arguments(method, args.iter().map(|(k, _)| *k));
        let request = self.http.get(self.url(method)).query(args);
        self.send_reading_scopes(method, request).await
    }

    /// Calls a write method with a JSON body (an object).
    ///
    /// # Panics
    /// If `method` is a read method or the body names an argument not in
    /// its table.
    pub async fn write(&self, method: Method, body: &Value) -> Result<Value, SlackError> {
        assert_eq!(
            method.encoding,
            Encoding::Json,
            "{} takes no JSON",
            method.name
        );
        if let Some(map) = body.as_object() {
            check_arguments(method, map.keys().map(String::as_str));
        }
        let request = self.http.post(self.url(method)).json(body);
        self.send(method, request).await
    }

    /// Calls a form method (`chat.unfurl`): `args` as a form body, the
    /// token in `Authorization: Bearer` (never a `token` field, which would
    /// put it in the body).
    ///
    /// # Panics
    /// If `method` is not a form method or an argument is not in its table.
    pub async fn post_form(
        &self,
        method: Method,
        args: &[(&str, String)],
    ) -> Result<Value, SlackError> {
        assert_eq!(
            method.encoding,
            Encoding::Form,
            "{} is not sent as a form",
            method.name
        );
        check_arguments(method, args.iter().map(|(k, _)| *k));
        let request = self.http.post(self.url(method)).form(args);
        self.send(method, request).await
    }

    fn url(&self, method: Method) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), method.name)
    }

    async fn send(
        &self,
        method: Method,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, SlackError> {
        Ok(self.send_reading_scopes(method, request).await?.0)
    }

    async fn send_reading_scopes(
        &self,
        method: Method,
        request: reqwest::RequestBuilder,
    ) -> Result<(Value, Option<Vec<String>>), SlackError> {
        let name = method.name;
        let answer = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| SlackError::Transport {
                method: name,
                maybe_processed: !e.is_connect() && !e.is_builder(),
                message: crate::http::describe(e),
            })?;
        let status = answer.status().as_u16();
        if status == 429 {
            return Err(SlackError::RateLimited {
                method: name,
                retry_after: retry_after(answer.headers()),
            });
        }
        if status != 200 {
            return Err(SlackError::Status {
                method: name,
                status,
            });
        }
        let scopes = granted_scopes(answer.headers());
        let value: Value = answer.json().await.map_err(|e| {
            if e.is_timeout() {
                SlackError::Transport {
                    method: name,
                    message: e.without_url().to_string(),
                    maybe_processed: true,
                }
            } else {
                SlackError::Unreadable {
                    method: name,
                    message: e.without_url().to_string(),
                }
            }
        })?;
        if value["ok"] == true {
            return Ok((value, scopes));
        }
        Err(SlackError::Api {
            method: name,
            code: value["error"]
                .as_str()
                .unwrap_or("unknown_error")
                .to_owned(),
        })
    }
}

/// The scopes in an `x-oauth-scopes` header (`chat:write,links:read`, maybe
/// with spaces after the commas).
fn granted_scopes(headers: &reqwest::header::HeaderMap) -> Option<Vec<String>> {
    let text = headers.get("x-oauth-scopes")?.to_str().ok()?;
    Some(
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

fn check_arguments<'k>(method: Method, names: impl Iterator<Item = &'k str>) {
    for name in names {
        assert!(
            method.arguments.contains(&name),
            "{}: `{name}` is not in the method table",
            method.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_come_from_the_x_oauth_scopes_header() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(granted_scopes(&h), None);
        h.insert(
            "x-oauth-scopes",
            "chat:write, links:read,commands".parse().unwrap(),
        );
        assert_eq!(
            granted_scopes(&h).unwrap(),
            ["chat:write", "links:read", "commands"]
        );
        h.insert("x-oauth-scopes", "".parse().unwrap());
        assert_eq!(granted_scopes(&h), Some(vec![]));
    }
}
