//! Installing Pagehook the ways an admin does: the release bundle of `make
//! dist` unpacked in a clean directory, and the Debian package installed,
//! run as its unit runs it, stopped mid-burst, upgraded and removed with
//! `dpkg`; the unit's system-call filter under real plugin calls, and why
//! `MemoryDenyWriteExecute=` is not in it.
//!
//! The tests marked `#[ignore]` need root, dpkg and Debian's python3-seccomp,
//! and change the machine (a package, a system user); `make package-test`
//! (packaging/package-test.sh) builds the `.deb` from the test build's
//! binary with cargo-deb and runs them with `PAGEHOOK_DEB` and
//! `PAGEHOOK_DEB_UPGRADE` naming the two packages.

use crate::common;
use crate::shutdown::{
    Served, assert_each_once, confluence, database_report, event_body, held_by, set_up, slack,
    wait_sent,
};

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::sidecar::{HOOK_SECRET, PAT};
use pagehook_fakes::postgres::TestPostgres;
use pagehook_fakes::{FakeSlack, Fault};

/// Runs a command; its output, whatever it was.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Runs a command that must succeed; its stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the fake Slack has `n` posts.
fn wait_posts(slack: &FakeSlack, n: usize) {
    slack.wait_for_posts(n, Duration::from_secs(30));
}

