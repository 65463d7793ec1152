//! A Confluence user's email, found the ways Data Center gives one out, for
//! personal notifications (`event.people`, Slack DMs by email).
//!
//! Data Center's user objects (`/rest/api/user`, watchers, restriction
//! lists) carry no `email`, and `expand=details.personal` is a Cloud
//! expansion Data Center drops. So a person's email is looked for, in this
//! order, and the first answer wins:
//!
//! 1. **Their own link** ([`LinkedEmails`]): a person who linked their chat
//!    account to their Confluence user while signed in. The only way that
//!    works when the instance hides emails.
//! 2. **The mobile profile**, `GET /rest/mobile/1.0/profile/{username}`
//!    (fields `userName`, `fullName`, `email`, `unknownUser`, ...; any may
//!    be missing). Its `email` obeys the instance's *User email visibility*
//!    setting: public, masked (`ada at example dot com`), or only visible
//!    to Confluence administrators. A masked address is not unmasked: it
//!    counts as hidden.
//! 3. **The admin user list**, `GET /rest/api/admin/users/list/active`
//!    (Data Center 9.4 and later, Confluence administrators only), where an
//!    entry carries `email` ("depending on the type of the user") and names
//!    the user by `userKey` or `username`. An entry naming neither is not
//!    matched to anyone (display names are not unique), and a key or
//!    username listed with two different emails matches nobody.
//!
//! Answers are cached for the enrichment TTL (a failed lookup is not, so
//! the next event asks again). When none of them gives an email the person
//! is left out and the reason is counted ([`Unresolved`]): in the
//! `pagehook_people_unresolved_total{connection,reason}` metric and in the
//! connection's [`PeopleTally`], which `doctor` and the console read.
//!
//! What it must never do: guess an email (from a display name, a masked
//! address, a username with the company's domain), or hand out one that
//! Confluence or the person's own link did not give.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::EnrichError;
use crate::confluence::client::{ClientError, ConfluenceClient};
use crate::metrics::Metrics;
use crate::model::Person;
use crate::ttl_cache::TtlCache;

/// Most people remembered in a tally's "left out" list.
const LEFT_OUT_CAP: usize = 200;

/// The seam through which a person's own link gives their email: given a
/// Confluence connection and a Confluence user key, the email of the chat
/// account that this Confluence user linked themselves to (while signed in
/// to Confluence), or `None` when they have not.
///
/// Implemented over the store by the self-linking feature and handed to
/// [`super::Enricher::with_linked_emails`]. A link beats every other
/// answer. `Err` is a failure to read the links (the event is deferred and
/// tried again, like any enrichment failure); its message must not carry
/// secrets.
pub trait LinkedEmails: Send + Sync {
    /// The linked email of Confluence user `user_key` on `connection`.
    fn linked_email<'a>(
        &'a self,
        connection: &'a str,
        user_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;
}

/// Where a person's email came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EmailSource {
    /// Their own link ([`LinkedEmails`]).
    Link,
    /// `GET /rest/mobile/1.0/profile/{username}`.
    MobileProfile,
    /// `GET /rest/api/admin/users/list/active`.
    AdminList,
}

impl EmailSource {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailSource::Link => "link",
            EmailSource::MobileProfile => "mobile_profile",
            EmailSource::AdminList => "admin_list",
        }
    }
}

/// Why no email was found for a person (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unresolved {
    /// Confluence knows the person but showed no usable email: the
    /// instance's email visibility hides (or masks) it from the service
    /// account, and the admin list did not carry one.
    EmailHidden,
    /// Confluence has no profile for them (no username, `unknownUser`, or
    /// 404: a deleted user, or an instance without the mobile resource).
    NoProfile,
    /// Confluence refused the lookups (401/403).
    NotPermitted,
    /// The lookups failed (network, server errors, answers that are not
    /// what Confluence documents).
    LookupFailed,
    /// Not an email question: Pagehook cannot tell whether they may view
    /// the content (the space's permissions or their groups cannot be
    /// read, as on 8.5 or in a space the service account does not
    /// administer), so they are left out before any email is looked for.
    ViewNotKnown,
}

