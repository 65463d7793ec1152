//! The Slack Web API methods Pagehook calls, and how Slack says each one
//! must be called.
//!
//! Slack's published description (`shared/specs/slack/slack_web_openapi_v2.json`)
//! says per method which HTTP verb it documents and which encodings it
//! parses (`consumes`). Read methods parse only a query string or a form
//! body: arguments sent to them as JSON are silently ignored, which once
//! made every channel lookup return page one of the public channels. This
//! table is the only place the client decides an encoding, and a test reads
//! the spec and fails when the two disagree.

/// How arguments travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `GET` with the arguments in the query string (read methods).
    Query,
    /// `POST` with a JSON body and the token in `Authorization: Bearer`.
    Json,
    /// `POST` with a form body (`application/x-www-form-urlencoded`) and the
    /// token in `Authorization: Bearer`: for a write method whose spec
    /// describes an argument as URL-encoded JSON text (`chat.unfurl`'s
    /// `unfurls`), sent exactly as described.
    Form,
}

/// One Web API method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    /// Its name, the last path segment (`chat.postMessage`).
    pub name: &'static str,
    /// How its arguments are sent.
    pub encoding: Encoding,
    /// Every argument Pagehook may send (the token travels as a header).
    pub arguments: &'static [&'static str],
}

/// `auth.test`: which workspace and bot a token belongs to.
pub const AUTH_TEST: Method = Method {
    name: "auth.test",
    encoding: Encoding::Query,
    arguments: &[],
};

/// `chat.postMessage`: posts to a channel, a private channel or a DM.
pub const CHAT_POST_MESSAGE: Method = Method {
    name: "chat.postMessage",
    encoding: Encoding::Json,
    arguments: &[
        "channel",
        "text",
        "blocks",
        "thread_ts",
        "unfurl_links",
        "metadata",
    ],
};

/// `chat.update`: edits a message Pagehook posted.
pub const CHAT_UPDATE: Method = Method {
    name: "chat.update",
    encoding: Encoding::Json,
    arguments: &["channel", "ts", "text", "blocks"],
};

/// `chat.unfurl`: attaches previews to links in a message (scope
/// `links:write`). Slack's spec documents `unfurls` as a form argument, "a
/// URL-encoded JSON map" of link URL to preview, so it goes as a form with
/// `unfurls` the map's JSON text. Calling it again for the same message
/// replaces the previews rather than adding more, so a retry is harmless.
pub const CHAT_UNFURL: Method = Method {
    name: "chat.unfurl",
    encoding: Encoding::Form,
    arguments: &["channel", "ts", "unfurls"],
};

/// `conversations.open`: the DM channel with a user, to look in it for a
/// message whose answer was lost.
pub const CONVERSATIONS_OPEN: Method = Method {
    name: "conversations.open",
    encoding: Encoding::Json,
    arguments: &["users"],
};

/// `conversations.list`: channel names to ids, a page at a time.
pub const CONVERSATIONS_LIST: Method = Method {
    name: "conversations.list",
    encoding: Encoding::Query,
    arguments: &["types", "exclude_archived", "limit", "cursor"],
};

/// `conversations.history`: a channel's messages, to find one posted by an
/// attempt whose answer was lost.
pub const CONVERSATIONS_HISTORY: Method = Method {
    name: "conversations.history",
    encoding: Encoding::Query,
    arguments: &[
        "channel",
        "oldest",
        "inclusive",
        "limit",
        "cursor",
        "include_all_metadata",
    ],
};

/// `conversations.replies`: the same inside a thread.
pub const CONVERSATIONS_REPLIES: Method = Method {
    name: "conversations.replies",
    encoding: Encoding::Query,
    arguments: &[
        "channel",
        "ts",
        "oldest",
        "inclusive",
        "limit",
        "cursor",
        "include_all_metadata",
    ],
};

/// `users.lookupByEmail`: the user a DM by email goes to.
pub const USERS_LOOKUP_BY_EMAIL: Method = Method {
    name: "users.lookupByEmail",
    encoding: Encoding::Query,
    arguments: &["email"],
};

/// `users.info`: a user's profile.
pub const USERS_INFO: Method = Method {
    name: "users.info",
    encoding: Encoding::Query,
    arguments: &["user"],
};

