//! The container image: built from the repository's Dockerfile with Debian's
//! podman and run as Kubernetes would run it: a read-only root file system,
//! the state and cache as volumes, its own non-root user. It has no shell;
//! it serves `/healthz` and `/readyz`; the CLI works inside it (installing
//! the bundled plugin, taking a backup); what it writes belongs to 65532;
//! SIGTERM stops it cleanly.
//!
//! What differs from `make image`, and why: this machine reaches no image
//! registry, so the two base images cannot be pulled.
//! - The build stage (rust:1.95 compiling for minutes) is replaced with
//!   `--build-context build=DIR`: DIR is laid out by the same
//!   `deploy/container/stage.sh` from the test build's binary and
//!   `make plugins`' output. The Dockerfile's runtime stage is built as is.
//! - The runtime base (distroless cc-debian12) is replaced with
//!   `--build-arg RUNTIME_IMAGE=` an image made here from the files of the
//!   same Debian 12 packages distroless takes (libc6, libgcc-s1, the CA
//!   bundle) and its passwd entry for `nonroot` (65532), and nothing else:
//!   no shell, like distroless.
//!
//! podman runs with its own storage in a temporary directory (vfs: no
//! overlay mounts needed), builds with `--isolation chroot`, and runs with
//! runc (crun refuses this machine's hybrid cgroups), cgroupfs, the file
//! events backend, and ulimits no higher than the test's own (the sandbox
//! cannot raise them). The container shares the host's network namespace
//! and listens on 127.0.0.1 only. `make container-engine` installs podman
//! and runc from Debian.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::sidecar::ADMIN_TOKEN;

const IMAGE: &str = "localhost/pagehook:test";
const BASE: &str = "localhost/pagehook-test-runtime:debian12";

/// podman with storage of its own under `dir`.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        for tool in ["podman", "runc"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success();
            assert!(
                found,
                "{tool} is missing: make container-engine (Debian's podman and runc)"
            );
        }
        Podman {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "runc",
            ])
            .env("TMPDIR", self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Podman {
    /// Whatever happened, the container this storage ran stops and goes
    /// (only this storage's: `--root` is the temporary directory).
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--force", "--all"]);
        let _ = self.run(&["volume", "rm", "--force", "--all"]);
    }
}

/// Limits the container may have: no higher than this process's.
fn ulimits() -> Vec<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft = |name: &str| -> u64 {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024)
    };
    let files = soft("Max open files").min(65536);
    let procs = soft("Max processes").min(4096);
    vec![
        "--ulimit".into(),
        format!("nofile={files}:{files}"),
        "--ulimit".into(),
        format!("nproc={procs}:{procs}"),
    ]
}