impl Unresolved {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Unresolved::EmailHidden => "email_hidden",
            Unresolved::NoProfile => "no_profile",
            Unresolved::NotPermitted => "not_permitted",
            Unresolved::LookupFailed => "lookup_failed",
            Unresolved::ViewNotKnown => "view_not_known",
        }
    }

    /// What an admin can do about it.
    pub fn fix(self) -> &'static str {
        match self {
            Unresolved::EmailHidden => {
                "the instance's User email visibility hides emails from the service account: the person can link their own chat account (/confluence link), or make the service account a Confluence administrator"
            }
            Unresolved::NoProfile => {
                "Confluence has no profile for this user (deleted, or the mobile profile resource is not available on this instance): the person can link their own chat account"
            }
            Unresolved::NotPermitted => {
                "Confluence refused the service account the profile and the user list: check its rights"
            }
            Unresolved::LookupFailed => {
                "Confluence could not be asked (network or server errors): see the log; the next event asks again"
            }
            Unresolved::ViewNotKnown => {
                "Pagehook cannot tell whether they may view the content: make the service account a space admin of that space (space permissions are readable from Data Center 9.1) so their access can be checked"
            }
        }
    }
}

/// The outcome of looking for one person's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailLookup {
    /// Found, and where.
    Found { email: String, via: EmailSource },
    /// None found, and why.
    Unresolved(Unresolved),
}

/// What the mobile profile said about one username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileAnswer {
    /// A usable email.
    Email(String),
    /// A profile without a usable email (missing, empty or masked).
    NoEmail,
    /// No profile: 404, `unknownUser`, or a profile of someone else.
    NoProfile,
    /// 401/403.
    NotPermitted,
    /// Could not be asked (not cached).
    Failed,
}

impl ProfileAnswer {
    /// Reads a profile answer (`GET /rest/mobile/1.0/profile/{username}`)
    /// for `username`.
    pub fn from_profile(v: &Value, username: &str) -> ProfileAnswer {
        if v.get("unknownUser").and_then(Value::as_bool) == Some(true)
            || v.get("anonymous").and_then(Value::as_bool) == Some(true)
        {
            return ProfileAnswer::NoProfile;
        }
        // A profile that names someone else is no answer about this user.
        if let Some(named) = v.get("userName").and_then(Value::as_str)
            && !named.eq_ignore_ascii_case(username)
        {
            return ProfileAnswer::NoProfile;
        }
        match v
            .get("email")
            .and_then(Value::as_str)
            .and_then(usable_email)
        {
            Some(email) => ProfileAnswer::Email(email),
            None => ProfileAnswer::NoEmail,
        }
    }
}

/// `s` as an email address, when it is one: one `@` with something on both
/// sides and no whitespace. A masked address (`ada at example dot com`) is
/// none.
pub fn usable_email(s: &str) -> Option<String> {
    let s = s.trim();
    let (local, domain) = s.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| s.to_owned())
}

/// Reads the mobile profile of `username` and what it says about an email.
/// `Err` only for what must defer the event (429 beyond the inline wait).
pub async fn probe_profile(
    client: &ConfluenceClient,
    username: &str,
) -> Result<ProfileAnswer, ClientError> {
    match client.mobile_profile(username).await {
        Ok(Some(v)) => Ok(ProfileAnswer::from_profile(&v, username)),
        Ok(None) | Err(ClientError::Rejected { status: 404, .. }) => Ok(ProfileAnswer::NoProfile),
        Err(ClientError::Unauthorized(_)) => Ok(ProfileAnswer::NotPermitted),
        Err(e @ ClientError::RateLimited { .. }) => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "reading a user's mobile profile failed");
            Ok(ProfileAnswer::Failed)
        }
    }
}

/// The admin user list as an index: user key and username (lower case) →
/// email (`None`: listed without one, or with two different ones).
#[derive(Debug, Default)]
pub struct AdminIndex {
    by_key: HashMap<String, Option<String>>,
    by_username: HashMap<String, Option<String>>,
}

