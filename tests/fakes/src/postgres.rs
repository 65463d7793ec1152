//! A throwaway PostgreSQL server for tests of the PostgreSQL store backend.
//!
//! Store tests run against a real server, never a mock: what the backend must get right
//! (transactions, `FOR UPDATE SKIP LOCKED`, constraint errors, a connection killed under it)
//! is PostgreSQL's behaviour, and only PostgreSQL has it. [`TestPostgres`] runs Debian's
//! `postgresql` binaries (`make postgres` installs them) on a cluster created by `initdb` in a
//! fresh temporary directory, and [`TestPostgres::fresh_database`] gives each test its own
//! database, so tests run in parallel without seeing each other's rows.
//!
//! What it must never do:
//! - listen on anything but loopback: the server listens on `127.0.0.1` at a free port and on
//!   a unix socket inside its own temporary directory;
//! - outlive the test process: a detached watchdog stops the server and removes its directory
//!   once the test process is gone, because a `static` (see [`TestPostgres::shared`]) is
//!   never dropped; a private instance also stops when dropped;
//! - touch a system cluster: it never uses port 5432 on purpose, `PG*` environment variables,
//!   `pg_ctlcluster` or any data directory but its own.
//!
//! When the tests run as root, `initdb` and `pg_ctl` run as the `postgres` OS user through
//! `runuser` (PostgreSQL refuses to run as root); the temporary directory is handed to that
//! user and its socket directory is world-writable so that `psql` can connect as root.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The superuser every test server has.
const USER: &str = "pagehook";
/// That superuser's password, for connections over TCP (`scram-sha-256`).
const PASSWORD: &str = "pagehook-test";
/// The `application_name` of the harness's own `psql` runs. It does not start with
/// `pagehook`, so terminating a test's `pagehook…` connections never hits the harness.
const PSQL_APPLICATION_NAME: &str = "test-postgres-psql";
/// How often startup is retried when the free port was taken between picking and binding.
const START_ATTEMPTS: usize = 5;
/// Unix socket paths are limited to 107 bytes; PostgreSQL appends `/.s.PGSQL.<port>`.
const MAX_SOCKET_DIR_LEN: usize = 80;

/// Counts directories and databases made by this process, for unique names.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A PostgreSQL server in a temporary directory, listening on `127.0.0.1:<port>`, with a
/// superuser `pagehook` whose password is [`TestPostgres::password`].
///
/// Use [`TestPostgres::shared`] (one server per test binary) unless a test disturbs the
/// server, for instance by killing every backend; such a test takes a private one with
/// [`TestPostgres::start`], which stops when dropped.
pub struct TestPostgres {
    /// The temporary directory: `data/`, `socket/` and `postgres.log`.
    root: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// The directory holding `initdb`, `pg_ctl`, `postgres` and (usually) `psql`.
    bin: PathBuf,
    psql: PathBuf,
    /// Running as root: the server's binaries run as the `postgres` OS user.
    as_postgres: bool,
    /// The `sh` loop that stops the server once the test process is gone.
    watchdog: Mutex<Option<Child>>,
    /// `-c` options for TLS, when [`TestPostgres::start_tls`] started it.
    tls_options: String,
}

