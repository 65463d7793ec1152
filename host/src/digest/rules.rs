//! When held events go, and how: the digest rules, in one pure function.
//!
//! Per binding and space:
//! - every held event waits at least the *gather* time (a second, or the
//!   window if shorter) for others of its space;
//! - the space is in a *burst* when more than the binding's threshold of its
//!   events were held within the window (those already released count), or
//!   one page or blog post was updated more than once within it;
//! - not in a burst when its gather time ends: the held events go one by
//!   one, in order, exactly as they would have without digests;
//! - in a burst it is *collecting a digest*: it goes once the space has
//!   been quiet for a quarter of the window (at least a second), or a whole
//!   window after its first held event, whichever comes first; then the
//!   plugin gets every held event in one digest (a single held event goes
//!   on its own). A digest carries at most [`MAX_DIGEST_EVENTS`]; the rest
//!   make the next one.
//!
//! This module reads no store and no clock: it is given the rows and the
//! time, so the rules are tested here and run the same on every replica.
//! It must never leave a held event out of a release it decides, nor put
//! one into two.

use std::collections::{BTreeMap, HashMap};

use crate::store::{DigestSettings, HeldEvent};

/// Longest a held event waits for company before it is known not to be in
/// a burst (ms).
pub const GATHER_MS: i64 = 1_000;
/// Most events in one digest.
pub const MAX_DIGEST_EVENTS: usize = 1_000;

/// How held events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Each to `handle`, in order (not a burst, or a burst of one).
    OneByOne,
    /// All to `handle-digest`, as one digest.
    Digest,
}

/// Held events whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Their binding.
    pub binding_id: i64,
    /// Their space.
    pub space_key: String,
    /// The held rows' ids, in hold order.
    pub ids: Vec<i64>,
    /// How they go.
    pub release: Release,
}

/// A space whose burst is being collected into a digest (what the console
/// shows as "collecting a digest").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Collecting {
    /// The binding.
    pub binding_id: i64,
    /// The space.
    pub space_key: String,
    /// Events held so far.
    pub events: usize,
    /// When the first of them was held (ms).
    pub since: i64,
    /// When the digest goes unless more events come (ms).
    pub due_at: i64,
}

/// What to do now, and when to look again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What goes now.
    pub due: Vec<Due>,
    /// Bursts still collecting.
    pub collecting: Vec<Collecting>,
    /// The earliest time something held becomes due, if anything waits.
    pub next_at: Option<i64>,
}

