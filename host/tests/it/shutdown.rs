//! Stopping and starting as a supervisor sees it: systemd's notify protocol
//! (READY=1 only once the store is open and the listener bound, STATUS=,
//! WATCHDOG=1, STOPPING=1), `/readyz` beside `/healthz`, and SIGTERM on a
//! replica whose send does not finish within `[server] shutdown-grace-ms`:
//! it stops within the grace, lets go of its claim and lane lease, and
//! another replica on the same PostgreSQL takes the lane within a second,
//! looking for the message before sending it again.
//!
//! [`Served`] and the helpers here are shared with `packaging`, which runs
//! the same flows on the installed Debian package.

use crate::api_support::{App, Auth};
use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::confluence::ADA;
use common::sidecar::{HOOK_SECRET, PAT, Sidecar, sign};
use pagehook_fakes::postgres::TestPostgres;
use pagehook_fakes::{ContentBuilder, FakeConfluence, FakeSlack, Fault, SlackPost};

pub(crate) const BOT: &str = "xoxb-shutdown-tests";
/// Channel `c` gets the events of pages `FIRST_PAGE + 1000 c + n`, in
/// space `S<c>`.
pub(crate) const FIRST_PAGE: u64 = 5_000_001;

/// A `pagehook serve` started from a command line of the test's choosing
/// (the test build, or the installed package run as its user).
pub(crate) struct Served {
    child: Option<Child>,
    pub base: String,
}