impl AdminIndex {
    /// Indexes the entries of `GET /rest/api/admin/users/list/active`.
    pub fn new(users: &[Value]) -> AdminIndex {
        fn add(map: &mut HashMap<String, Option<String>>, k: String, email: Option<String>) {
            map.entry(k)
                .and_modify(|known| {
                    if *known != email {
                        *known = None;
                    }
                })
                .or_insert(email);
        }
        let mut index = AdminIndex::default();
        for u in users {
            let s = |k: &str| {
                u.get(k)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            let email = s("email").and_then(usable_email);
            if let Some(key) = s("userKey") {
                add(&mut index.by_key, key.to_owned(), email.clone());
            }
            if let Some(name) = s("username") {
                add(&mut index.by_username, name.to_lowercase(), email);
            }
        }
        index
    }

    /// The email listed for `person`: by user key, else by username.
    pub fn email(&self, person: &Person) -> Option<String> {
        self.by_key.get(&person.key).cloned().flatten().or_else(|| {
            let name = person.username.as_deref()?.to_lowercase();
            self.by_username.get(&name).cloned().flatten()
        })
    }
}

/// What the admin user list gave, as cached.
#[derive(Clone)]
enum AdminList {
    Listed(Arc<AdminIndex>),
    /// 401/403/404 (not an administrator, or before 9.4).
    Unavailable,
}

/// Who was left out, for `doctor` and the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Their Confluence user key.
    pub user_key: String,
    /// Their username, when known.
    pub username: Option<String>,
    /// Why (the latest time).
    pub reason: Unresolved,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// What one Confluence connection's email lookups gave since the process
/// started (or the connection last changed): how many people got an email
/// by each way, how many were left out for each reason, and the latest
/// people left out (at most 200, newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeopleReport {
    /// Emails found, by [`EmailSource::as_str`].
    pub found: BTreeMap<&'static str, u64>,
    /// People left out, by [`Unresolved::as_str`].
    pub unresolved: BTreeMap<&'static str, u64>,
    /// The people left out, newest first.
    pub left_out: Vec<LeftOut>,
}

/// The running tally behind a [`PeopleReport`]: shared, cheap to update.
#[derive(Default)]
pub struct PeopleTally {
    inner: Mutex<TallyInner>,
}

#[derive(Default)]
struct TallyInner {
    found: BTreeMap<&'static str, u64>,
    unresolved: BTreeMap<&'static str, u64>,
    left_out: BTreeMap<String, LeftOut>,
}

impl PeopleTally {
    /// Counts one lookup's outcome for `person`.
    pub fn record(&self, person: &Person, lookup: &EmailLookup) {
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match lookup {
            EmailLookup::Found { via, .. } => {
                *t.found.entry(via.as_str()).or_default() += 1;
                t.left_out.remove(&person.key);
            }
            EmailLookup::Unresolved(reason) => {
                *t.unresolved.entry(reason.as_str()).or_default() += 1;
                if t.left_out.len() >= LEFT_OUT_CAP && !t.left_out.contains_key(&person.key) {
                    let oldest = t
                        .left_out
                        .iter()
                        .min_by_key(|(_, l)| l.at_ms)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        t.left_out.remove(&k);
                    }
                }
                t.left_out.insert(
                    person.key.clone(),
                    LeftOut {
                        user_key: person.key.clone(),
                        username: person.username.clone(),
                        reason: *reason,
                        at_ms: crate::store::now_ms(),
                    },
                );
            }
        }
    }

    /// The tally as it stands.
    pub fn report(&self) -> PeopleReport {
        let t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut left_out: Vec<LeftOut> = t.left_out.values().cloned().collect();
        left_out.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(a.user_key.cmp(&b.user_key)));
        PeopleReport {
            found: t.found.clone(),
            unresolved: t.unresolved.clone(),
            left_out,
        }
    }
}

/// Finds people's emails for one Confluence connection (see the module doc).
pub struct PersonEmails {
    connection: String,
    client: ConfluenceClient,
    linked: Option<Arc<dyn LinkedEmails>>,
    metrics: Option<Arc<Metrics>>,
    tally: Arc<PeopleTally>,
    /// Mobile profile answers by username (lower case); failures not kept.
    profiles: TtlCache<String, ProfileAnswer>,
    /// The admin user list; failures not kept.
    admin: TtlCache<(), AdminList>,
}

impl PersonEmails {
    /// Lookups against `client`'s Confluence (connection `connection`),
    /// cached for `ttl`, with no links and no metrics yet.
    pub fn new(connection: &str, client: ConfluenceClient, ttl: Duration) -> PersonEmails {
        PersonEmails {
            connection: connection.to_owned(),
            client,
            linked: None,
            metrics: None,
            tally: Arc::new(PeopleTally::default()),
            profiles: TtlCache::new(ttl),
            admin: TtlCache::new(ttl),
        }
    }

    /// Asks `linked` first (see [`LinkedEmails`]).
    pub fn set_linked(&mut self, linked: Arc<dyn LinkedEmails>) {
        self.linked = Some(linked);
    }

