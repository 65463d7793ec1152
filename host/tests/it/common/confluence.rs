//! The fake Confluence most end-to-end tests talk to: it takes the test
//! sidecar's PAT ([`super::sidecar::PAT`]), knows Ada (who wrote the example
//! events and the fakes' content fixtures) and serves the content a test
//! builds.
//!
//! It must never add anything a test did not ask for beyond Ada: the worlds
//! with Data Center users, groups, space permissions or watchers stay each
//! test's own set-up.

use pagehook_fakes::{ConfluenceAuth, ContentBuilder, FakeConfluence};

use super::sidecar::PAT;

/// Ada's user key, as the example events and the content fixtures carry it.
pub const ADA: &str = "8a7f80839e460b0f019e460ba6440001";

/// A fake Confluence that takes [`PAT`], knows Ada (`ada`, "Ada Lovelace",
/// ada@example.com) and serves `contents`, each under the id it was built
/// with, in order.
pub fn with_ada(contents: impl IntoIterator<Item = ContentBuilder>) -> FakeConfluence {
    let fake = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    fake.put_user(ADA, "ada", "Ada Lovelace", "ada@example.com");
    for content in contents {
        let content = content.build();
        let id = content["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("built content without an id: {content}"));
        fake.put_content(id, content);
    }
    fake
}
