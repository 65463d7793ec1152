//! The people a page, blog or comment event concerns (contract 0.2.0's
//! `event.people`), for plugins that notify people personally.
//!
//! Who: the content's creator (`history.createdBy`), the users the new
//! version's storage body mentions (`<ri:user ri:userkey=".."/>` or
//! `ri:username`), and the watchers (for a comment: its page's). Each is
//! read back as a user (`GET /rest/api/user?key=`, cached), which on Data
//! Center carries no email. Each person is listed once, with every reason,
//! never the actor and never Pagehook's own account, only when
//! [`super::viewers`] says they may view the content (for a comment: its
//! page), and only with an email found by enrichment (`enrich/emails.rs`:
//! their own link, the mobile profile, the admin user list); people without
//! one are left out and counted there, with the reason.
//!
//! Watchers: Data Center 9 lists a content's watchers at
//! `GET /rest/api/content/{id}/watchers`, answered only to Confluence and
//! space administrators. When Confluence refuses (403) or does not know the
//! resource (404, before 9.0), watchers count as unknown (logged once per
//! source, and not asked again for the cache TTL) and the event goes on
//! without them: it never fails for that. Failures worth retrying (network,
//! 5xx, 429) defer the event like any enrichment failure.
//!
//! What it must never do: list someone the host cannot show may view the
//! content, or the person who caused the event.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Concern, ConcernedPerson, Person};

/// A user named in storage format.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mention {
    /// `ri:userkey`.
    Key(String),
    /// `ri:username` (older content).
    Username(String),
}

/// The users a storage-format body mentions (`ri:user` elements), in order,
/// each once. A tolerant scan rather than an XML parse: storage format is a
/// fragment with undeclared `ac:`/`ri:` prefixes and HTML entities, and one
/// malformed corner must not hide every mention. Comments and CDATA
/// sections (a code macro's body) are skipped: text there mentions nobody.
pub fn mentions(storage: &str) -> Vec<Mention> {
    let mut found: Vec<Mention> = Vec::new();
    let mut rest = storage;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            rest = after.find("]]>").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let (tag, after) = tag(&rest[1..]);
        rest = after;
        let Some((name, attrs)) = tag else { continue };
        if !name.eq_ignore_ascii_case("ri:user") {
            continue;
        }
        let attr = |n: &str| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mention = match (attr("ri:userkey"), attr("ri:username")) {
            (Some(key), _) => Mention::Key(key),
            (None, Some(name)) => Mention::Username(name),
            (None, None) => continue,
        };
        if !found.contains(&mention) {
            found.push(mention);
        }
    }
    found
}

type Tag<'a> = Option<(&'a str, Vec<(&'a str, String)>)>;

/// Reads one start (or empty) tag after its `<`: its name and attributes,
/// and what follows its `>`. End tags and declarations give no tag.
fn tag(s: &str) -> (Tag<'_>, &str) {
    let name_end = s
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(s.len());
    let name = &s[..name_end];
    if !name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
        // An end tag, a declaration or a stray `<` in text: go on after it.
        return (None, s);
    }
    let mut rest = &s[name_end..];
    let mut attrs = Vec::new();
    loop {
        rest = rest.trim_start();
        match rest.chars().next() {
            None => return (None, ""),
            Some('>') => break,
            Some('/') => {
                rest = &rest[1..];
                continue;
            }
            _ => {}
        }
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        let Some(after_eq) = rest.strip_prefix('=') else {
            if key.is_empty() {
                rest = &rest[rest.chars().next().map_or(0, char::len_utf8)..];
            }
            continue;
        };
        rest = after_eq.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &rest[1..];
                let end = body.find(q).unwrap_or(body.len());
                rest = body.get(end + 1..).unwrap_or("");
                &body[..end]
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(rest.len());
                let v = &rest[..end];
                rest = &rest[end..];
                v
            }
        };
        attrs.push((key, decode(value)));
    }
    (Some((name, attrs)), &rest[1..])
}