    /// Counts outcomes in `metrics` too.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The connection's tally.
    pub fn tally(&self) -> Arc<PeopleTally> {
        self.tally.clone()
    }

    /// Counts `person` as left out for `reason` without looking for an
    /// email (tally, metric and an info line), as [`Self::resolve_and_count`]
    /// counts an unresolved lookup.
    pub fn count_left_out(&self, person: &Person, reason: Unresolved) {
        self.record(person, EmailLookup::Unresolved(reason));
    }

    /// Looks for `person`'s email and counts the outcome (tally and metric).
    pub async fn resolve_and_count(&self, person: &Person) -> Result<EmailLookup, EnrichError> {
        let lookup = self.resolve(person).await?;
        Ok(self.record(person, lookup))
    }

    fn record(&self, person: &Person, lookup: EmailLookup) -> EmailLookup {
        self.tally.record(person, &lookup);
        if let Some(m) = &self.metrics {
            match &lookup {
                EmailLookup::Found { via, .. } => {
                    m.person_email_found(&self.connection, via.as_str())
                }
                EmailLookup::Unresolved(reason) => {
                    m.person_unresolved(&self.connection, reason.as_str())
                }
            }
        }
        if let EmailLookup::Unresolved(reason) = &lookup {
            tracing::info!(
                connection = %self.connection,
                user_key = %person.key,
                reason = reason.as_str(),
                "a person the event concerns is left out of event.people"
            );
        }
        lookup
    }

    /// Looks for `person`'s email, in the module doc's order, without
    /// counting. `Err` only for what must defer the event: the links could
    /// not be read, or Confluence is rate limiting.
    pub async fn resolve(&self, person: &Person) -> Result<EmailLookup, EnrichError> {
        if person.key.is_empty() {
            return Ok(EmailLookup::Unresolved(Unresolved::NoProfile));
        }
        if let Some(linked) = &self.linked {
            match linked.linked_email(&self.connection, &person.key).await {
                Ok(Some(email)) => {
                    if let Some(email) = usable_email(&email) {
                        return Ok(EmailLookup::Found {
                            email,
                            via: EmailSource::Link,
                        });
                    }
                }
                Ok(None) => {}
                Err(message) => {
                    return Err(EnrichError::Transient {
                        message: format!("reading people's links: {message}"),
                        retry_after: None,
                    });
                }
            }
        }
        let profile = match person.username.as_deref().filter(|u| !u.is_empty()) {
            Some(username) => self.profile(username).await?,
            None => ProfileAnswer::NoProfile,
        };
        if let ProfileAnswer::Email(email) = profile {
            return Ok(EmailLookup::Found {
                email,
                via: EmailSource::MobileProfile,
            });
        }
        let listed = self.admin_list().await?;
        if let Some(email) = listed.as_ref().and_then(|index| index.email(person)) {
            return Ok(EmailLookup::Found {
                email,
                via: EmailSource::AdminList,
            });
        }
        Ok(EmailLookup::Unresolved(match profile {
            ProfileAnswer::Email(_) | ProfileAnswer::NoEmail => Unresolved::EmailHidden,
            ProfileAnswer::NoProfile => Unresolved::NoProfile,
            ProfileAnswer::NotPermitted => Unresolved::NotPermitted,
            ProfileAnswer::Failed => Unresolved::LookupFailed,
        }))
    }

    async fn profile(&self, username: &str) -> Result<ProfileAnswer, EnrichError> {
        let key = username.to_lowercase();
        if let Some(known) = self.profiles.get(&key) {
            return Ok(known);
        }
        let answer = probe_profile(&self.client, username).await?;
        if answer != ProfileAnswer::Failed {
            self.profiles.put(key, answer.clone());
        }
        Ok(answer)
    }