impl TestPostgres {
    /// The server shared by every test in this test binary, started on first use.
    ///
    /// # Panics
    /// If PostgreSQL is not installed (`make postgres`) or does not start; the message holds
    /// the tail of the server log.
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(TestPostgres::start)
    }

    /// A private server, stopped and removed when dropped (or, at the latest, when the test
    /// process exits). Startup takes a second or two.
    ///
    /// # Panics
    /// If PostgreSQL is not installed (`make postgres`) or does not start; the message holds
    /// the tail of the server log.
    pub fn start() -> TestPostgres {
        TestPostgres::start_with(None)
    }

    /// A private server that accepts only TLS over TCP (`ssl = on`, `hostssl`-only
    /// `pg_hba.conf`, plain TCP rejected), presenting `cert`; the unix socket (which
    /// [`TestPostgres::psql`] uses) stays open to the test.
    ///
    /// # Panics
    /// As [`TestPostgres::start`].
    pub fn start_tls(cert: &crate::tls::IssuedCert) -> TestPostgres {
        TestPostgres::start_with(Some(cert))
    }

    fn start_with(cert: Option<&crate::tls::IssuedCert>) -> TestPostgres {
        let bin = find_bin_dir();
        let psql = Some(bin.join("psql"))
            .filter(|p| p.is_file())
            .or_else(|| find_on_path("psql"))
            .unwrap_or_else(|| panic!("no psql beside {} nor on PATH", bin.display()));
        let as_postgres = running_as_root();
        let root = make_temp_dir();
        let mut server = TestPostgres {
            data: root.join("data"),
            socket_dir: root.join("socket"),
            root,
            port: 0,
            bin,
            psql,
            as_postgres,
            watchdog: Mutex::new(None),
            tls_options: String::new(),
        };
        // From here on a panic drops `server`, which stops whatever runs and removes the
        // directory.
        server.init_cluster();
        if let Some(cert) = cert {
            server.require_tls(cert);
        }
        server.start_server();
        server.spawn_watchdog();
        server
    }

    /// A URL for `database` as user `pagehook`, without the password (give it separately,
    /// see [`TestPostgres::password`]): `postgres://pagehook@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The password of user `pagehook`, required over TCP.
    pub fn password(&self) -> &'static str {
        PASSWORD
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new, empty database with a name no other test uses
    /// (`t_<pid>_<counter>_<random>`) and returns that name.
    ///
    /// # Panics
    /// If `CREATE DATABASE` fails.
    pub fn fresh_database(&self) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{n}_{:08x}", std::process::id(), random() as u32);
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// Runs `sql` in `database` with `psql` over the server's unix socket as `pagehook` and
    /// returns what it printed, unaligned and tuples only (`-At`: one row a line, columns
    /// separated by `|`), without the final newline.
    ///
    /// `sql` is sent as one query string, so several statements in it run in one implicit
    /// transaction (and `CREATE DATABASE` must stand alone).
    ///
    /// # Panics
    /// If `psql` fails; the message holds its standard error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut command = Command::new(&self.psql);
        command
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ])
            .env("PGAPPNAME", PSQL_APPLICATION_NAME)
            .env("PGCONNECT_TIMEOUT", "10");
        let output = run(clear_pg_env(&mut command));
        if !output.status.success() {
            panic!(
                "psql on database {database} failed ({}): {}\nSQL: {sql}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        String::from_utf8_lossy(&output.stdout)
            .trim_end_matches('\n')
            .to_owned()
    }

    /// Terminates every backend connected to `database` whose `application_name` starts with
    /// `application_name_prefix` (say `"pagehook"`) and returns how many were terminated.
    ///
    /// # Panics
    /// If the query fails.
    pub fn terminate_connections(&self, database: &str, application_name_prefix: &str) -> usize {
        // Select first, then terminate: with the filter and the call in one
        // WHERE, PostgreSQL pushes pg_terminate_backend below the join that
        // supplies `datname` and ends matching connections of every
        // database. `OFFSET 0` keeps the subquery from being flattened.
        let sql = format!(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM \
             (SELECT pid FROM pg_stat_activity \
              WHERE datname = {} AND starts_with(application_name, {}) \
              AND pid <> pg_backend_pid() OFFSET 0) AS matching",
            literal(database),
            literal(application_name_prefix)
        );
        let out = self.psql("postgres", &sql);
        out.trim().parse().unwrap_or_else(|e| {
            panic!("terminate_connections: unexpected psql output {out:?}: {e}")
        })
    }

    /// Creates the cluster with `initdb`: superuser `pagehook` with a password, trust on the
    /// unix socket, `scram-sha-256` over TCP.
    fn init_cluster(&self) {
        std::fs::create_dir(&self.socket_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.socket_dir.display()));
        set_mode(&self.socket_dir, 0o777);
        let pwfile = self.root.join("pwfile");
        std::fs::write(&pwfile, format!("{PASSWORD}\n"))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", pwfile.display()));
        set_mode(&pwfile, 0o600);
        if self.as_postgres {
            let output = run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.root));
            if !output.status.success() {
                panic!(
                    "running as root, but cannot hand {} to the postgres OS user \
                     (does it exist? `make postgres` installs it): {}",
                    self.root.display(),
                    String::from_utf8_lossy(&output.stderr).trim_end()
                );
            }
        }
        set_mode(&self.root, 0o755);

        let mut initdb = self.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&self.data)
            .args(["-U", USER, "--pwfile"])
            .arg(&pwfile)
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            ]);
        let output = run(&mut initdb);
        let _ = std::fs::remove_file(&pwfile);
        if !output.status.success() {
            panic!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Writes the server's certificate and key into the data directory and
    /// `pg_hba.conf` rules that take TCP clients only over TLS.
    fn require_tls(&mut self, cert: &crate::tls::IssuedCert) {
        let crt = self.data.join("server.crt");
        let key = self.data.join("server.key");
        let hba = self.data.join("pg_hba.conf");
        for (path, text) in [
            (&crt, cert.chain_pem.as_str()),
            (&key, cert.key_pem.as_str()),
            (
                &hba,
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all 0.0.0.0/0 reject\n",
            ),
        ] {
            std::fs::write(path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        set_mode(&key, 0o600);
        if self.as_postgres {
            let output = run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&crt)
                .arg(&key)
                .arg(&hba));
            assert!(
                output.status.success(),
                "chown of the TLS files failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        self.tls_options =
            " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".into();
    }

    /// Starts the server on a free loopback port, trying again with another port when the one
    /// picked was taken meanwhile.
    fn start_server(&mut self) {
        let log = self.root.join("postgres.log");
        for attempt in 1..=START_ATTEMPTS {
            self.port = free_port();
            // `PAGEHOOK_TEST_PG_OPTIONS`: more server options, for looking
            // into a bench (`-c shared_preload_libraries=pg_stat_statements`).
            let extra = std::env::var("PAGEHOOK_TEST_PG_OPTIONS")
                .map(|o| format!(" {o}"))
                .unwrap_or_default();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on -c max_connections=200 \
                 -c shared_buffers=32MB{}{extra}",
                self.port,
                shell_quote(&self.socket_dir),
                self.tls_options
            );
            let mut pg_ctl = self.server_command("pg_ctl");
            pg_ctl
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options]);
            let output = run(&mut pg_ctl);
            if output.status.success() {
                return;
            }
            let tail = log_tail(&log);
            let port_taken =
                tail.contains("could not bind") || tail.contains("Address already in use");
            if !(port_taken && attempt < START_ATTEMPTS) {
                panic!(
                    "pg_ctl start failed ({}): {}{}\n--- tail of {} ---\n{tail}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr),
                    log.display()
                );
            }
        }
    }

    /// Spawns the `sh` loop that, once this process has exited, stops the server and removes
    /// its directory. It runs as the current user (as root, `kill -0` on our own pid must not
    /// fail for lack of permission, and `rm -rf` must be able to remove what `postgres` made)
    /// and in its own process group, so that Ctrl-C on the tests does not kill it first.
    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let runuser = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {runuser}{pg_ctl} stop -m immediate -D {data} >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id(),
            pg_ctl = shell_quote(&pg_ctl),
            data = shell_quote(&self.data),
            root = shell_quote(&self.root),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn the PostgreSQL watchdog: {e}"));
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    }

    /// `initdb` or `pg_ctl` from the bin dir, run as `postgres` when we are root, in the
    /// server's directory and without the caller's `PG*` variables.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.current_dir(&self.root);
        clear_pg_env(&mut command);
        command
    }
}