/// Decides what of `rows` (every unreleased held event, and those released
/// within the longest window) goes at `now`. `settings` gives a binding's
/// digest settings, or `None` when it no longer holds events (digests
/// turned off, a plugin that no longer takes them): its held events then go
/// one by one at once.
pub fn plan(
    rows: &[HeldEvent],
    settings: impl Fn(i64) -> Option<DigestSettings>,
    now: i64,
) -> Plan {
    let mut groups: BTreeMap<(i64, &str), Vec<&HeldEvent>> = BTreeMap::new();
    for row in rows {
        groups
            .entry((row.binding_id, row.space_key.as_str()))
            .or_default()
            .push(row);
    }
    let mut plan = Plan::default();
    for ((binding_id, space_key), rows) in groups {
        let held: Vec<&HeldEvent> = rows
            .iter()
            .copied()
            .filter(|r| r.released_at.is_none())
            .collect();
        if held.is_empty() {
            continue;
        }
        let due = |ids: Vec<i64>, release| Due {
            binding_id,
            space_key: space_key.to_owned(),
            ids,
            release,
        };
        let Some(s) = settings(binding_id).filter(|s| s.enabled) else {
            plan.due
                .push(due(held.iter().map(|r| r.id).collect(), Release::OneByOne));
            continue;
        };
        let window = i64::from(s.window_secs.max(1)) * 1000;
        let recent: Vec<&HeldEvent> = rows
            .iter()
            .copied()
            .filter(|r| r.released_at.is_none() || r.held_at >= now - window)
            .collect();
        let mut updates: HashMap<u64, usize> = HashMap::new();
        for page in recent.iter().filter_map(|r| r.page_update) {
            *updates.entry(page).or_default() += 1;
        }
        let burst = recent.len() > s.threshold as usize || updates.values().any(|n| *n > 1);
        let first = held.iter().map(|r| r.held_at).min().unwrap_or(now);
        let last = held.iter().map(|r| r.held_at).max().unwrap_or(now);
        let due_at = if burst {
            let quiet = (window / 4).clamp(1_000.min(window), window);
            (last + quiet).min(first + window)
        } else {
            first + GATHER_MS.min(window)
        };
        if now < due_at {
            plan.next_at = Some(plan.next_at.map_or(due_at, |n| n.min(due_at)));
            if burst {
                plan.collecting.push(Collecting {
                    binding_id,
                    space_key: space_key.to_owned(),
                    events: held.len(),
                    since: first,
                    due_at,
                });
            }
            continue;
        }
        let ids: Vec<i64> = held.iter().map(|r| r.id).collect();
        if !burst || ids.len() == 1 {
            plan.due.push(due(ids, Release::OneByOne));
        } else {
            for chunk in ids.chunks(MAX_DIGEST_EVENTS) {
                let release = if chunk.len() == 1 {
                    Release::OneByOne
                } else {
                    Release::Digest
                };
                plan.due.push(due(chunk.to_vec(), release));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_000_000;

    fn row(id: i64, space: &str, held_at: i64) -> HeldEvent {
        HeldEvent {
            id,
            binding_id: 1,
            event_id: id,
            space_key: space.into(),
            page_update: None,
            held_at,
            released_at: None,
            released_with: None,
        }
    }

    fn on(threshold: u32, window_secs: u32) -> impl Fn(i64) -> Option<DigestSettings> {
        move |_| {
            Some(DigestSettings {
                enabled: true,
                threshold,
                window_secs,
            })
        }
    }

    #[test]
    fn a_lone_event_waits_the_gather_time_then_goes_on_its_own() {
        let rows = [row(1, "ENG", T0)];
        let early = plan(&rows, on(20, 300), T0 + 999);
        assert!(early.due.is_empty() && early.collecting.is_empty());
        assert_eq!(early.next_at, Some(T0 + 1_000));
        let now = plan(&rows, on(20, 300), T0 + 1_000);
        assert_eq!(now.due.len(), 1);
        assert_eq!(now.due[0].ids, vec![1]);
        assert_eq!(now.due[0].release, Release::OneByOne);
    }

    #[test]
    fn more_than_the_threshold_collect_until_quiet_or_a_window() {
        // 600 events within 6 s: one burst; quiet for 75 s (300 / 4) after
        // the last one, it goes as one digest.
        let rows: Vec<HeldEvent> = (0..600).map(|i| row(i + 1, "ENG", T0 + i * 10)).collect();
        let last = T0 + 599 * 10;
        let collecting = plan(&rows, on(20, 300), last + 74_999);
        assert!(collecting.due.is_empty());
        assert_eq!(
            collecting.collecting,
            vec![Collecting {
                binding_id: 1,
                space_key: "ENG".into(),
                events: 600,
                since: T0,
                due_at: last + 75_000
            }]
        );
        let due = plan(&rows, on(20, 300), last + 75_000);
        assert_eq!(due.due.len(), 1);
        assert_eq!(due.due[0].release, Release::Digest);
        assert_eq!(due.due[0].ids, (1..=600).collect::<Vec<_>>());
        // A burst that never goes quiet still goes a window after it began.
        let steady: Vec<HeldEvent> = (0..=300)
            .map(|i| row(i + 1, "ENG", T0 + i * 1_000))
            .collect();
        assert!(plan(&steady, on(20, 300), T0 + 299_999).due.is_empty());
        let at_window = plan(&steady, on(20, 300), T0 + 300_000);
        assert_eq!(at_window.due[0].ids.len(), 301);
    }

    #[test]
    fn the_threshold_itself_is_not_a_burst() {
        let rows: Vec<HeldEvent> = (0..20).map(|i| row(i + 1, "ENG", T0)).collect();
        let p = plan(&rows, on(20, 300), T0 + 1_000);
        assert_eq!(p.due[0].release, Release::OneByOne);
        assert_eq!(p.due[0].ids.len(), 20);
        let rows: Vec<HeldEvent> = (0..21).map(|i| row(i + 1, "ENG", T0)).collect();
        assert!(plan(&rows, on(20, 300), T0 + 1_000).due.is_empty());
    }

    #[test]
    fn released_events_in_the_window_still_count() {
        // 20 went one by one a minute ago; the 21st within the window is a
        // burst (of one, so it goes on its own, after the quiet time).
        let mut rows: Vec<HeldEvent> = (0..20)
            .map(|i| HeldEvent {
                released_at: Some(T0 + 1_000),
                ..row(i + 1, "ENG", T0)
            })
            .collect();
        rows.push(row(21, "ENG", T0 + 60_000));
        assert!(plan(&rows, on(20, 300), T0 + 61_000).due.is_empty());
        let p = plan(&rows, on(20, 300), T0 + 60_000 + 75_000);
        assert_eq!(p.due[0].ids, vec![21]);
        assert_eq!(p.due[0].release, Release::OneByOne);
        // After the window they no longer count.
        let mut late = rows.clone();
        late[20].held_at = T0 + 400_000;
        let p = plan(&late, on(20, 300), T0 + 401_000);
        assert_eq!(p.due[0].release, Release::OneByOne);
    }

    #[test]
    fn a_page_updated_twice_is_a_burst_whatever_the_threshold() {
        let edits: Vec<HeldEvent> = (0..7)
            .map(|i| HeldEvent {
                page_update: Some(42),
                ..row(i + 1, "ENG", T0 + i * 100)
            })
            .collect();
        assert!(plan(&edits, on(20, 300), T0 + 2_000).due.is_empty());
        let p = plan(&edits, on(20, 300), T0 + 600 + 75_000);
        assert_eq!(p.due[0].release, Release::Digest);
        assert_eq!(p.due[0].ids.len(), 7);
        // Updates of different pages are not.
        let different: Vec<HeldEvent> = (0..3)
            .map(|i| HeldEvent {
                page_update: Some(40 + i as u64),
                ..row(i + 1, "ENG", T0)
            })
            .collect();
        assert_eq!(
            plan(&different, on(20, 300), T0 + 1_000).due[0].release,
            Release::OneByOne
        );
    }

    #[test]
    fn spaces_and_bindings_are_apart_and_off_releases_at_once() {
        let mut rows: Vec<HeldEvent> = (0..30).map(|i| row(i + 1, "ENG", T0)).collect();
        rows.push(row(31, "OPS", T0));
        let p = plan(&rows, on(20, 300), T0 + 1_000);
        assert_eq!(p.due.len(), 1);
        assert_eq!(p.due[0].space_key, "OPS");
        assert_eq!(p.collecting.len(), 1);
        let off = plan(&rows, |_| None, T0);
        assert_eq!(off.due.len(), 2);
        assert!(off.due.iter().all(|d| d.release == Release::OneByOne));
        assert_eq!(off.due.iter().map(|d| d.ids.len()).sum::<usize>(), 31);
        let disabled = plan(
            &rows,
            |_| {
                Some(DigestSettings {
                    enabled: false,
                    ..DigestSettings::default()
                })
            },
            T0,
        );
        assert_eq!(disabled.due.len(), 2);
    }

    #[test]
    fn a_huge_burst_is_cut_into_digests_of_at_most_the_maximum() {
        let rows: Vec<HeldEvent> = (0..2_500).map(|i| row(i + 1, "ENG", T0)).collect();
        let p = plan(&rows, on(20, 300), T0 + 75_000);
        let sizes: Vec<usize> = p.due.iter().map(|d| d.ids.len()).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 500]);
        assert!(p.due.iter().all(|d| d.release == Release::Digest));
    }
}
