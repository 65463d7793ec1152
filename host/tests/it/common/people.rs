//! The people of the Data Center test worlds (ada, bob, carol, dave, eve):
//! their Confluence user keys and Slack user ids, the same in every world
//! that has them.
//!
//! Values only: which fake knows whom, with which name, password and groups,
//! stays each test's own setup, so nothing here may change what a test sees.

pub const ADA: &str = "key-ada-0001";
pub const BOB: &str = "key-bob-0002";
pub const CAROL: &str = "key-carol-0003";
pub const DAVE: &str = "key-dave-0004";
pub const EVE: &str = "key-eve-0005";

pub const ADA_SLACK: &str = "U0ADA00001";
pub const BOB_SLACK: &str = "U0BOB00002";
pub const CAROL_SLACK: &str = "U0CAROL003";
pub const DAVE_SLACK: &str = "U0DAVE0004";
pub const EVE_SLACK: &str = "U0EVE00005";