/// Every method Pagehook calls.
pub const ALL: &[Method] = &[
    AUTH_TEST,
    CHAT_POST_MESSAGE,
    CHAT_UPDATE,
    CHAT_UNFURL,
    CONVERSATIONS_OPEN,
    CONVERSATIONS_LIST,
    CONVERSATIONS_HISTORY,
    CONVERSATIONS_REPLIES,
    USERS_LOOKUP_BY_EMAIL,
    USERS_INFO,
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Arguments Slack documents for a method but that are newer than the
    /// published description (`include_all_metadata` came with message
    /// metadata); the spec test allows exactly these.
    const NEWER_THAN_SPEC: &[(&str, &str)] = &[
        ("conversations.history", "include_all_metadata"),
        ("conversations.replies", "include_all_metadata"),
        ("chat.postMessage", "metadata"),
    ];

    fn spec() -> Value {
        let dir = std::env::var_os("PAGEHOOK_SPECS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs")
            });
        let path = dir.join("slack/slack_web_openapi_v2.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read Slack's spec at {}: {e}", path.display()));
        serde_json::from_str(&text).expect("the spec is JSON")
    }

    #[test]
    fn every_method_is_called_as_slacks_spec_says() {
        let spec = spec();
        let mut wrong = Vec::new();
        for m in ALL {
            let path = format!("/{}", m.name);
            let ops = spec["paths"][&path]
                .as_object()
                .unwrap_or_else(|| panic!("{} is not in Slack's spec", m.name));
            let (verb, op) = ops.iter().next().expect("one operation per method");
            let consumes: Vec<&str> = op["consumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let ok = match m.encoding {
                // A read method: the spec documents GET and form/query
                // arguments; JSON would be ignored.
                Encoding::Query => consumes.contains(&"application/x-www-form-urlencoded"),
                Encoding::Json => consumes.contains(&"application/json") && verb == "post",
                Encoding::Form => {
                    consumes.contains(&"application/x-www-form-urlencoded") && verb == "post"
                }
            };
            if !ok {
                wrong.push(format!(
                    "{}: we send {:?}, the spec documents {verb} consuming {consumes:?}",
                    m.name, m.encoding
                ));
            }
            if verb == "get" && m.encoding != Encoding::Query {
                wrong.push(format!("{}: a GET method must be sent as a query", m.name));
            }
            if !consumes.contains(&"application/json") && m.encoding == Encoding::Json {
                wrong.push(format!("{}: Slack ignores JSON arguments here", m.name));
            }
            let params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
            for p in &params {
                let name = p["name"].as_str().unwrap_or_default();
                if p["required"] == true && name != "token" && !m.arguments.contains(&name) {
                    wrong.push(format!(
                        "{}: required argument `{name}` is never sent",
                        m.name
                    ));
                }
            }
            for a in m.arguments {
                let documented = params.iter().any(|p| p["name"] == *a)
                    || NEWER_THAN_SPEC.contains(&(m.name, a));
                if !documented {
                    wrong.push(format!("{}: `{a}` is not one of its arguments", m.name));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Arguments Pagehook always sends though the published description
    /// leaves them optional: `chat.unfurl` without `unfurls` does nothing
    /// (Slack answers `missing_unfurls`).
    #[test]
    fn chat_unfurl_sends_what_slack_needs_as_a_form() {
        let spec = spec();
        let op = &spec["paths"]["/chat.unfurl"]["post"];
        for name in ["channel", "ts", "unfurls"] {
            let p = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("chat.unfurl documents no `{name}`"));
            assert_eq!(p["in"], "formData", "{name}");
            assert!(CHAT_UNFURL.arguments.contains(&name), "{name}");
        }
        assert_eq!(CHAT_UNFURL.encoding, Encoding::Form);
        assert_eq!(op["security"][0]["slackAuth"][0], "links:write");
    }

    #[test]
    fn read_methods_are_never_json() {
        for m in [
            CONVERSATIONS_LIST,
            CONVERSATIONS_HISTORY,
            CONVERSATIONS_REPLIES,
            USERS_LOOKUP_BY_EMAIL,
            USERS_INFO,
        ] {
            assert_eq!(m.encoding, Encoding::Query, "{}", m.name);
        }
    }
}
