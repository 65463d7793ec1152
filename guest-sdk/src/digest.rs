//! Digests (contract 0.3.0): bursts of events handed over together.
//!
//! When a binding's events of one space come faster than its digest
//! threshold (an import of 600 pages, a page saved seven times in a few
//! minutes), the host holds them and calls [`Plugin::handle_digest`]
//! (crate::Plugin::handle_digest) once with all of them, instead of
//! [`Plugin::handle`](crate::Plugin::handle) once per event. The plugin's
//! manifest opts in with `digests = true`; the binding's admin can turn
//! digests off or change the threshold and window.
//!
//! A digest is plain data ([`Digest`]: the space, the events oldest first,
//! a Confluence search URL). This module only groups it into what a message
//! says, so every poster plugin tells a burst the same way:
//!
//! - [`groups`] splits events into pages created (pages and blog posts),
//!   edits of one page (each page its own group, for its own thread), and
//!   everything else, in the order each group began;
//! - [`per_person`] gathers, for personal notifications, the events each
//!   person is concerned by, so each person gets one message;
//! - [`people_phrase`], [`count_phrase`] and [`created_phrase`] say who and
//!   how many in words.
//!
//! ```
//! use pagehook_guest::digest::{self, Group};
//! use pagehook_guest::{EventKind, testing};
//!
//! let d = testing::digest(
//!     (0..600).map(|i| testing::created_page(&format!("Imported page {i}"), 1_000 + i)),
//! );
//! let events: Vec<_> = d.events.iter().collect();
//! let groups = digest::groups(&events);
//! assert!(matches!(&groups[0], Group::Created(pages) if pages.len() == 600));
//! assert_eq!(digest::created_phrase(&groups[0].events()), "600 pages");
//! ```

use crate::filters;
use crate::{Concern, Digest, Event, EventKind, Person};

/// How many titles a summary lists before "and N more".
pub const TITLES_SHOWN: usize = 10;

/// Events of a digest that one message tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Group<'a> {
    /// Pages and blog posts created (in event order).
    Created(Vec<&'a Event>),
    /// Updates of one page or blog post (its id), in version order.
    Edited(u64, Vec<&'a Event>),
    /// Everything else (comments, ...), in event order.
    Other(Vec<&'a Event>),
}

impl<'a> Group<'a> {
    /// The group's events.
    pub fn events(&self) -> Vec<&'a Event> {
        match self {
            Group::Created(e) | Group::Edited(_, e) | Group::Other(e) => e.clone(),
        }
    }

    /// How many events the group has.
    pub fn len(&self) -> usize {
        match self {
            Group::Created(e) | Group::Edited(_, e) | Group::Other(e) => e.len(),
        }
    }

    /// True for a group without events (never returned by [`groups`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Splits `events` (typically the digest's events a plugin's filters kept)
/// into [`Group`]s, in the order each group's first event came.
pub fn groups<'a>(events: &[&'a Event]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for event in events {
        let slot = match event.kind {
            EventKind::PageCreated | EventKind::BlogCreated => groups
                .iter_mut()
                .position(|g| matches!(g, Group::Created(_))),
            EventKind::PageUpdated | EventKind::BlogUpdated => {
                let page = filters::page_id(event).unwrap_or(0);
                groups
                    .iter_mut()
                    .position(|g| matches!(g, Group::Edited(p, _) if *p == page))
            }
            _ => groups.iter_mut().position(|g| matches!(g, Group::Other(_))),
        };
        match slot {
            Some(i) => match &mut groups[i] {
                Group::Created(e) | Group::Edited(_, e) | Group::Other(e) => e.push(event),
            },
            None => groups.push(match event.kind {
                EventKind::PageCreated | EventKind::BlogCreated => Group::Created(vec![event]),
                EventKind::PageUpdated | EventKind::BlogUpdated => {
                    Group::Edited(filters::page_id(event).unwrap_or(0), vec![event])
                }
                _ => Group::Other(vec![event]),
            }),
        }
    }
    for group in &mut groups {
        if let Group::Edited(_, events) = group {
            events.sort_by_key(|e| e.content.as_ref().map_or(0, |c| c.version));
        }
    }
    groups
}

