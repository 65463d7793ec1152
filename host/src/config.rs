//! `pagehook.toml`: the sidecar's one configuration file.
//!
//! Every option has a default, so `pagehook serve` runs with no file at all
//! (SQLite next to where it starts). Paths in the file are relative to the
//! file's directory, so a config works wherever the process is started from.
//! Secrets are given as `{ env = "VAR" }`, `{ file = "path" }` or
//! `{ value = "..." }` and are never printed. Connections (Slack, Teams,
//! Confluence) are not here: admins manage them at run time with
//! `pagehook connect`, and they live in the database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::manifest::LimitRequest;
use crate::runtime::{ComponentCache, Limits, RuntimeConfig};
use crate::secret::{Secret, SecretSource};

/// The file the CLI reads when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "pagehook.toml";

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// HTTP listener and admin API.
    pub server: ServerConfig,
    /// Database and installed plugins.
    pub store: StoreConfig,
    /// Sandbox defaults and the compiled-component cache.
    pub sandbox: SandboxConfig,
    /// Reading event details back from Confluence.
    pub enrichment: EnrichmentConfig,
    /// Running plugins over stored events.
    pub dispatch: DispatchConfig,
    /// Carrying out deliveries.
    pub delivery: DeliveryConfig,
    /// Which certificate authorities outbound HTTPS trusts besides the
    /// machine's store.
    pub tls: crate::http::tls::TlsConfig,
    /// The egress proxy outbound requests go through.
    pub network: crate::http::proxy::NetworkConfig,
    /// Plugin signatures: the publisher keys this site trusts, the keys it
    /// revoked, and whether install demands a signature.
    pub plugins: crate::plugin_trust::TrustConfig,
    /// Teams bots: where the Bot Framework's signing keys are published.
    pub teams_bot: TeamsBotConfig,
}

/// `[teams-bot]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TeamsBotConfig {
    /// The Bot Framework's OpenID metadata, whose keys sign the activities
    /// Teams sends to `/hooks/teams/{connection}` (changed only for a
    /// sovereign cloud, or a test's fake).
    pub openid_metadata_url: String,
}

impl Default for TeamsBotConfig {
    fn default() -> Self {
        TeamsBotConfig {
            openid_metadata_url: crate::source::teams_auth::BOT_FRAMEWORK_OPENID_METADATA_URL
                .to_owned(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest webhook body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Bearer token for `/api/`; without one the admin API refuses every request.
    pub admin_token: Option<SecretSource>,
    /// Longest a client may take to send a request's headers (also how long
    /// an idle keep-alive connection stays open); then the connection is closed.
    pub header_timeout_ms: u64,
    /// Longest a client may take to send a request's body once its headers
    /// are in; then it is answered 408 and the connection is closed.
    pub body_timeout_ms: u64,
    /// The address people's browsers reach this Pagehook at, e.g.
    /// `https://pagehook.example.com` (with a path prefix if a proxy adds
    /// one): the one-time links `/confluence link` hands out start with it.
    /// Unset: the address each request came to (`X-Forwarded-Proto` and
    /// `X-Forwarded-Host` from a proxy, else `Host`).
    pub public_url: Option<String>,
    /// On SIGTERM: how long requests in progress, running plugin calls and
    /// sends may take to finish; then this replica lets go of what it still
    /// holds (another replica, or the next start, takes it over) and exits.
    /// Keep it below systemd's `TimeoutStopSec=` and Kubernetes'
    /// `terminationGracePeriodSeconds`.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8180".into(),
            body_limit_bytes: 1024 * 1024,
            admin_token: None,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            public_url: None,
            shutdown_grace_ms: 20_000,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreConfig {
    /// A SQLite database file (one server), or a `postgres://user@host/db`
    /// URL (any number of replicas).
    pub database: PathBuf,
    /// The PostgreSQL password, as a secret reference (`{ env = "..." }`,
    /// `{ file = "..." }`); never inside the URL.
    pub password: Option<SecretSource>,
    /// PostgreSQL connections per replica.
    pub max_connections: usize,
    /// How long a replica's claim on an event or a lane lasts without a
    /// heartbeat before another replica may take it over (ms).
    pub lease_ms: u64,
    /// Where `plugin install` keeps its copy of each installed plugin.
    pub plugins_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            database: "pagehook.db".into(),
            password: None,
            max_connections: 8,
            lease_ms: 30_000,
            plugins_dir: "pagehook-plugins".into(),
        }
    }
}

/// Which database `[store] database` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// The embedded default: a SQLite file, one `pagehook serve` at a time.
    Sqlite(PathBuf),
    /// A shared PostgreSQL database.
    Postgres(PostgresConfig),
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    /// `postgres://user@host[:port]/database[?options]`, without a password.
    pub url: String,
    /// The password, resolved when connecting.
    pub password: Option<SecretSource>,
    /// Connections in this replica's pool.
    pub max_connections: usize,
}

impl StoreConfig {
    /// The database `database` names: a `postgres://` URL, or a file.
    pub fn location(&self) -> Result<Database, String> {
        let Some(url) = self.database.to_str().filter(|d| d.contains("://")) else {
            return Ok(Database::Sqlite(self.database.clone()));
        };
        // Only the scheme in messages: the rest may carry a password.
        let scheme = url.split("://").next().unwrap_or_default();
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(format!(
                "[store] database is a {scheme}:// URL; Pagehook stores in PostgreSQL (postgres://user@host/database) or in a SQLite file (a path such as \"pagehook.db\")"
            ));
        }
        let authority = url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default())
            .unwrap_or_default();
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let password_option = query.split('&').any(|option| {
            option
                .split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("password"))
        });
        let password_in_authority = authority
            .rsplit_once('@')
            .is_some_and(|(user, _)| user.contains(':'));
        if password_option || password_in_authority {
            return Err(
                "[store] database carries a password in its URL; give the URL without it and the password as a secret reference: password = { env = \"PAGEHOOK_DATABASE_PASSWORD\" } (or { file = \"...\" })"
                    .to_owned(),
            );
        }
        Ok(Database::Postgres(PostgresConfig {
            url: url.to_owned(),
            password: self.password.clone(),
            max_connections: self.max_connections.max(2),
        }))
    }
}