    /// The admin user list's index; `None` when Confluence does not give it
    /// (not an administrator, before 9.4) or could not be asked.
    async fn admin_list(&self) -> Result<Option<Arc<AdminIndex>>, EnrichError> {
        if let Some(known) = self.admin.get(&()) {
            return Ok(match known {
                AdminList::Listed(index) => Some(index),
                AdminList::Unavailable => None,
            });
        }
        match self.client.active_users().await {
            Ok(Some(users)) => {
                let index = Arc::new(AdminIndex::new(&users));
                self.admin.put((), AdminList::Listed(index.clone()));
                Ok(Some(index))
            }
            Ok(None) | Err(ClientError::Unauthorized(_)) => {
                self.admin.put((), AdminList::Unavailable);
                Ok(None)
            }
            Err(e @ ClientError::RateLimited { .. }) => Err(e.into()),
            Err(e) => {
                tracing::warn!(connection = %self.connection, error = %e, "reading the admin user list failed");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    mod against_the_fake {
        use pagehook_fakes::{
            ConfluenceAuth as FakeAuth, DcVersion, EmailVisibility, FakeConfluence, Fault,
            endpoints,
        };

        use super::super::*;
        use super::person;
        use crate::confluence::client::{ClientOptions, ConfluenceAuth};
        use crate::secret::Secret;

        const PAT: &str = "emails-pat";

        fn fake() -> FakeConfluence {
            let fake = FakeConfluence::start(FakeAuth::Bearer(PAT.into()));
            fake.put_user("k-ada", "ada", "Ada", "ada@example.com");
            fake.put_user("k-nomail", "nomail", "No Mail", "");
            fake
        }

        fn emails(fake: &FakeConfluence) -> PersonEmails {
            let client = ConfluenceClient::new(
                &fake.base_url(),
                ConfluenceAuth::Bearer(Secret::new(PAT)),
                ClientOptions {
                    attempts: 1,
                    ..ClientOptions::default()
                },
            );
            PersonEmails::new("prod", client, Duration::from_secs(60))
        }

        fn ada() -> Person {
            person("k-ada", Some("ada"))
        }

        async fn lookup(e: &PersonEmails, p: &Person) -> EmailLookup {
            e.resolve_and_count(p).await.unwrap()
        }

        fn found(email: &str, via: EmailSource) -> EmailLookup {
            EmailLookup::Found {
                email: email.into(),
                via,
            }
        }

        #[tokio::test]
        async fn a_public_profile_gives_the_email_once_per_ttl() {
            let fake = fake();
            let e = emails(&fake);
            let want = found("ada@example.com", EmailSource::MobileProfile);
            assert_eq!(lookup(&e, &ada()).await, want);
            assert_eq!(lookup(&e, &ada()).await, want);
            assert_eq!(fake.calls(endpoints::MOBILE_PROFILE), 1, "cached");
            assert_eq!(fake.calls(endpoints::ACTIVE_USERS), 0, "not needed");
            assert_eq!(e.tally().report().found.get("mobile_profile"), Some(&2));
        }

        #[tokio::test]
        async fn emails_for_admins_only_reach_an_admin_service_account() {
            let fake = fake();
            fake.set_email_visibility(EmailVisibility::AdminsOnly);
            let e = emails(&fake);
            assert_eq!(
                lookup(&e, &ada()).await,
                EmailLookup::Unresolved(Unresolved::EmailHidden)
            );
            assert_eq!(fake.calls(endpoints::ACTIVE_USERS), 1, "refused: 403");
            assert_eq!(
                lookup(&e, &ada()).await,
                EmailLookup::Unresolved(Unresolved::EmailHidden)
            );
            assert_eq!(
                fake.calls(endpoints::ACTIVE_USERS),
                1,
                "the refusal is cached"
            );
            let report = e.tally().report();
            assert_eq!(report.unresolved.get("email_hidden"), Some(&2));
            assert_eq!(report.left_out[0].user_key, "k-ada");

            fake.set_service_confluence_admin(true);
            let admin = emails(&fake);
            assert_eq!(
                lookup(&admin, &ada()).await,
                found("ada@example.com", EmailSource::MobileProfile)
            );
        }

        #[tokio::test]
        async fn masked_and_hidden_emails_are_never_used() {
            let fake = fake();
            fake.set_email_visibility(EmailVisibility::Masked);
            assert_eq!(
                lookup(&emails(&fake), &ada()).await,
                EmailLookup::Unresolved(Unresolved::EmailHidden),
                "`ada at example dot com` is not unmasked"
            );
            fake.set_service_confluence_admin(true);
            assert_eq!(
                lookup(&emails(&fake), &ada()).await,
                found("ada@example.com", EmailSource::AdminList),
                "masked in the profile, listed whole to an administrator"
            );
            fake.set_email_visibility(EmailVisibility::Hidden);
            assert_eq!(
                lookup(&emails(&fake), &ada()).await,
                EmailLookup::Unresolved(Unresolved::EmailHidden),
                "hidden even from an administrator"
            );
            fake.set_email_visibility(EmailVisibility::Public);
            assert_eq!(
                lookup(&emails(&fake), &person("k-nomail", Some("nomail"))).await,
                EmailLookup::Unresolved(Unresolved::EmailHidden),
                "a person without an address"
            );
        }

        #[tokio::test]
        async fn the_admin_list_answers_where_it_names_people() {
            let fake = fake();
            fake.set_mobile_profile_available(false);
            fake.set_service_confluence_admin(true);
            assert_eq!(
                lookup(&emails(&fake), &ada()).await,
                found("ada@example.com", EmailSource::AdminList),
                "10.2 lists userKey, username and email"
            );
            fake.emulate(DcVersion::V9_4);
            assert_eq!(
                lookup(&emails(&fake), &ada()).await,
                EmailLookup::Unresolved(Unresolved::NoProfile),
                "9.4 lists display names only: matched to nobody"
            );
            fake.emulate(DcVersion::V8_5);
            assert_eq!(
                lookup(&emails(&fake), &ada()).await,
                EmailLookup::Unresolved(Unresolved::NoProfile),
                "8.5: no admin list"
            );
        }

        #[tokio::test]
        async fn unknown_people_have_no_profile() {
            let fake = fake();
            let e = emails(&fake);
            assert_eq!(
                lookup(&e, &person("k-gone", Some("gone"))).await,
                EmailLookup::Unresolved(Unresolved::NoProfile),
                "unknownUser"
            );
            assert_eq!(
                lookup(&e, &person("k-gone", None)).await,
                EmailLookup::Unresolved(Unresolved::NoProfile),
                "no username"
            );
        }

        #[tokio::test]
        async fn refusals_and_failures_are_told_apart_and_failures_asked_again() {
            let fake = fake();
            fake.inject(endpoints::MOBILE_PROFILE, Fault::Status(403));
            assert_eq!(
                lookup(&emails(&fake), &ada()).await,
                EmailLookup::Unresolved(Unresolved::NotPermitted)
            );
            let e = emails(&fake);
            fake.inject(endpoints::MOBILE_PROFILE, Fault::Status(502));
            fake.inject(endpoints::ACTIVE_USERS, Fault::Status(502));
            assert_eq!(
                lookup(&e, &ada()).await,
                EmailLookup::Unresolved(Unresolved::LookupFailed)
            );
            assert_eq!(
                lookup(&e, &ada()).await,
                found("ada@example.com", EmailSource::MobileProfile),
                "a failure is not cached"
            );
            fake.inject(
                endpoints::MOBILE_PROFILE,
                Fault::RateLimited {
                    retry_after_secs: 30,
                },
            );
            let err = emails(&fake).resolve(&ada()).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    EnrichError::Transient {
                        retry_after: Some(_),
                        ..
                    }
                ),
                "rate limited: the event waits ({err:?})"
            );
        }

        struct Links(Result<Option<String>, String>);

        impl LinkedEmails for Links {
            fn linked_email<'a>(
                &'a self,
                connection: &'a str,
                user_key: &'a str,
            ) -> BoxFuture<'a, Result<Option<String>, String>> {
                assert_eq!((connection, user_key), ("prod", "k-ada"));
                Box::pin(async move { self.0.clone() })
            }
        }