/// A root file system of Debian 12's libc6, libgcc-s1 and CA bundle with
/// distroless' users, as a tar for `podman import`.
fn runtime_base(dir: &Path) -> PathBuf {
    let root = dir.join("base");
    std::fs::create_dir_all(&root).unwrap();
    let listed = Command::new("dpkg")
        .args(["-L", "libc6", "libgcc-s1"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "dpkg -L: Debian's libc6 and libgcc-s1"
    );
    let mut files: Vec<PathBuf> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .filter(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()) && !p.starts_with("/usr/share")
        })
        .collect();
    files.push("/etc/ssl/certs/ca-certificates.crt".into());
    // Each file where it really is (Debian 12 merged /usr: /lib is usr/lib),
    // symlinks as symlinks.
    for file in files {
        let parent = std::fs::canonicalize(file.parent().unwrap()).unwrap();
        let dest = root
            .join(parent.strip_prefix("/").unwrap())
            .join(file.file_name().unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&file).unwrap();
            let _ = std::os::unix::fs::symlink(target, &dest);
        } else {
            let content = std::fs::read(std::fs::canonicalize(&file).unwrap()).unwrap();
            std::fs::write(&dest, content).unwrap();
            std::fs::set_permissions(&dest, meta.permissions()).unwrap();
        }
    }
    for link in ["lib", "lib64", "bin", "sbin"] {
        let host = Path::new("/").join(link);
        let here = root.join(link);
        if std::fs::symlink_metadata(&here).is_err()
            && std::fs::symlink_metadata(&host).is_ok_and(|m| m.file_type().is_symlink())
        {
            let target = std::fs::read_link(&host).unwrap();
            std::os::unix::fs::symlink(target, here).unwrap();
        }
    }
    let etc = root.join("etc");
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
    )
    .unwrap();
    for d in ["tmp", "home/nonroot", "var/lib", "var/cache", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let tar = dir.join("base.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tar
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(url: &str) -> Option<u16> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(url)
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

#[test]
fn the_image_builds_and_serves_read_only_as_nonroot_without_a_shell() {
    let root = common::root();
    assert!(
        root.join("target/plugins/slack-poster/plugin.toml")
            .exists(),
        "make plugins first"
    );
    let podman = Podman::new();
    let work = podman.dir.path().to_path_buf();
    let started = Instant::now();

    // The runtime base, and the build stage's output laid out by stage.sh.
    let base = runtime_base(&work);
    podman.ok(&["import", base.to_str().unwrap(), BASE]);
    let staged = work.join("build");
    let out = Command::new(root.join("deploy/container/stage.sh"))
        .arg(staged.join("out"))
        .arg(env!("CARGO_BIN_EXE_pagehook"))
        .arg(root.join("target/plugins"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    podman.ok(&[
        "build",
        "--isolation",
        "chroot",
        "--layers=false",
        "--build-context",
        &format!("build={}", staged.display()),
        "--build-arg",
        &format!("RUNTIME_IMAGE={BASE}"),
        "-f",
        root.join("Dockerfile").to_str().unwrap(),
        "-t",
        IMAGE,
        root.to_str().unwrap(),
    ]);
    let built = started.elapsed();

    // What the image says about itself.
    let config: serde_json::Value =
        serde_json::from_str(&podman.ok(&["image", "inspect", IMAGE])).unwrap();
    let config = &config[0]["Config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/bin/pagehook"])
    );
    let volumes: Vec<&String> = config["Volumes"].as_object().unwrap().keys().collect();
    assert_eq!(volumes, ["/var/cache/pagehook", "/var/lib/pagehook"]);

    let limits = ulimits();
    let limits: Vec<&str> = limits.iter().map(String::as_str).collect();

    // No shell to run anything else with.
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(&limits);
    args.extend(["--entrypoint", "/bin/sh", IMAGE, "-c", "true"]);
    let shell = podman.run(&args);
    assert!(!shell.status.success(), "the image has a shell");

    // Serve, read-only, with the volumes and the admin token as a secret file.
    let token = work.join("admin-token");
    std::fs::write(&token, ADMIN_TOKEN).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mount = format!("{}:/run/secrets/pagehook/admin-token:ro", token.display());
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "pagehook-test",
        "--read-only",
        "--network",
        "host",
        "-v",
        "pagehook-state:/var/lib/pagehook",
        "-v",
        "pagehook-cache:/var/cache/pagehook",
        "-v",
        &mount,
    ];
    args.extend(&limits);
    args.extend([IMAGE, "serve", "--listen", &listen]);
    podman.ok(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&format!("http://{listen}/readyz")) != Some(200) {
        if Instant::now() > deadline {
            let logs = podman.run(&["logs", "pagehook-test"]);
            panic!(
                "the container never became ready:\n{}",
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&format!("http://{listen}/healthz")), Some(200));
    let api = reqwest::blocking::Client::new()
        .get(format!("http://{listen}/api/plugins"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(api.status().as_u16(), 200, "the token from the secret file");

    // The CLI inside it: install the bundled plugin, back the store up.
    let installed = podman.ok(&[
        "exec",
        "pagehook-test",
        "pagehook",
        "plugin",
        "install",
        "/usr/share/pagehook/plugins/slack-poster",
        "--grant",
        "post-slack",
    ]);
    assert!(installed.contains("slack-poster"), "{installed}");
    let backup = podman.ok(&[
        "exec",
        "pagehook-test",
        "pagehook",
        "store",
        "backup",
        "/var/lib/pagehook/backup.db",
    ]);
    assert!(backup.contains("integrity ok"), "{backup}");
    // Nothing else is writable.
    let refused = podman.run(&[
        "exec",
        "pagehook-test",
        "pagehook",
        "store",
        "backup",
        "/etc/pagehook/backup.db",
    ]);
    assert!(
        !refused.status.success(),
        "the root file system is read-only"
    );

    // What it wrote belongs to its user.
    let state = PathBuf::from(podman.ok(&[
        "volume",
        "inspect",
        "pagehook-state",
        "--format",
        "{{.Mountpoint}}",
    ]));
    use std::os::unix::fs::MetadataExt;
    for file in ["pagehook.db", "backup.db", "plugins"] {
        let meta = std::fs::metadata(state.join(file)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65532, 65532), "{file}");
    }

    // SIGTERM: a clean stop well within the grace.
    let stopping = Instant::now();
    podman.ok(&["stop", "--time", "30", "pagehook-test"]);
    assert!(stopping.elapsed() < Duration::from_secs(25));
    assert_eq!(
        podman.ok(&[
            "inspect",
            "pagehook-test",
            "--format",
            "{{.State.ExitCode}}"
        ]),
        "0"
    );
    podman.ok(&["rm", "pagehook-test"]);
    eprintln!(
        "container_image: built in {:.1} s, all in {:.1} s",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