impl Served {
    /// Starts `command` (a `serve` with `--listen 127.0.0.1:0`) and waits
    /// for the line naming its address.
    pub fn start(mut command: Command) -> Served {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("pagehook listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Served {
            child: Some(child),
            base,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM now; [`Served::wait`] then waits for the exit.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; fails the test after `within`.
    pub fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// POSTs a Confluence webhook signed with the test secret; the status.
    pub fn hook(&self, body: &[u8]) -> u16 {
        reqwest::blocking::Client::new()
            .post(format!("{}/hooks/confluence/prod", self.base))
            .header("content-type", "application/json")
            .header("X-Hub-Signature", sign(HOOK_SECRET, body))
            .body(body.to_vec())
            .send()
            .map(|a| a.status().as_u16())
            .unwrap_or(0)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Page `n` of channel `c`.
pub(crate) fn page(c: usize, n: usize) -> u64 {
    FIRST_PAGE + 1000 * c as u64 + n as u64
}

/// A fake Confluence with `pages` pages per channel, channel `c`'s in space
/// `S<c>`, by Ada.
pub(crate) fn confluence(channels: usize, pages: usize) -> FakeConfluence {
    common::confluence::with_ada((0..channels).flat_map(|c| {
        (0..pages).map(move |n| {
            ContentBuilder::page(page(c, n), &format!("S{c}"), &format!("Runbook {c}.{n}"))
        })
    }))
}

/// A fake Slack with channels `#sd-<c>`.
pub(crate) fn slack(channels: usize) -> FakeSlack {
    let slack = FakeSlack::start(BOT);
    for c in 0..channels {
        slack.add_channel(&format!("sd-{c}"), &format!("C0SD{c:05}"), true);
    }
    slack
}

/// The CLI commands that set a store up: Confluence `prod`, Slack `acme`,
/// slack-poster installed from `plugins` and bound quietly, space `S<c>` to
/// `#sd-<c>`. Each is given to `run` as its arguments.
pub(crate) fn set_up(
    run: &dyn Fn(&[&str]),
    plugins: &Path,
    conf: &FakeConfluence,
    slack: &FakeSlack,
    channels: usize,
) {
    run(&[
        "connect",
        "confluence",
        "prod",
        "--url",
        &conf.base_url(),
        "--token-env",
        "PAGEHOOK_TEST_PAT",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    run(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        BOT,
    ]);
    let poster = plugins.join("slack-poster");
    run(&[
        "plugin",
        "install",
        poster.to_str().unwrap(),
        "--grant",
        "post-slack",
        "--grant",
        "dm-slack",
    ]);
    for c in 0..channels {
        let scope = format!("space:S{c}");
        let to = format!("slack:#sd-{c}");
        let set = format!("channel=#sd-{c}");
        run(&[
            "bind",
            "slack-poster",
            "--quiet",
            "--scope",
            &scope,
            "--to",
            &to,
            "--set",
            &set,
            "--set",
            "events=page-created, page-updated",
        ]);
    }
}

/// The `n`-th event of channel `c`: its page `n` is created. (Each event
/// is of a page of its own and a space gets fewer than 20 of them, so the
/// bundled slack-poster posts each on its own rather than as a digest.)
pub(crate) fn event_body(c: usize, n: usize) -> Vec<u8> {
    page_event(c, n, "page_created", 0)
}

/// A webhook of `name` about page `n` of channel `c`, at `at` ms after a
/// fixed time.
pub(crate) fn page_event(c: usize, n: usize, name: &str, at: u64) -> Vec<u8> {
    let page = page(c, n);
    let ts = 1_700_000_000_000u64 + at;
    format!(r#"{{"timestamp":{ts},"event":"{name}","userKey":"{ADA}","page":{{"id":{page}}},"updateTrigger":"edit_page"}}"#)
        .into_bytes()
}

/// The event id a post carries in its metadata.
pub(crate) fn post_event_id(post: &SlackPost) -> i64 {
    post.metadata
        .as_ref()
        .and_then(|m| m["event_payload"]["event_id"].as_i64())
        .unwrap_or_else(|| panic!("a post without its event id: {post:?}"))
}

/// Each of `events` is in Slack exactly once.
pub(crate) fn assert_each_once(posts: &[SlackPost], events: usize, report: impl Fn() -> String) {
    let mut ids: Vec<i64> = posts.iter().map(post_event_id).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert!(
        n == events && ids.len() == events,
        "{n} posts of {} distinct events, {events} accepted\n{}",
        ids.len(),
        report()
    );
}

/// One number from `psql`.
pub(crate) fn count(pg: &TestPostgres, db: &str, sql: &str) -> i64 {
    let out = pg.psql(db, sql);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: unexpected psql output {out:?}: {e}"))
}

/// Rows still claimed or leased by the replica whose process id is `pid`.
pub(crate) fn held_by(pg: &TestPostgres, db: &str, pid: u32) -> i64 {
    count(
        pg,
        db,
        &format!(
            "SELECT (SELECT count(*) FROM lane_leases WHERE replica LIKE '%:{pid}:%') \
             + (SELECT count(*) FROM deliveries WHERE claim_token IS NOT NULL AND claimed_by LIKE '%:{pid}:%') \
             + (SELECT count(*) FROM events WHERE claim_token IS NOT NULL AND claimed_by LIKE '%:{pid}:%')"
        ),
    )
}

/// What the database holds, for failure messages.
pub(crate) fn database_report(pg: &TestPostgres, db: &str) -> String {
    [
        "SELECT status, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT id, event_id, lane, status, attempts, uncertain, claimed_by, last_error FROM deliveries ORDER BY id",
        "SELECT lane, replica, until_ms FROM lane_leases",
        "SELECT delivery_id, outcome, error FROM attempts ORDER BY id",
    ]
    .iter()
    .map(|q| format!("-- {q}\n{}\n", pg.psql(db, q)))
    .collect()
}

/// Waits until `n` deliveries are sent and nothing is left to send.
pub(crate) fn wait_sent(pg: &TestPostgres, db: &str, n: i64, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let sent = count(
            pg,
            db,
            "SELECT count(*) FROM deliveries WHERE status = 'sent'",
        );
        let open = count(
            pg,
            db,
            "SELECT (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')) \
             + (SELECT count(*) FROM events WHERE status = 'pending')",
        );
        if sent >= n && open == 0 {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {n} sent, {open} open after {within:?}\n{}",
            database_report(pg, db)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn readyz_is_ready_until_the_server_begins_to_stop_while_healthz_stays_alive() {
    let app = App::new();
    let ready = app.call("GET", "/readyz", None, &Auth::None).await;
    assert_eq!(ready.status.as_u16(), 200, "{}", ready.json);
    assert_eq!(ready.json["status"], "ready");

    app.state.lifecycle.stopping("stopping for the test");
    let stopping = app.call("GET", "/readyz", None, &Auth::None).await;
    assert_eq!(stopping.status.as_u16(), 503, "{}", stopping.json);
    assert_eq!(stopping.json["status"], "stopping");
    let alive = app.call("GET", "/healthz", None, &Auth::None).await;
    assert_eq!(
        alive.status.as_u16(),
        200,
        "a stopping server is still alive: {}",
        alive.json
    );
}

/// The next notification on `socket`, as its lines.
fn next_notification(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification within {within:?}: {e}"));
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Notifications until one has `line`; all of them, in order.
fn notifications_until(socket: &UnixDatagram, line: &str, within: Duration) -> Vec<Vec<String>> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {line} within {within:?}; got {seen:?}");
        let n = next_notification(socket, left);
        let done = n.iter().any(|l| l == line);
        seen.push(n);
        if done {
            return seen;
        }
    }
}

#[test]
fn serve_tells_systemd_ready_once_bound_its_status_watchdog_and_stopping() {
    let side = Sidecar::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_pagehook"));
    command
        .arg("--config")
        .arg(side.config())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PAGEHOOK_LOG", "pagehook=warn")
        .env("NOTIFY_SOCKET", &path)
        // systemd's WatchdogSec=200ms: a ping at least every 100 ms.
        .env("WATCHDOG_USEC", "200000");
    let mut served = Served::start(command);

    let before = notifications_until(&socket, "READY=1", Duration::from_secs(30));
    let statuses: Vec<&String> = before
        .iter()
        .flatten()
        .filter(|l| l.starts_with("STATUS="))
        .collect();
    assert!(
        statuses.iter().any(|s| s.contains("opening the store")),
        "a status while the store opens: {before:?}"
    );
    let ready = before.last().unwrap();
    assert!(
        ready
            .iter()
            .any(|l| l.starts_with("STATUS=serving on ") && l.contains(&served.base)),
        "READY=1 comes with the address: {ready:?}"
    );
    // READY=1 came after the bind: the listener answers at once.
    let readyz = reqwest::blocking::get(format!("{}/readyz", served.base)).unwrap();
    assert_eq!(readyz.status().as_u16(), 200);

    let pings = notifications_until(&socket, "WATCHDOG=1", Duration::from_secs(2));
    let started = Instant::now();
    notifications_until(&socket, "WATCHDOG=1", Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "watchdog pings every half of WATCHDOG_USEC; the second came after {:?} ({pings:?})",
        started.elapsed()
    );

    served.sigterm();
    let stopping = notifications_until(&socket, "STOPPING=1", Duration::from_secs(5));
    assert!(
        stopping
            .last()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("STATUS=stopping")),
        "{stopping:?}"
    );
    let status = served.wait(Duration::from_secs(10));
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    let after = notifications_until(&socket, "STATUS=stopped", Duration::from_secs(1));
    assert!(!after.iter().flatten().any(|l| l == "READY=1"), "{after:?}");
}

#[test]
fn sigterm_past_the_grace_hands_an_unfinished_send_to_another_replica_at_once() {
    let pg = TestPostgres::shared();
    let db = pg.fresh_database();
    let conf = confluence(1, 1);
    let slack = slack(1);
    // A lease far longer than the test: the lane may only change hands
    // because the stopping replica lets go of it.
    let admin = Sidecar::on_postgres(
        &pg.url(&db),
        pg.password(),
        "lease-ms = 60000\n",
        "retry-schedule-ms = [100]\nretry-every-ms = 200\ngive-up-after-ms = 600000\n\
         timeout-ms = 30000\nslack-channel-rate = 100.0\nslack-workspace-rate = 400.0\njitter = 0.0\n",
    );
    set_up(
        &|args| {
            admin.cli(args);
        },
        &common::root().join("target/plugins"),
        &conf,
        &slack,
        1,
    );
    // Both replicas give a stop 300 ms.
    let config = std::fs::read_to_string(admin.config()).unwrap().replacen(
        "[server]\n",
        "[server]\nshutdown-grace-ms = 300\n",
        1,
    );
    std::fs::write(admin.config(), config).unwrap();
    let (a_side, b_side) = (admin.replica(), admin.replica());
    let serve = |side: &Sidecar| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pagehook"));
        command
            .arg("--config")
            .arg(side.config())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PAGEHOOK_TEST_PAT", PAT)
            .env("PAGEHOOK_TEST_HOOK_SECRET", HOOK_SECRET)
            .env("PAGEHOOK_LOG", "pagehook=info");
        Served::start(command)
    };

    // Replica A takes the page's creation; Slack takes its post at once and
    // holds the answer back for 20 s.
    slack.inject("chat.postMessage", Fault::Delay(Duration::from_secs(20)));
    let mut a = serve(&a_side);
    assert_eq!(a.hook(&page_event(0, 0, "page_created", 0)), 202);
    slack.wait_for_posts(1, Duration::from_secs(20));
    // Its update: a reply in the page's thread, the lane A holds.
    assert_eq!(a.hook(&page_event(0, 0, "page_updated", 1)), 202);
    let b = serve(&b_side);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        slack.posts().len(),
        1,
        "B waits for the lane A holds\n{}",
        database_report(pg, &db)
    );
    assert!(held_by(pg, &db, a.pid()) > 0);

    let a_pid = a.pid();
    let asked = Instant::now();
    a.sigterm();
    let status = a.wait(Duration::from_secs(10));
    let stopped = Instant::now();
    assert!(status.success(), "{status:?}");
    assert!(
        stopped - asked < Duration::from_secs(3),
        "A stopped {:?} after SIGTERM although its send hangs for 20 s: the grace bounds it",
        stopped - asked
    );
    assert_eq!(
        held_by(pg, &db, a_pid),
        0,
        "A let go of its claims and lane leases\n{}",
        database_report(pg, &db)
    );

    // B takes the delivery A let go of at once, not a lease later.
    let first_sent = "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id \
                      WHERE d.status = 'sent' AND e.id = (SELECT min(id) FROM events)";
    while count(pg, &db, first_sent) == 0 {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "{}",
            database_report(pg, &db)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let taken_over = stopped.elapsed();
    assert!(
        taken_over < Duration::from_secs(1),
        "B recorded the send A had left {taken_over:?} after A stopped (the lease is 60 s)\n{}",
        database_report(pg, &db)
    );
    wait_sent(pg, &db, 2, Duration::from_secs(15));
    let posts = slack.posts();
    assert_each_once(&posts, 2, || database_report(pg, &db));
    assert!(
        slack.calls("conversations.history") + slack.calls("conversations.replies") > 0,
        "B looked for the message A may have sent before sending anything again"
    );
    drop(b);
}