/// `[sandbox]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SandboxConfig {
    /// Compiled components; default `$PAGEHOOK_CACHE_DIR` or `~/.cache/pagehook`.
    pub cache_dir: Option<PathBuf>,
    /// Limits for plugins that request nothing (same keys as a manifest's `[limits]`).
    pub defaults: LimitRequest,
}

/// `[enrichment]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnrichmentConfig {
    /// How long Confluence answers are reused.
    pub cache_ttl_secs: u64,
    /// Timeout of one REST request.
    pub timeout_secs: u64,
    /// Longest `Retry-After` honoured (Confluence has been seen sending 2^63-1).
    pub max_retry_after_secs: u64,
}

impl Default for EnrichmentConfig {
    fn default() -> Self {
        EnrichmentConfig {
            cache_ttl_secs: 30,
            timeout_secs: 10,
            max_retry_after_secs: 600,
        }
    }
}

/// `[dispatch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DispatchConfig {
    /// First wait before retrying an event whose enrichment failed; doubles up to 5 minutes.
    pub retry_secs: u64,
    /// Consecutive failures of one plugin that open its breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker skips the plugin before a trial call.
    pub breaker_cooldown_secs: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            retry_secs: 5,
            breaker_threshold: 5,
            breaker_cooldown_secs: 300,
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeliveryConfig {
    /// Waits before each retry, in ms; after the last, `retry-every-ms` until `give-up-after-ms`.
    pub retry_schedule_ms: Vec<u64>,
    /// Wait between retries once the schedule is used up.
    pub retry_every_ms: u64,
    /// A delivery still failing this long after it was written becomes a dead letter.
    pub give_up_after_ms: u64,
    /// Random spread added to each wait, as a fraction of it (0.1 = up to 10 % longer).
    pub jitter: f64,
    /// Longest `Retry-After` honoured, in seconds.
    pub max_retry_after_secs: u64,
    /// Timeout of one request to Slack, Teams or Confluence.
    pub timeout_ms: u64,
    /// Messages per second into one Slack channel (Slack allows about one).
    pub slack_channel_rate: f64,
    /// Messages per second through one Slack workspace, all channels together.
    pub slack_workspace_rate: f64,
    /// How long a resolved Slack channel name or user email is reused
    /// before it is looked up again.
    pub slack_directory_ttl_secs: u64,
    /// `conversations.list` pages (1,000 channels each) read per delivery
    /// attempt; a longer scan goes on at the next attempt from where it
    /// stopped, so one lookup never spends the method's whole rate tier.
    pub slack_list_pages_per_attempt: u32,
    /// `conversations.history` pages read when looking for a message whose
    /// answer was lost; past that the lookup is retried later.
    pub slack_history_pages: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_schedule_ms: vec![5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000],
            retry_every_ms: 3_600_000,
            give_up_after_ms: 24 * 3_600_000,
            jitter: 0.1,
            max_retry_after_secs: 600,
            timeout_ms: 10_000,
            slack_channel_rate: 1.0,
            slack_workspace_rate: 10.0,
            slack_directory_ttl_secs: 600,
            slack_list_pages_per_attempt: 10,
            slack_history_pages: 20,
        }
    }
}