impl Drop for TestPostgres {
    /// Stops the server at once (`-m immediate`) and removes its directory. Never runs for
    /// [`TestPostgres::shared`]; the watchdog covers that one.
    fn drop(&mut self) {
        let watchdog = self
            .watchdog
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut child) = watchdog {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.data.join("postmaster.pid").exists() {
            let mut pg_ctl = self.server_command("pg_ctl");
            pg_ctl
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(&self.data)
                .current_dir("/");
            let _ = pg_ctl.output();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, else the directory of
/// the `initdb` on `PATH` (symlinks resolved, so that `pg_ctl` and `postgres` sit beside it).
fn find_bin_dir() -> PathBuf {
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    find_on_path("initdb")
        .and_then(|initdb| std::fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb and no \
                 initdb on PATH; run `make postgres`"
            )
        })
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether the effective user is root, from `/proc/self/status` (else `id -u`).
fn running_as_root() -> bool {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved and filesystem uid.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    })
}

/// A new directory `pagehook-pg-<pid>-<counter>-<random>` under the temporary directory
/// (or `/tmp` when that path would make the socket path too long).
fn make_temp_dir() -> PathBuf {
    let mut parent = std::env::temp_dir();
    if parent.as_os_str().len() > MAX_SOCKET_DIR_LEN - 40 {
        parent = PathBuf::from("/tmp");
    }
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(
            "pagehook-pg-{}-{n}-{:08x}",
            std::process::id(),
            random() as u32
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

/// A port that was free on `127.0.0.1` a moment ago.
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"))
}

/// Random bits from std's per-instance hash keys.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.load(Ordering::Relaxed));
    hasher.finish()
}