/// The people who did `events`, by their best names, each once, in order.
pub fn people(events: &[&Event]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for event in events {
        let name = filters::actor_name(event).to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Who did `events`, in words: "Ada Lovelace", "Ada Lovelace and Grace
/// Hopper", "Ada Lovelace, Grace Hopper and 3 others".
pub fn people_phrase(events: &[&Event]) -> String {
    let names = people(events);
    match names.as_slice() {
        [] => "Someone".into(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] if rest.len() == 1 => format!("{a}, {b} and {}", rest[0]),
        [a, b, rest @ ..] => format!("{a}, {b} and {} others", rest.len()),
    }
}

/// `n` things: "1 page", "600 pages".
pub fn count_phrase(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// What `events` created, counted: "600 pages", "3 pages and 1 blog post".
pub fn created_phrase(events: &[&Event]) -> String {
    let blogs = events
        .iter()
        .filter(|e| e.kind == EventKind::BlogCreated)
        .count();
    let pages = events.len() - blogs;
    match (pages, blogs) {
        (p, 0) => count_phrase(p, "page", "pages"),
        (0, b) => count_phrase(b, "blog post", "blog posts"),
        (p, b) => format!(
            "{} and {}",
            count_phrase(p, "page", "pages"),
            count_phrase(b, "blog post", "blog posts")
        ),
    }
}

/// The first [`TITLES_SHOWN`] events, and how many more there are.
pub fn first_few<'a>(events: &[&'a Event]) -> (Vec<&'a Event>, usize) {
    let shown: Vec<&Event> = events.iter().take(TITLES_SHOWN).copied().collect();
    let more = events.len() - shown.len();
    (shown, more)
}

/// "and 590 more", or nothing when all are shown.
pub fn and_more(more: usize) -> Option<String> {
    (more > 0).then(|| format!("and {more} more"))
}

/// The versions an edit group spans: first version before the edits and
/// last version after them (`(1, 8)` for seven edits of version 1).
pub fn version_span(edits: &[&Event]) -> Option<(u32, u32)> {
    let versions: Vec<u32> = edits
        .iter()
        .filter_map(|e| e.content.as_ref().map(|c| c.version))
        .collect();
    let first = *versions.iter().min()?;
    let last = *versions.iter().max()?;
    Some((first.saturating_sub(1).max(1), last))
}

/// The space as people know it, from the digest or its first event.
pub fn space_name(digest: &Digest) -> &str {
    digest
        .space_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(&digest.space_key)
}

/// Someone a digest's events concern personally, and which of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonalDigest<'a> {
    /// Their email (as the first event listed it): what `dm-slack` needs.
    pub email: &'a str,
    /// Who they are.
    pub person: &'a Person,
    /// Every reason they are notified, over all their events.
    pub concerns: Vec<Concern>,
    /// Their events, in order, each with why it concerns them.
    pub events: Vec<(&'a Event, Vec<Concern>)>,
}

/// For each person `events` concern for one of `wanted` (see
/// [`Event::recipients`]: never the actor, only people who may view the
/// content), the events concerning them, people in the order they first
/// appear; emails compared without case.
pub fn per_person<'a>(events: &[&'a Event], wanted: &[Concern]) -> Vec<PersonalDigest<'a>> {
    let mut out: Vec<PersonalDigest<'a>> = Vec::new();
    for event in events {
        for r in event.recipients(wanted) {
            let i = match out
                .iter()
                .position(|p| p.email.eq_ignore_ascii_case(r.email))
            {
                Some(i) => i,
                None => {
                    out.push(PersonalDigest {
                        email: r.email,
                        person: r.person,
                        concerns: vec![],
                        events: vec![],
                    });
                    out.len() - 1
                }
            };
            let p = &mut out[i];
            for c in &r.concerns {
                if !p.concerns.contains(c) {
                    p.concerns.push(*c);
                }
            }
            p.concerns
                .sort_by_key(|c| Concern::ALL.iter().position(|x| x == c));
            p.events.push((event, r.concerns.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn edit(page: u64, version: u32) -> Event {
        let mut e = testing::event(EventKind::PageUpdated);
        let c = e.content.as_mut().unwrap();
        c.id = page;
        c.version = version;
        e
    }

    #[test]
    fn groups_keep_order_and_split_edits_by_page() {
        let created = testing::created_page("A", 1);
        let comment = testing::event(EventKind::CommentCreated);
        let events = [
            edit(7, 3),
            created.clone(),
            edit(8, 2),
            edit(7, 2),
            comment.clone(),
            testing::created_page("B", 2),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let g = groups(&refs);
        assert_eq!(g.len(), 4);
        assert!(matches!(&g[0], Group::Edited(7, e) if e.len() == 2
            && e[0].content.as_ref().unwrap().version == 2));
        assert!(matches!(&g[1], Group::Created(e) if e.len() == 2));
        assert!(matches!(&g[2], Group::Edited(8, e) if e.len() == 1));
        assert!(matches!(&g[3], Group::Other(e) if e.len() == 1));
        assert_eq!(g.iter().map(Group::len).sum::<usize>(), events.len());
    }

    #[test]
    fn phrases() {
        let mut grace = testing::created_page("G", 2);
        grace.actor.as_mut().unwrap().display_name = Some("Grace Hopper".into());
        let ada = testing::created_page("A", 1);
        let mut blog = testing::created_page("Blog", 3);
        blog.kind = EventKind::BlogCreated;
        assert_eq!(people_phrase(&[&ada, &ada]), "Ada Lovelace");
        assert_eq!(
            people_phrase(&[&ada, &grace]),
            "Ada Lovelace and Grace Hopper"
        );
        assert_eq!(created_phrase(&[&ada]), "1 page");
        assert_eq!(
            created_phrase(&[&ada, &grace, &blog]),
            "2 pages and 1 blog post"
        );
        let many: Vec<Event> = (0..600).map(|i| testing::created_page("p", i)).collect();
        let refs: Vec<&Event> = many.iter().collect();
        let (shown, more) = first_few(&refs);
        assert_eq!((shown.len(), more), (10, 590));
        assert_eq!(and_more(more).as_deref(), Some("and 590 more"));
        assert_eq!(and_more(0), None);
        let edits = [edit(7, 2), edit(7, 8)];
        assert_eq!(version_span(&[&edits[0], &edits[1]]), Some((1, 8)));
    }

    #[test]
    fn each_person_once_with_all_their_events() {
        let mut a = testing::created_page("A", 1);
        a.people = vec![
            testing::concerned("grace@example.com", &[Concern::Watcher]),
            testing::concerned("linus@example.com", &[Concern::Mentioned]),
        ];
        let mut b = testing::created_page("B", 2);
        b.people = vec![testing::concerned(
            "GRACE@example.com",
            &[Concern::Mentioned],
        )];
        let people = per_person(&[&a, &b], &[Concern::Mentioned, Concern::Watcher]);
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].email, "grace@example.com");
        assert_eq!(people[0].events.len(), 2);
        assert_eq!(people[0].concerns, [Concern::Mentioned, Concern::Watcher]);
        assert_eq!(people[1].events.len(), 1);
        assert!(per_person(&[&a, &b], &[Concern::Creator]).is_empty());
    }
}