impl Config {
    /// Reads `path`, or the defaults when `path` is `None` and no
    /// `pagehook.toml` is in the current directory.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        let database = config
            .store
            .location()
            .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if matches!(database, Database::Sqlite(_)) {
            rebase(&mut config.store.database);
        }
        if let Some(SecretSource::File(p)) = config.store.password.as_mut() {
            rebase(p);
        }
        rebase(&mut config.store.plugins_dir);
        if let Some(dir) = config.sandbox.cache_dir.as_mut() {
            rebase(dir);
        }
        if let Some(SecretSource::File(p)) = config.server.admin_token.as_mut() {
            rebase(p);
        }
        for ca in config.tls.extra_ca_files.iter_mut() {
            rebase(ca);
        }
        if let Some(SecretSource::File(p)) = config.network.proxy_credentials.as_mut() {
            rebase(p);
        }
        config.plugins.rebase(&base);
        config
            .plugins
            .keyring()
            .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        if let Some(url) = &config.server.public_url {
            check_public_url(url).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        }
        config.runtime_config()?;
        Ok(config)
    }

    /// The sandbox settings this config asks for.
    pub fn runtime_config(&self) -> anyhow::Result<RuntimeConfig> {
        let ceiling = Limits::ceiling();
        let defaults = Limits::default()
            .with_requests(&self.sandbox.defaults, &ceiling)
            .map_err(|m| anyhow::anyhow!("[sandbox.defaults] {m}"))?;
        Ok(RuntimeConfig {
            defaults,
            ceiling,
            cache_dir: self
                .sandbox
                .cache_dir
                .clone()
                .or_else(ComponentCache::default_dir),
        })
    }

    /// The admin token, resolved; `None` when none is configured.
    pub fn admin_token(&self) -> anyhow::Result<Option<Secret>> {
        self.server
            .admin_token
            .as_ref()
            .map(|s| {
                s.resolve()
                    .map_err(|m| anyhow::anyhow!("server.admin-token: {m}"))
            })
            .transpose()
    }

    /// How long a client may take to send a request's headers.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.server.header_timeout_ms.max(1))
    }

    /// How long a client may take to send a request's body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.server.body_timeout_ms.max(1))
    }

    /// How long a stop waits for work in progress (`[server] shutdown-grace-ms`).
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.server.shutdown_grace_ms)
    }

    /// The enrichment request timeout.
    pub fn enrichment_timeout(&self) -> Duration {
        Duration::from_secs(self.enrichment.timeout_secs.max(1))
    }
}

/// Checks `[server] public-url`: an http(s) URL with a host and nothing
/// after its path, since links are made by appending to it.
pub fn check_public_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        format!("[server] public-url is not a URL ({e}); give it as https://pagehook.example.com")
    })?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(
            "[server] public-url must be an http(s) URL with a host and no user, password, query or fragment, e.g. https://pagehook.example.com"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_is_an_http_url_to_append_links_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[server]\npublic-url = \"https://ph.example.com/pagehook\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(
            config.server.public_url.as_deref(),
            Some("https://ph.example.com/pagehook")
        );
        for bad in [
            "ph.example.com",
            "ftp://ph.example.com",
            "https://ph.example.com/?x=1",
            "https://u:s3cret@ph.example.com",
        ] {
            std::fs::write(&path, format!("[server]\npublic-url = \"{bad}\"\n")).unwrap();
            let err = Config::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains("public-url"), "{bad}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn the_example_config_parses_and_paths_are_relative_to_it() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pagehook.toml");
        let config = Config::load(Some(&example)).unwrap();
        assert!(config.store.database.starts_with(example.parent().unwrap()));
        assert_eq!(config.server.body_limit_bytes, 1024 * 1024);
    }

    #[test]
    fn a_password_in_the_database_url_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[store]\ndatabase = \"postgres://pagehook:s3cret@db.example/pagehook\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("password") && err.contains("secret reference"),
            "{err}"
        );
        assert!(
            !err.contains("s3cret"),
            "the password is never shown: {err}"
        );
        assert!(!dir.path().join("postgres:").exists());
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_a_path_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[store]\ndatabase = \"postgres://pagehook@db.example:5433/pagehook\"\npassword = { env = \"PGPASS\" }\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        match config.store.location().unwrap() {
            Database::Postgres(pg) => {
                assert_eq!(pg.url, "postgres://pagehook@db.example:5433/pagehook");
                assert_eq!(pg.password, Some(SecretSource::Env("PGPASS".into())));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, "[store]\ndatabase = \"data/p.db\"\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(
            config.store.location().unwrap(),
            Database::Sqlite(dir.path().join("data/p.db"))
        );
        std::fs::write(
            &path,
            "[store]\ndatabase = \"postgres://p@db/p?sslmode=disable&password=hunter2\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("secret reference") && !err.contains("hunter2"),
            "{err}"
        );
        std::fs::write(&path, "[store]\ndatabase = \"mysql://db/p\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("mysql://") && err.contains("PostgreSQL"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_limits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[server]\nlisten = \"x\"\nbody-limit = 3\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("body-limit"), "{err}");
        std::fs::write(&path, "[sandbox.defaults]\nmemory-mib = 100000\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("memory-mib"), "{err}");
    }

    #[test]
    fn admin_token_is_resolved_from_a_file_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[server]\nadmin-token = { file = \"token\" }\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.admin_token().unwrap().unwrap().expose(), "s3cret");
    }
}