/// Removes every `PG*` variable (`PGHOST`, `PGDATA`, `PGPASSWORD`, …) so that nothing points
/// the binaries at another server or cluster.
fn clear_pg_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null());
    command.output().unwrap_or_else(|e| {
        panic!("cannot run {:?}: {e}", command.get_program());
    })
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {} to {mode:o}: {e}", path.display()));
}

/// The last lines of the server log, or why it cannot be read.
fn log_tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}

/// `'…'` for `sh`, with `'` written as `'\''`.
fn shell_quote(path: &Path) -> String {
    let text = path.as_os_str().to_string_lossy();
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// An SQL string literal (`standard_conforming_strings` is on, so only `'` needs doubling).
fn literal(value: &str) -> String {
    assert!(!value.contains('\0'), "SQL text cannot contain NUL");
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn postgres_shared_server_gives_distinct_reachable_databases() {
        let pg = TestPostgres::shared();
        let a = pg.fresh_database();
        let b = pg.fresh_database();
        assert_ne!(a, b);
        assert_eq!(pg.psql(&a, "SELECT current_database()"), a);
        assert_eq!(pg.psql(&b, "SELECT current_user"), USER);
        pg.psql(&a, "CREATE TABLE t (id int PRIMARY KEY)");
        pg.psql(&a, "INSERT INTO t VALUES (1), (2)");
        assert_eq!(pg.psql(&a, "SELECT id FROM t ORDER BY id"), "1\n2");
        assert_eq!(
            pg.psql(&b, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"),
            "0"
        );
        assert_eq!(
            pg.url(&a),
            format!("postgres://pagehook@127.0.0.1:{}/{a}", pg.port())
        );
        assert!(!pg.url(&a).contains(pg.password()));
        assert_eq!(
            pg.psql(&a, "SHOW listen_addresses"),
            "127.0.0.1",
            "the server must listen on loopback only"
        );
        assert_eq!(pg.psql(&a, "SHOW fsync"), "on");
    }

    #[test]
    fn postgres_terminate_connections_counts_what_it_ended() {
        let pg = TestPostgres::shared();
        let db = pg.fresh_database();
        assert_eq!(pg.terminate_connections(&db, "pagehook"), 0);

        // A client that stays connected, named like Pagehook's connections.
        let mut client = Command::new(&pg.psql);
        client
            .args(["-X", "-q", "-h"])
            .arg(&pg.socket_dir)
            .args(["-p", &pg.port().to_string(), "-U", USER, "-d", &db])
            .args(["-c", "SELECT pg_sleep(60)"])
            .env("PGAPPNAME", "pagehook-test-client")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut client = clear_pg_env(&mut client).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let count_sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = {}",
            literal(&db)
        );
        while pg.psql("postgres", &count_sql) != "1" {
            assert!(Instant::now() < deadline, "the client never connected");
            std::thread::sleep(Duration::from_millis(50));
        }

        assert_eq!(pg.terminate_connections(&db, "other-app"), 0);
        assert_eq!(pg.terminate_connections(&db, "pagehook"), 1);
        let status = client.wait().unwrap();
        assert!(!status.success(), "the terminated client should fail");
    }

    #[test]
    fn postgres_private_server_stops_and_is_removed_on_drop() {
        let started = Instant::now();
        let pg = TestPostgres::start();
        let startup = started.elapsed();
        let root = pg.root.clone();
        let db = pg.fresh_database();
        assert_eq!(pg.psql(&db, "SELECT 1"), "1");
        assert_ne!(pg.port(), TestPostgres::shared().port());
        let port = pg.port();
        drop(pg);
        assert!(!root.exists(), "{} was not removed", root.display());
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server still accepts connections after drop"
        );
        eprintln!("private PostgreSQL started in {startup:?}");
    }

    #[test]
    fn postgres_literal_and_shell_quoting() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(shell_quote(Path::new("/tmp/a'b")), r"'/tmp/a'\''b'");
    }
}
