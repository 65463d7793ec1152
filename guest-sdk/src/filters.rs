//! The notification filters admins expect from a Confluence integration,
//! shared by every plugin that posts about pages (slack-poster,
//! teams-poster, your own).
//!
//! Admins of the official Confluence apps for Slack and Teams know these
//! switches; having them in one place means every poster plugin reads the
//! same settings with the same defaults and explains a skipped event the
//! same way (`skip_reason` returns the sentence a plugin logs).
//!
//! | setting | default | skips |
//! | --- | --- | --- |
//! | `events` | `page-created, blog-created, page-updated` | other event kinds |
//! | `skip-minor-edits` | `true` | edits saved without "notify watchers" |
//! | (always) | | updates triggered by `link_refactoring` or `view_page`: nobody edited |
//! | `skip-restricted` | `true` | content with view restrictions (a channel may show it to anyone) |
//! | `skip-own-events` | `true` | events Pagehook's own account caused |
//! | `skip-personal-spaces` | `true` | personal spaces (`~user`) |
//! | `labels` | | content without at least one of these labels |
//! | `exclude-labels` | | content with any of these labels |
//! | `title-pattern` | | titles the regular expression does not match |
//! | `under-page` | | content not under this page id (itself, descendants, their comments) |

use regex_lite::Regex;

use crate::{Content, Event, EventKind, SettingError, Settings};

/// The default event kinds: what the official apps notify about, plus page updates.
pub const DEFAULT_EVENTS: [EventKind; 3] = [
    EventKind::PageCreated,
    EventKind::BlogCreated,
    EventKind::PageUpdated,
];

/// Update triggers that are not edits by a person.
const NOT_EDITS: [&str; 2] = ["link_refactoring", "view_page"];

/// Longest title pattern accepted, so a pasted essay is an error, not a slow regex.
const MAX_PATTERN_CHARS: usize = 1000;

/// Parsed filter settings; see the module documentation for each one.
#[derive(Debug, Clone)]
pub struct Filters {
    /// Event kinds to act on.
    pub events: Vec<EventKind>,
    /// Skip minor edits.
    pub skip_minor_edits: bool,
    /// Skip view-restricted content.
    pub skip_restricted: bool,
    /// Skip events caused by Pagehook itself.
    pub skip_own_events: bool,
    /// Skip personal spaces.
    pub skip_personal_spaces: bool,
    /// Require one of these labels (empty: no requirement).
    pub labels: Vec<String>,
    /// Refuse any of these labels.
    pub exclude_labels: Vec<String>,
    /// Titles must match this.
    pub title_pattern: Option<Regex>,
    /// Content must be this page or under it.
    pub under_page: Option<u64>,
}