/// Decodes XML's and a few HTML character references in an attribute value.
fn decode(v: &str) -> String {
    if !v.contains('&') {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The user key of `history.createdBy`, when the content says.
pub fn creator_key(content: &Value) -> Option<String> {
    content
        .pointer("/history/createdBy/userKey")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

/// Collects people by user key with all their reasons, in a stable order
/// (first seen first).
#[derive(Default)]
pub struct Gathered {
    order: Vec<String>,
    by_key: BTreeMap<String, (Person, Vec<Concern>)>,
}

impl Gathered {
    /// Adds `person` for `concern` (once per reason).
    pub fn add(&mut self, person: Person, concern: Concern) {
        let entry = self.by_key.entry(person.key.clone()).or_insert_with(|| {
            self.order.push(person.key.clone());
            (person, Vec::new())
        });
        if !entry.1.contains(&concern) {
            entry.1.push(concern);
        }
    }

    /// Whether `key` was added.
    pub fn contains(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// Everyone added, in order, reasons sorted.
    pub fn into_people(mut self) -> Vec<ConcernedPerson> {
        self.order
            .iter()
            .filter_map(|k| self.by_key.remove(k))
            .map(|(person, mut concerns)| {
                concerns.sort();
                ConcernedPerson { person, concerns }
            })
            .collect()
    }
}

/// Whether a person may be listed at all: has a user key, is not the actor
/// nor Pagehook's own account (their email is looked for afterwards, see
/// `enrich/emails.rs`).
pub fn listable(person: &Person, actor: Option<&str>, service: &str) -> bool {
    !person.key.is_empty() && Some(person.key.as_str()) != actor && person.key != service
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_by_key_or_username_once_each_outside_code() {
        let xml = r#"<p>Hi <ac:link><ri:user ri:userkey="k-ada" /></ac:link> and
            <ac:link><ri:user ri:username='bob'/></ac:link>, again <ac:link><ri:user ri:userkey="k-ada"/></ac:link>.</p>
            <ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[<ri:user ri:userkey="k-in-code"/>]]></ac:plain-text-body></ac:structured-macro>
            <!-- <ri:user ri:userkey="k-in-comment"/> -->
            <p>&nbsp;a &lt;ri:user ri:userkey="k-escaped"/&gt;</p>
            <ri:page ri:content-title="x" /><RI:USER RI:USERKEY="k&amp;q" ></RI:USER>
            <ri:user ri:account-id="cloud-only" />"#;
        assert_eq!(
            mentions(xml),
            vec![
                Mention::Key("k-ada".into()),
                Mention::Username("bob".into()),
                Mention::Key("k&q".into()),
            ]
        );
    }

    #[test]
    fn malformed_storage_still_gives_what_it_can() {
        assert_eq!(mentions(""), vec![]);
        assert_eq!(mentions("<p>unclosed <b"), vec![]);
        assert_eq!(
            mentions(r#"<p>a < b <ri:user ri:userkey="k1"/> <![CDATA[ never closed"#),
            vec![Mention::Key("k1".into())]
        );
        assert_eq!(
            mentions(r#"<ri:user ri:userkey="k&#x41;&#66;&bogus;" />"#),
            vec![Mention::Key("kAB&bogus;".into())]
        );
        assert_eq!(mentions(r#"<ri:user ri:userkey="unterminated"#), vec![]);
    }

    #[test]
    fn people_are_gathered_once_with_every_reason() {
        let p = |k: &str| Person {
            key: k.into(),
            username: None,
            display_name: None,
            email: Some(format!("{k}@example.com")),
        };
        let mut g = Gathered::default();
        g.add(p("b"), Concern::Watcher);
        g.add(p("a"), Concern::Creator);
        g.add(p("b"), Concern::Mentioned);
        g.add(p("b"), Concern::Watcher);
        let people = g.into_people();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].person.key, "b");
        assert_eq!(
            people[0].concerns,
            vec![Concern::Mentioned, Concern::Watcher]
        );
        assert!(listable(&p("a"), Some("b"), "svc"));
        assert!(!listable(&p("a"), Some("a"), "svc"), "the actor");
        assert!(!listable(&p("svc"), None, "svc"), "Pagehook itself");
        let no_email = Person {
            email: None,
            ..p("c")
        };
        assert!(
            listable(&no_email, None, "svc"),
            "the email is looked for later"
        );
        assert!(!listable(&p(""), None, "svc"), "no key");
    }
}