        #[tokio::test]
        async fn a_link_beats_confluence_and_works_when_emails_are_hidden() {
            let fake = fake();
            fake.set_email_visibility(EmailVisibility::Hidden);
            let mut e = emails(&fake);
            e.set_linked(Arc::new(Links(Ok(Some("ada@slack.example".into())))));
            assert_eq!(
                lookup(&e, &ada()).await,
                found("ada@slack.example", EmailSource::Link)
            );
            assert_eq!(fake.calls(endpoints::MOBILE_PROFILE), 0);

            let mut unlinked = emails(&fake);
            unlinked.set_linked(Arc::new(Links(Ok(None))));
            assert_eq!(
                lookup(&unlinked, &ada()).await,
                EmailLookup::Unresolved(Unresolved::EmailHidden)
            );
            let mut broken = emails(&fake);
            broken.set_linked(Arc::new(Links(Err("store down".into()))));
            assert!(matches!(
                broken.resolve(&ada()).await,
                Err(EnrichError::Transient { .. })
            ));
        }
    }

    fn person(key: &str, username: Option<&str>) -> Person {
        Person {
            key: key.into(),
            username: username.map(str::to_owned),
            display_name: None,
            email: None,
        }
    }

    #[test]
    fn only_real_addresses_are_emails() {
        assert_eq!(
            usable_email(" ada@example.com "),
            Some("ada@example.com".into())
        );
        for not in [
            "",
            "ada at example dot com",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "ada @example.com",
        ] {
            assert_eq!(usable_email(not), None, "{not}");
        }
    }

    #[test]
    fn a_profile_gives_an_email_only_for_the_user_asked_about() {
        let p = |v: Value| ProfileAnswer::from_profile(&v, "ada");
        assert_eq!(
            p(json!({"userName": "ada", "fullName": "Ada", "email": "ada@example.com"})),
            ProfileAnswer::Email("ada@example.com".into())
        );
        assert_eq!(
            p(json!({"email": "ada@example.com"})),
            ProfileAnswer::Email("ada@example.com".into()),
            "any field may be missing"
        );
        assert_eq!(p(json!({"userName": "ADA"})), ProfileAnswer::NoEmail);
        assert_eq!(
            p(json!({"userName": "ada", "email": "ada at example dot com"})),
            ProfileAnswer::NoEmail,
            "masked: never unmasked"
        );
        assert_eq!(
            p(json!({"userName": "ada", "email": ""})),
            ProfileAnswer::NoEmail
        );
        assert_eq!(
            p(json!({"userName": "bob", "email": "bob@example.com"})),
            ProfileAnswer::NoProfile
        );
        assert_eq!(
            p(json!({"unknownUser": true, "userName": "ada"})),
            ProfileAnswer::NoProfile
        );
        assert_eq!(p(json!({"anonymous": true})), ProfileAnswer::NoProfile);
    }

    #[test]
    fn the_admin_list_matches_by_key_or_username_never_by_name() {
        let index = AdminIndex::new(&[
            json!({"type": "known", "userKey": "k-ada", "username": "ada", "displayName": "Ada", "email": "ada@example.com"}),
            json!({"type": "known", "username": "Bob", "displayName": "Bob", "email": "bob@example.com"}),
            json!({"type": "known", "displayName": "Cy", "email": "cy@example.com"}),
            json!({"type": "known", "userKey": "k-dup", "email": "one@example.com"}),
            json!({"type": "known", "userKey": "k-dup", "email": "two@example.com"}),
            json!({"type": "known", "userKey": "k-none", "displayName": "No email"}),
        ]);
        assert_eq!(
            index.email(&person("k-ada", None)),
            Some("ada@example.com".into())
        );
        assert_eq!(
            index.email(&person("k-bob", Some("bob"))),
            Some("bob@example.com".into())
        );
        let cy = Person {
            display_name: Some("Cy".into()),
            ..person("k-cy", Some("cy"))
        };
        assert_eq!(index.email(&cy), None, "display names match nobody");
        assert_eq!(
            index.email(&person("k-dup", None)),
            None,
            "two emails: none"
        );
        assert_eq!(index.email(&person("k-none", None)), None);
    }

    #[test]
    fn the_tally_counts_and_remembers_who_was_left_out() {
        let tally = PeopleTally::default();
        let ada = person("k-ada", Some("ada"));
        let bob = person("k-bob", Some("bob"));
        tally.record(&ada, &EmailLookup::Unresolved(Unresolved::EmailHidden));
        tally.record(&bob, &EmailLookup::Unresolved(Unresolved::NoProfile));
        tally.record(&ada, &EmailLookup::Unresolved(Unresolved::EmailHidden));
        let r = tally.report();
        assert_eq!(r.unresolved.get("email_hidden"), Some(&2));
        assert_eq!(r.unresolved.get("no_profile"), Some(&1));
        assert_eq!(r.left_out.len(), 2);
        tally.record(
            &ada,
            &EmailLookup::Found {
                email: "ada@example.com".into(),
                via: EmailSource::Link,
            },
        );
        let r = tally.report();
        assert_eq!(r.found.get("link"), Some(&1));
        assert_eq!(
            r.left_out
                .iter()
                .map(|l| l.user_key.as_str())
                .collect::<Vec<_>>(),
            vec!["k-bob"],
            "found since: no longer left out"
        );
        assert_eq!(r.left_out[0].reason, Unresolved::NoProfile);
        assert_eq!(r.left_out[0].username.as_deref(), Some("bob"));
    }
}