impl Filters {
    /// Reads the filter settings, with an admin-readable error for a bad one.
    pub fn from_settings(settings: &Settings) -> Result<Filters, SettingError> {
        let events = match settings.string("events") {
            None => DEFAULT_EVENTS.to_vec(),
            Some(value) => settings
                .list("events")
                .iter()
                .map(|name| {
                    EventKind::ALL
                        .into_iter()
                        .find(|k| k.as_str() == name)
                        .ok_or_else(|| SettingError::Invalid {
                            name: "events".into(),
                            value: crate::text::truncate(value, 80),
                            expected: "event kinds such as page-created, page-updated, blog-created, comment-created",
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let title_pattern = match settings.string("title-pattern") {
            None => None,
            Some(p) if p.chars().count() > MAX_PATTERN_CHARS => {
                return Err(SettingError::Invalid {
                    name: "title-pattern".into(),
                    value: crate::text::truncate(p, 80),
                    expected: "a regular expression of at most 1000 characters",
                });
            }
            Some(p) => Some(Regex::new(p).map_err(|_| SettingError::Invalid {
                name: "title-pattern".into(),
                value: crate::text::truncate(p, 80),
                expected: "a valid regular expression",
            })?),
        };
        let under_page = match settings.string("under-page") {
            None => None,
            Some(_) => Some(settings.u64_or("under-page", 0)?),
        };
        Ok(Filters {
            events,
            skip_minor_edits: settings.bool_or("skip-minor-edits", true)?,
            skip_restricted: settings.bool_or("skip-restricted", true)?,
            skip_own_events: settings.bool_or("skip-own-events", true)?,
            skip_personal_spaces: settings.bool_or("skip-personal-spaces", true)?,
            labels: lower(settings.list("labels")),
            exclude_labels: lower(settings.list("exclude-labels")),
            title_pattern,
            under_page,
        })
    }

    /// Why `event` should be skipped, in words for the log; `None` to act on it.
    pub fn skip_reason(&self, event: &Event) -> Option<String> {
        self.skip_reason_for(event, self.skip_restricted)
    }

    /// Why `event` should not be sent to the people it concerns
    /// ([`Event::recipients`](crate::Event::recipients)); `None` to notify
    /// them. The same filters as [`skip_reason`](Self::skip_reason) except
    /// view restrictions: the host lists only people who may view the
    /// content, so a restricted page may still be told to them personally.
    pub fn personal_skip_reason(&self, event: &Event) -> Option<String> {
        self.skip_reason_for(event, false)
    }

    fn skip_reason_for(&self, event: &Event, skip_restricted: bool) -> Option<String> {
        if !self.events.contains(&event.kind) {
            return Some(format!(
                "{} is not one of the events setting's kinds",
                event.kind.as_str()
            ));
        }
        let Some(content) = &event.content else {
            return Some("the event has no content".into());
        };
        if let Some(trigger) = event.update_trigger.as_deref()
            && NOT_EDITS.contains(&trigger)
        {
            return Some(format!("update triggered by {trigger}, not an edit"));
        }
        if self.skip_minor_edits && content.minor_edit {
            return Some("minor edit".into());
        }
        if self.skip_own_events && event.by_pagehook {
            return Some("caused by Pagehook itself".into());
        }
        if skip_restricted && content.restricted {
            return Some("the content has view restrictions".into());
        }
        if self.skip_personal_spaces && content.space_key.starts_with('~') {
            return Some(format!("personal space {}", content.space_key));
        }
        let labels: Vec<String> = content.labels.iter().map(|l| l.to_lowercase()).collect();
        if !self.labels.is_empty() && !self.labels.iter().any(|l| labels.contains(l)) {
            return Some(format!("none of the labels {}", self.labels.join(", ")));
        }
        if let Some(l) = self.exclude_labels.iter().find(|l| labels.contains(l)) {
            return Some(format!("excluded label {l}"));
        }
        if let Some(pattern) = &self.title_pattern {
            let title = page_title(event);
            if !pattern.is_match(title) {
                return Some(format!("title \"{title}\" does not match title-pattern"));
            }
        }
        if let Some(page) = self.under_page
            && content.id != page
            && content.container_id != Some(page)
            && !content.ancestors.iter().any(|a| a.id == page)
        {
            return Some(format!("not under page {page}"));
        }
        None
    }
}

fn lower(items: Vec<String>) -> Vec<String> {
    items.into_iter().map(|s| s.to_lowercase()).collect()
}

/// The title of the page the event is about: for a comment, its page's
/// (the last ancestor), not the comment's own "Re: ..." title.
pub fn page_title(event: &Event) -> &str {
    let Some(content) = &event.content else {
        return "";
    };
    if content.content_type == "comment"
        && let Some(page) = content.ancestors.last()
    {
        return &page.title;
    }
    &content.title
}

/// [`page_title`], or "Untitled page" when Confluence did not say (an
/// event that could not be enriched).
pub fn display_title(event: &Event) -> &str {
    let title = page_title(event);
    if title.trim().is_empty() {
        "Untitled page"
    } else {
        title
    }
}

/// Who did it, as messages name them: the actor's best name, or "Someone".
pub fn actor_name(event: &Event) -> &str {
    event.actor.as_ref().map_or("Someone", |a| a.name())
}

/// The space as people know it: its name, else its key.
pub fn space_name(content: &Content) -> &str {
    content
        .space_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(&content.space_key)
}

/// What happened, as a verb phrase about the page with `article` before it:
/// `what_happened(PageUpdated, "the")` is "updated the page".
pub fn what_happened(kind: EventKind, article: &str) -> String {
    match kind {
        EventKind::PageCreated => format!("created {article} page"),
        EventKind::PageUpdated => format!("updated {article} page"),
        EventKind::BlogCreated => format!("published {article} blog post"),
        EventKind::BlogUpdated => format!("updated {article} blog post"),
        EventKind::CommentCreated => format!("commented on {article} page"),
        EventKind::CommentUpdated => format!("edited a comment on {article} page"),
        _ => format!("changed {article} page"),
    }
}

/// The id of the page the event is about: a comment's page, else the content itself.
pub fn page_id(event: &Event) -> Option<u64> {
    let content = event.content.as_ref()?;
    Some(content.container_id.unwrap_or(content.id))
}

/// Confluence's "View changes" URL between the previous and this version,
/// on the same server as the content's own URL; `None` for a first version.
pub fn diff_url(event: &Event) -> Option<String> {
    let version = event.content.as_ref()?.version;
    diff_url_since(event, version.checked_sub(1)?)
}

/// Confluence's "View changes" URL between version `since` and the event's
/// version (several edits at once, e.g. in a digest); `None` when `since`
/// is not an earlier version.
pub fn diff_url_since(event: &Event, since: u32) -> Option<String> {
    let content = event.content.as_ref()?;
    if since < 1 || since >= content.version || content.url.is_empty() {
        return None;
    }
    let base = server_base(&content.url)?;
    Some(format!(
        "{base}/pages/diffpagesbyversion.action?pageId={}&selectedPageVersions={}&selectedPageVersions={}",
        content.id, since, content.version
    ))
}

/// The server part of a Confluence URL (scheme, host and context path),
/// cut before the first of Confluence's own path segments.
fn server_base(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    for marker in ["/spaces/", "/display/", "/pages/", "/x/"] {
        if let Some(i) = url[after_scheme..].find(marker) {
            return Some(&url[..after_scheme + i]);
        }
    }
    let host_end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    Some(&url[..host_end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        Filters::from_settings(&Settings::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn skip(pairs: &[(&str, &str)], event: &Event) -> Option<String> {
        filters(pairs).skip_reason(event)
    }

    #[test]
    fn defaults_match_the_official_apps_plus_updates() {
        let f = filters(&[]);
        assert_eq!(f.events, DEFAULT_EVENTS.to_vec());
        assert!(
            f.skip_minor_edits && f.skip_restricted && f.skip_own_events && f.skip_personal_spaces
        );
        assert_eq!(skip(&[], &testing::event(EventKind::PageCreated)), None);
        assert!(skip(&[], &testing::event(EventKind::CommentCreated)).is_some());
        assert_eq!(
            skip(
                &[("events", "comment-created")],
                &testing::event(EventKind::CommentCreated)
            ),
            None
        );
    }

    #[test]
    fn each_filter_skips_with_a_reason() {
        let mut e = testing::event(EventKind::PageUpdated);
        e.content.as_mut().unwrap().minor_edit = true;
        assert_eq!(skip(&[], &e).as_deref(), Some("minor edit"));
        assert_eq!(skip(&[("skip-minor-edits", "no")], &e), None);

        let mut e = testing::event(EventKind::PageUpdated);
        e.update_trigger = Some("link_refactoring".into());
        assert!(skip(&[], &e).unwrap().contains("link_refactoring"));

        let mut e = testing::event(EventKind::PageCreated);
        e.by_pagehook = true;
        assert!(skip(&[], &e).unwrap().contains("Pagehook itself"));
        assert_eq!(skip(&[("skip-own-events", "false")], &e), None);

        let mut e = testing::event(EventKind::PageCreated);
        e.content.as_mut().unwrap().restricted = true;
        assert!(skip(&[], &e).unwrap().contains("restrictions"));
        assert_eq!(filters(&[]).personal_skip_reason(&e), None);
        e.content.as_mut().unwrap().minor_edit = true;
        assert_eq!(
            filters(&[]).personal_skip_reason(&e).as_deref(),
            Some("minor edit")
        );

        let mut e = testing::event(EventKind::PageCreated);
        e.content.as_mut().unwrap().space_key = "~ada".into();
        assert!(skip(&[], &e).unwrap().contains("personal space"));

        let e = testing::event(EventKind::PageCreated); // labels: release
        assert_eq!(skip(&[("labels", "Release, q3")], &e), None);
        assert!(skip(&[("labels", "incident")], &e).is_some());
        assert!(
            skip(&[("exclude-labels", "release")], &e)
                .unwrap()
                .contains("excluded")
        );
        assert_eq!(skip(&[("title-pattern", "(?i)^release")], &e), None);
        assert!(skip(&[("title-pattern", "^Draft")], &e).is_some());
        assert_eq!(skip(&[("under-page", "1000")], &e), None);
        assert!(
            skip(&[("under-page", "99")], &e)
                .unwrap()
                .contains("not under page 99")
        );
    }

    #[test]
    fn bad_settings_name_themselves() {
        let err = |pairs: &[(&str, &str)]| {
            Filters::from_settings(&Settings::from_pairs(pairs.iter().copied()))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[("events", "page-created, page-exploded")]).contains("`events`"));
        assert!(err(&[("title-pattern", "(unclosed")]).contains("valid regular expression"));
        assert!(err(&[("under-page", "abc")]).contains("`under-page`"));
        assert!(err(&[("skip-minor-edits", "maybe")]).contains("true or false"));
    }

    #[test]
    fn headline_parts_fall_back_sensibly() {
        let mut e = testing::event(EventKind::CommentUpdated);
        assert_eq!(
            what_happened(e.kind, "this"),
            "edited a comment on this page"
        );
        assert_eq!(display_title(&e), "Engineering Home");
        assert_eq!(actor_name(&e), "Ada Lovelace");
        assert_eq!(space_name(e.content.as_ref().unwrap()), "Engineering");
        e.actor = None;
        let c = e.content.as_mut().unwrap();
        c.space_name = None;
        c.ancestors.clear();
        c.title = " ".into();
        assert_eq!(actor_name(&e), "Someone");
        assert_eq!(space_name(e.content.as_ref().unwrap()), "ENG");
        assert_eq!(display_title(&e), "Untitled page");
    }

    #[test]
    fn comment_page_and_diff_links() {
        let c = testing::event(EventKind::CommentCreated);
        assert_eq!(page_id(&c), Some(123_456));
        let mut u = testing::event(EventKind::PageUpdated);
        u.content.as_mut().unwrap().url =
            "https://wiki.example.com/confluence/spaces/ENG/pages/123456/Release+notes".into();
        assert_eq!(
            diff_url(&u).unwrap(),
            "https://wiki.example.com/confluence/pages/diffpagesbyversion.action?pageId=123456&selectedPageVersions=1&selectedPageVersions=2"
        );
        assert_eq!(diff_url(&testing::event(EventKind::PageCreated)), None);
        assert_eq!(
            server_base("https://w.example.com/pages/viewpage.action?pageId=1"),
            Some("https://w.example.com")
        );
    }
}
