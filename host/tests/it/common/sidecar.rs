//! A real `pagehook serve` on 127.0.0.1 with a fresh database, for
//! end-to-end tests, plus the admin CLI pointed at the same config.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The admin token every test sidecar uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-4f1c";
/// The webhook secret test Confluence connections use.
pub const HOOK_SECRET: &str = "It's a Secret to Everybody";
/// The PAT the fake Confluence accepts.
pub const PAT: &str = "pat-for-tests-0001";

/// A config directory with a database; the server starts and stops on demand.
pub struct Sidecar {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub base: String,
}

impl Sidecar {
    /// A fresh config (database, plugins dir, admin token file) in a temp dir,
    /// with a fast delivery retry schedule.
    pub fn new() -> Sidecar {
        Sidecar::with_delivery(
            "retry-schedule-ms = [100, 200, 400]\nretry-every-ms = 400\ngive-up-after-ms = 3000\n\
             timeout-ms = 1000\nslack-channel-rate = 50.0\nslack-workspace-rate = 100.0\njitter = 0.0\n",
        )
    }

    /// As [`Sidecar::new`] with this `[delivery]` section.
    pub fn with_delivery(delivery: &str) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), ADMIN_TOKEN).unwrap();
        let cache = super::root().join("target/pagehook-cache");
        std::fs::write(
            dir.path().join("pagehook.toml"),
            format!(
                "[server]\nadmin-token = {{ file = \"admin-token\" }}\nbody-limit-bytes = 65536\n\
                 [sandbox]\ncache-dir = \"{}\"\n[dispatch]\nretry-secs = 1\nbreaker-threshold = 3\n\
                 [delivery]\n{delivery}",
                cache.display()
            ),
        )
        .unwrap();
        Sidecar {
            dir,
            child: None,
            base: String::new(),
        }
    }

    /// As [`Sidecar::with_delivery`], storing in the PostgreSQL database at
    /// `url` (no password in it) with `password` read from a file, and more
    /// `[store]` keys in `store` (say `lease-ms = 3000`).
    ///
    /// Every path in the config that replicas must share is absolute (the
    /// plugins directory, the password file), so [`Sidecar::replica`] gives
    /// another server on the same store.
    pub fn on_postgres(url: &str, password: &str, store: &str, delivery: &str) -> Sidecar {
        let side = Sidecar::with_delivery(delivery);
        let secret = side.path().join("database-password");
        std::fs::write(&secret, password).unwrap();
        side.append_store(&format!(
            "database = \"{url}\"\npassword = {{ file = \"{}\" }}\n{store}",
            secret.display()
        ));
        side
    }

    /// Another server with a config of its own that is a copy of this one:
    /// on PostgreSQL (see [`Sidecar::on_postgres`]) it is another replica on
    /// the same database. This sidecar must outlive it (it holds the files
    /// the copy points to).
    pub fn replica(&self) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        for file in ["pagehook.toml", "admin-token"] {
            std::fs::copy(self.path().join(file), dir.path().join(file)).unwrap();
        }
        Sidecar {
            dir,
            child: None,
            base: String::new(),
        }
    }

    /// Appends a `[store]` section with `keys` and an absolute plugins directory.
    fn append_store(&self, keys: &str) {
        let mut config = std::fs::read_to_string(self.config()).unwrap();
        config.push_str(&format!(
            "\n[store]\nplugins-dir = \"{}\"\n{keys}",
            self.plugins_dir()
        ));
        std::fs::write(self.config(), config).unwrap();
    }

    /// Where `plugin install` keeps its copies under this config.
    fn plugins_dir(&self) -> String {
        self.path().join("pagehook-plugins").display().to_string()
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("pagehook.toml")
    }

    /// Runs the CLI with this config; fails the test if it does not exit 0.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args);
        assert!(
            out.status.success(),
            "pagehook {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the CLI with this config and returns whatever happened.
    pub fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env("PAGEHOOK_TEST_PAT", PAT)
            .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
            .env_remove("PAGEHOOK_LOG")
            .output()
            .unwrap()
    }

    /// Connects a Slack workspace `name` at `url` with `token`; returns what the CLI said.
    pub fn connect_slack(&self, name: &str, url: &str, token: &str) -> String {
        self.cli(&["connect", "slack", name, "--url", url, "--token", token])
    }

    /// Connects Slack workspace `name` at `url` with bot `token` and a
    /// signing secret read from a file (`slack-signing-secret` in the config
    /// directory), with `extra` connect arguments; returns what the CLI said.
    pub fn connect_slack_signed(
        &self,
        name: &str,
        url: &str,
        token: &str,
        signing_secret: &str,
        extra: &[&str],
    ) -> String {
        let secret_file = self.path().join("slack-signing-secret");
        std::fs::write(&secret_file, signing_secret).unwrap();
        let mut args = vec![
            "connect",
            "slack",
            name,
            "--url",
            url,
            "--token",
            token,
            "--signing-secret-file",
            secret_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// Installs slack-poster granted all it can do in Slack: channel posts,
    /// DMs, link previews and answers to commands.
    pub fn install_slack_poster(&self) -> String {
        self.install(
            "slack-poster",
            &["post-slack", "dm-slack", "unfurl", "respond"],
        )
    }

    /// Binds slack-poster quietly to answer chat in Slack workspace
    /// `workspace`: link previews and slash-command answers.
    pub fn bind_slack_answers(&self, workspace: &str) -> String {
        let unfurl = format!("slack-unfurl:{workspace}");
        let respond = format!("slack-respond:{workspace}");
        self.cli(&[
            "bind",
            "slack-poster",
            "--quiet",
            "--source",
            workspace,
            "--to",
            &unfurl,
            "--to",
            &respond,
        ])
    }

    /// Appends `toml` to the config file as it is.
    pub fn add_to_config(&self, toml: &str) {
        let path = self.config();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(toml);
        std::fs::write(&path, text).unwrap();
    }

    /// Installs slack-poster and binds it quietly (no announcement) to Slack
    /// `#channel`, with `extra` bind arguments (scope, more settings).
    pub fn bind_slack_poster(&self, channel: &str, extra: &[&str]) -> String {
        self.install("slack-poster", &["post-slack", "dm-slack"]);
        let to = format!("slack:#{channel}");
        let set = format!("channel=#{channel}");
        let mut args = vec![
            "bind",
            "slack-poster",
            "--quiet",
            "--to",
            &to,
            "--set",
            &set,
        ];
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// Connects the fake Confluence at `url` as source `name`.
    pub fn connect_confluence(&self, name: &str, url: &str) {
        self.cli(&[
            "connect",
            "confluence",
            name,
            "--url",
            url,
            "--token-env",
            "PAGEHOOK_TEST_PAT",
            "--webhook-secret-env",
            "PAGEHOOK_TEST_HOOK_SECRET",
        ]);
    }

    /// Connects a webhook-only Confluence source `name` (nothing to read
    /// back from: port 9 on loopback), for tests of what follows ingest.
    pub fn connect_webhook_only(&self, name: &str) {
        self.cli(&[
            "connect",
            "confluence",
            name,
            "--url",
            "http://127.0.0.1:9",
            "--webhook-secret-env",
            "PAGEHOOK_TEST_HOOK_SECRET",
        ]);
    }

    /// Installs the built plugin `name` granting `grants`; returns what the CLI said.
    pub fn install(&self, name: &str, grants: &[&str]) -> String {
        let dir = super::plugin_dir(name);
        let mut args = vec!["plugin", "install", dir.to_str().unwrap()];
        for grant in grants {
            args.extend(["--grant", grant]);
        }
        self.cli(&args)
    }

    /// Starts `pagehook serve` on a random loopback port and waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .arg("--config")
            .arg(self.config())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PAGEHOOK_TEST_PAT", PAT)
            .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
            .env("PAGEHOOK_LOG", "pagehook=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.base = line
            .trim()
            .strip_prefix("pagehook listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        self.child = Some(child);
    }

    /// Runs one more `pagehook serve` on this config, beside the running
    /// one, expecting it to refuse: returns its output once it has exited.
    /// Fails the test if it is still running after 20 s.
    pub fn second_serve_output(&self) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .arg("--config")
            .arg(self.config())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PAGEHOOK_TEST_PAT", PAT)
            .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
            .env("PAGEHOOK_LOG", "pagehook=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "a second serve on {} did not exit:\n{}\n{}",
                    self.config().display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server (SIGKILL: no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_free_sigterm(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// POSTs a body to the webhook of `source`, signed with `secret`.
    pub fn hook(
        &self,
        source: &str,
        body: &[u8],
        secret: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::blocking::Client::new()
            .post(format!("{}/hooks/confluence/{source}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            req = req.header("X-Hub-Signature", sign(secret, body));
        }
        let answer = req.send().unwrap();
        let status = answer.status().as_u16();
        let json = answer.json().unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// GET under the server with the admin token.
    pub fn api(&self, path: &str) -> (u16, serde_json::Value) {
        let answer = reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        (answer.status().as_u16(), answer.json().unwrap_or_default())
    }

    /// Waits until `check` on `pagehook <args> --json` holds.
    pub fn wait_json(
        &self,
        args: &[&str],
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        loop {
            let v: serde_json::Value = serde_json::from_str(&self.cli(&all)).unwrap();
            if check(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last: {v:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `within` until `found` finds something; on timeout fails
    /// the test showing `what` and the stored events and deliveries.
    pub fn wait_until<T>(&self, what: &str, within: Duration, found: impl Fn() -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = found() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}\nevents: {}\ndeliveries: {}",
                self.cli(&["events", "--json"]),
                self.cli(&["deliveries", "--json"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.dir.path().join("pagehook.db")
    }

    /// The directory holding the config.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body), as Confluence signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn unsafe_free_sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