#[test]
fn the_release_bundle_runs_in_a_clean_directory_with_its_plugins_and_no_toolchain() {
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(common::root().join("packaging/dist.sh"))
        .arg(env!("CARGO_BIN_EXE_pagehook"))
        .arg(out.path())
        .arg("--no-sbom")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "dist.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let tarball = PathBuf::from(String::from_utf8(built.stdout).unwrap().trim());
    let name = tarball
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_suffix(".tar.gz")
        .unwrap()
        .to_owned();
    assert!(
        name.starts_with(&format!("pagehook-{}-", env!("CARGO_PKG_VERSION"))),
        "{name}"
    );
    // The sum file checks the tarball as sha256sum -c does.
    ok(
        "sh",
        &[
            "-c",
            &format!(
                "cd {} && sha256sum -c {name}.tar.gz.sha256",
                out.path().display()
            ),
        ],
    );

    let clean = tempfile::tempdir().unwrap();
    ok(
        "tar",
        &[
            "-xzf",
            tarball.to_str().unwrap(),
            "-C",
            clean.path().to_str().unwrap(),
        ],
    );
    let dir = clean.path().join(&name);
    for file in [
        "bin/pagehook",
        "pagehook.toml",
        "systemd/pagehook.service",
        "LICENSE",
        "licenses/index.tsv",
        "plugins/slack-poster/plugin.toml",
        "plugins/teams-poster/plugin.toml",
        "plugins/retro-writer/plugin.toml",
        "plugins/slack-poster/plugin.statement.minisig",
    ] {
        assert!(dir.join(file).is_file(), "{file} is in the bundle");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("keys/publisher.pub")).unwrap(),
        std::fs::read_to_string(common::root().join("keys/pagehook-dev.pub")).unwrap(),
        "the bundle carries the key its plugins are signed with"
    );
    let index = std::fs::read_to_string(dir.join("licenses/index.tsv")).unwrap();
    for linked in ["wasmtime\t", "tokio\t", "rusqlite\t", "pagehook\t"] {
        assert!(
            index.lines().any(|l| l.starts_with(linked)),
            "{linked} is listed"
        );
    }
    assert!(
        !index.lines().any(|l| l.starts_with("tempfile\t")),
        "dev-dependencies are not linked in"
    );

    // Run it as an admin would, from the bundle alone: no cargo, no rustc,
    // no repository, a home of its own.
    let home = tempfile::tempdir().unwrap();
    let bundle_cmd = |args: &[&str]| {
        let mut c = Command::new(dir.join("bin/pagehook"));
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("PAGEHOOK_TEST_PAT", PAT)
            .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
            .env("PAGEHOOK_LOG", "pagehook=warn")
            .current_dir(&dir)
            .arg("--config")
            .arg(dir.join("pagehook.toml"))
            .args(args);
        c
    };
    assert!(
        Command::new("sh")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .args(["-c", "command -v cargo || command -v rustc"])
            .status()
            .map(|s| !s.success())
            .unwrap(),
        "the bundle runs where no Rust toolchain is on PATH"
    );
    let version = bundle_cmd(&["--version"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
    let conf = confluence(1, 1);
    let fake_slack = slack(1);
    set_up(
        &|args| {
            let out = bundle_cmd(args).output().unwrap();
            assert!(
                out.status.success(),
                "pagehook {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
        &dir.join("plugins"),
        &conf,
        &fake_slack,
        1,
    );
    let mut serve = bundle_cmd(&["serve", "--listen", "127.0.0.1:0"]);
    serve.env("PAGEHOOK_CACHE_DIR", home.path().join("cache"));
    let mut served = Served::start(serve);
    assert_eq!(served.hook(&event_body(0, 0)), 202);
    wait_posts(&fake_slack, 1);
    assert!(
        dir.join("pagehook.db").is_file(),
        "the store is beside the config"
    );
    served.sigterm();
    assert!(served.wait(Duration::from_secs(20)).success());
}

/// The unit file the package installs.
const UNIT: &str = "/usr/lib/systemd/system/pagehook.service";
/// The config the package installs.
const CONFIG: &str = "/etc/pagehook/pagehook.toml";

/// Purges the package when dropped, so a failed test leaves the machine as
/// it found it.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "pagehook"]);
        // The test's own file there, which dpkg rightly leaves.
        let _ = std::fs::remove_file("/etc/pagehook/database-password");
        let _ = std::fs::remove_dir("/etc/pagehook");
    }
}

/// `pagehook` of the installed package run as its user with its config.
fn as_pagehook(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args([
        "-u",
        "pagehook",
        "--",
        "/usr/bin/pagehook",
        "--config",
        CONFIG,
    ])
    .args(args)
    .current_dir("/var/lib/pagehook")
    .env("PAGEHOOK_TEST_PAT", PAT)
    .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
    .env("PAGEHOOK_CACHE_DIR", "/var/cache/pagehook");
    c
}

/// `stat`'s owner, group and mode of `path`.
fn owner_and_mode(path: &str) -> String {
    ok("stat", &["-c", "%U:%G %a", path]).trim().to_owned()
}

/// A copy of packaging/seccomp-exec.py the pagehook user can run.
fn seccomp_exec(dir: &Path) -> PathBuf {
    let script = dir.join("seccomp-exec.py");
    std::fs::copy(common::root().join("packaging/seccomp-exec.py"), &script).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
#[ignore = "runs the unit's system-call filter (Debian's python3-seccomp): make package-test"]
fn plugin_calls_survive_the_units_system_call_filter_but_not_memory_deny_write_execute() {
    let dir = tempfile::tempdir().unwrap();
    let script = seccomp_exec(dir.path());
    let unit = common::root().join("packaging/pagehook.service");
    let plugin_run = |mdwe: bool| {
        let mut c = Command::new(&script);
        if mdwe {
            c.arg("--mdwe");
        }
        c.arg(&unit)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_pagehook"))
            .args(["plugin", "run"])
            .arg(common::plugin_dir("slack-poster"))
            .arg("--event")
            .arg(common::event_path("page_created.json"))
            .args(["--set", "channel=#eng", "--no-cache"])
            .output()
            .unwrap()
    };
    // The filter is real: a call outside it is refused.
    let chroot = Command::new(&script)
        .arg(&unit)
        .args(["--", "chroot", "/", "true"])
        .output()
        .unwrap();
    assert!(
        !chroot.status.success()
            && String::from_utf8_lossy(&chroot.stderr).contains("Operation not permitted"),
        "chroot(2) is outside @system-service: {chroot:?}"
    );

    let filtered = plugin_run(false);
    assert!(
        filtered.status.success(),
        "compiling and calling a plugin within the unit's SystemCallFilter=: {}",
        String::from_utf8_lossy(&filtered.stderr)
    );
    let actions: serde_json::Value = serde_json::from_slice(&filtered.stdout).unwrap();
    assert_eq!(actions[0]["type"], "post-slack", "{actions}");
    assert_eq!(actions[0]["channel"], "#eng", "{actions}");

    let mdwe = plugin_run(true);
    let stderr = String::from_utf8_lossy(&mdwe.stderr);
    assert!(
        !mdwe.status.success() && stderr.contains("make memory executable"),
        "MemoryDenyWriteExecute= stops wasmtime from making its compiled code executable: {stderr}"
    );
}

#[test]
#[ignore = "root: installs, runs, upgrades and removes the .deb with dpkg: make package-test"]
fn the_debian_package_installs_serves_stops_mid_burst_upgrades_and_removes() {
    let deb = std::env::var("PAGEHOOK_DEB").expect("PAGEHOOK_DEB names the package to install");
    let upgrade = std::env::var("PAGEHOOK_DEB_UPGRADE")
        .expect("PAGEHOOK_DEB_UPGRADE names a later build of it");
    assert_eq!(ok("id", &["-u"]).trim(), "0", "dpkg needs root");
    let _purge = Purge;
    let _ = run("dpkg", &["--purge", "pagehook"]);

    // Installed: the user, the directories, the conffile, the plugins, the unit.
    ok("dpkg", &["-i", &deb]);
    let user = ok("getent", &["passwd", "pagehook"]);
    assert!(
        user.contains(":/var/lib/pagehook:") && user.trim().ends_with("nologin"),
        "a system user without a login: {user}"
    );
    assert_eq!(owner_and_mode("/var/lib/pagehook"), "pagehook:pagehook 750");
    assert_eq!(
        owner_and_mode("/var/cache/pagehook"),
        "pagehook:pagehook 750"
    );
    assert_eq!(owner_and_mode(CONFIG), "root:pagehook 640");
    assert_eq!(
        owner_and_mode("/etc/pagehook/admin-token"),
        "root:pagehook 640"
    );
    assert!(
        ok("dpkg-query", &["-W", "-f=${Conffiles}", "pagehook"]).contains(CONFIG),
        "the config is a conffile"
    );
    for p in ["slack-poster", "teams-poster", "retro-writer"] {
        assert!(Path::new(&format!("/usr/share/pagehook/plugins/{p}/plugin.toml")).is_file());
        assert!(
            Path::new(&format!(
                "/usr/share/pagehook/plugins/{p}/plugin.statement.minisig"
            ))
            .is_file(),
            "{p} is installed signed"
        );
    }
    assert_eq!(
        std::fs::read_to_string("/usr/share/pagehook/keys/publisher.pub").unwrap(),
        std::fs::read_to_string(common::root().join("keys/pagehook-dev.pub")).unwrap(),
        "the package installs the key its plugins are signed with"
    );
    let verify = run("systemd-analyze", &["verify", UNIT]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = ok(
        "systemd-analyze",
        &["security", "--offline=yes", "--no-pager", UNIT],
    );
    let exposure: f64 = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for pagehook.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    assert!(
        exposure <= 2.0,
        "exposure {exposure} (OK is below 2.0)\n{security}"
    );

    // Configured as an admin would: PostgreSQL, a quick delivery schedule,
    // a fixed port.
    let pg = TestPostgres::shared();
    let db = pg.fresh_database();
    std::fs::write("/etc/pagehook/database-password", pg.password()).unwrap();
    ok(
        "chown",
        &["root:pagehook", "/etc/pagehook/database-password"],
    );
    ok("chmod", &["0640", "/etc/pagehook/database-password"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let packaged = std::fs::read_to_string(CONFIG).unwrap();
    let configured = packaged
        .replace(
            "listen = \"127.0.0.1:8180\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            "database = \"/var/lib/pagehook/pagehook.db\"",
            &format!(
                "database = \"{}\"\npassword = {{ file = \"/etc/pagehook/database-password\" }}",
                pg.url(&db)
            ),
        )
        + "\n# added by the admin\n[delivery]\nretry-schedule-ms = [100, 200]\nretry-every-ms = 300\n\
           timeout-ms = 5000\nslack-channel-rate = 50.0\nslack-workspace-rate = 200.0\njitter = 0.0\n";
    assert_ne!(packaged, configured);
    std::fs::write(CONFIG, &configured).unwrap();

    const CHANNELS: usize = 4;
    const PER_CHANNEL: usize = 10;
    let conf = confluence(CHANNELS, PER_CHANNEL);
    let fake_slack = slack(CHANNELS);
    set_up(
        &|args| {
            let out = as_pagehook(args).output().unwrap();
            assert!(
                out.status.success(),
                "pagehook {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
        Path::new("/usr/share/pagehook/plugins"),
        &conf,
        &fake_slack,
        CHANNELS,
    );

    // Replica A as the unit runs it: user pagehook, the unit's system-call
    // filter, systemd's notify socket. Replica B: the same binary with a
    // copy of the config on another port.
    let scratch = tempfile::tempdir().unwrap();
    let script = seccomp_exec(scratch.path());
    let notify_path = scratch.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // setpriv execs (runuser would stay as the parent and SIGKILL the
    // server 2 s after passing SIGTERM on, as su does).
    let mut a_command = Command::new("setpriv");
    a_command
        .args([
            "--reuid=pagehook",
            "--regid=pagehook",
            "--init-groups",
            "--",
        ])
        .arg(&script)
        .args([UNIT, "--", "/usr/bin/pagehook", "--config", CONFIG, "serve"])
        .current_dir("/var/lib/pagehook")
        .env("PAGEHOOK_TEST_PAT", PAT)
        .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
        .env("PAGEHOOK_CACHE_DIR", "/var/cache/pagehook")
        .env("PAGEHOOK_LOG", "pagehook=info")
        .env("NOTIFY_SOCKET", &notify_path);
    let mut a = Served::start(a_command);
    assert_eq!(a.base, format!("http://127.0.0.1:{port}"));
    let b_config = scratch.path().join("pagehook.toml");
    std::fs::copy(CONFIG, &b_config).unwrap();
    let mut b_command = Command::new("/usr/bin/pagehook");
    b_command
        .arg("--config")
        .arg(&b_config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PAGEHOOK_TEST_PAT", PAT)
        .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
        .env("PAGEHOOK_CACHE_DIR", scratch.path().join("cache"))
        .env("PAGEHOOK_LOG", "pagehook=warn");
    let mut b = Served::start(b_command);
    let notifications = std::sync::Mutex::new(Vec::<String>::new());
    let read_notifications = || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = notify.recv(&mut buf) {
            notifications.lock().unwrap().extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            );
        }
    };
    read_notifications();
    assert!(
        notifications.lock().unwrap().iter().any(|l| l == "READY=1"),
        "{:?}",
        notifications.lock().unwrap()
    );

    // Slack answers slowly, so A is in the middle of sends when SIGTERM
    // comes; the webhooks go to A while it listens, then to B (Confluence's
    // load balancer moves on from a replica that refuses connections).
    for _ in 0..20 {
        fake_slack.inject("chat.postMessage", Fault::Delay(Duration::from_millis(150)));
    }
    let accepted = AtomicUsize::new(0);
    let a_stopped = AtomicBool::new(false);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let (a_base, b_base) = (a.base.clone(), b.base.clone());
    let send = |body: Vec<u8>| {
        let signature = common::sidecar::sign(HOOK_SECRET, &body);
        for base in [&a_base, &b_base, &b_base] {
            let answer = client
                .post(format!("{base}/hooks/confluence/prod"))
                .header("content-type", "application/json")
                .header("X-Hub-Signature", &signature)
                .body(body.clone())
                .send();
            if let Ok(answer) = answer
                && answer.status().as_u16() == 202
            {
                accepted.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        panic!("no replica accepted a webhook");
    };
    let mut stopped_at = None;
    let a_pid = a.pid();
    std::thread::scope(|s| {
        for c in 0..CHANNELS {
            let send = &send;
            s.spawn(move || {
                for n in 0..PER_CHANNEL {
                    send(event_body(c, n));
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        while accepted.load(Ordering::SeqCst) < CHANNELS * PER_CHANNEL / 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        a.sigterm();
        let status = a.wait(Duration::from_secs(30));
        stopped_at = Some(Instant::now());
        a_stopped.store(true, Ordering::SeqCst);
        assert!(status.success(), "A stops cleanly on SIGTERM: {status:?}");
    });
    let stopped_at = stopped_at.unwrap();
    assert!(a_stopped.load(Ordering::SeqCst));
    assert_eq!(
        held_by(pg, &db, a_pid),
        0,
        "A let go of everything it held\n{}",
        database_report(pg, &db)
    );
    read_notifications();
    {
        let seen = notifications.lock().unwrap();
        let stopping = seen.iter().position(|l| l == "STOPPING=1");
        assert!(stopping.is_some(), "{seen:?}");
        assert!(
            seen.last().map(String::as_str) == Some("STATUS=stopped"),
            "{seen:?}"
        );
    }

    let events = (CHANNELS * PER_CHANNEL) as i64;
    assert_eq!(accepted.load(Ordering::SeqCst) as i64, events);
    let done = wait_sent(pg, &db, events, Duration::from_secs(60));
    assert!(
        done.duration_since(stopped_at) < Duration::from_secs(15),
        "B finished {:?} after A stopped; the lease is 30 s",
        done.duration_since(stopped_at)
    );
    assert_each_once(&fake_slack.posts(), events as usize, || {
        database_report(pg, &db)
    });
    b.sigterm();
    assert!(b.wait(Duration::from_secs(30)).success());

    // Upgraded: the admin's config is kept, the installed plugins too.
    ok("dpkg", &["-i", &upgrade]);
    assert_eq!(
        ok("dpkg-query", &["-W", "-f=${Version}", "pagehook"]),
        format!("{}-2", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        std::fs::read_to_string(CONFIG).unwrap(),
        configured,
        "dpkg keeps the admin's conffile on upgrade"
    );
    assert!(Path::new("/var/lib/pagehook/plugins").is_dir());
    let bindings = as_pagehook(&["bindings", "--json"]).output().unwrap();
    let bindings: serde_json::Value = serde_json::from_slice(&bindings.stdout).unwrap();
    assert_eq!(bindings.as_array().map(Vec::len), Some(CHANNELS));

    // Removed: the program goes, the conffile stays; purged: everything goes.
    ok("dpkg", &["--remove", "pagehook"]);
    assert!(!Path::new("/usr/bin/pagehook").exists());
    assert!(Path::new(CONFIG).exists(), "remove keeps conffiles");
    ok("dpkg", &["--purge", "pagehook"]);
    assert!(!Path::new(CONFIG).exists());
    assert!(!Path::new("/var/lib/pagehook").exists());
    assert!(!run("getent", &["passwd", "pagehook"]).status.success());
}
