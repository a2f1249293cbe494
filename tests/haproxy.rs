//! The scale-out run with real HAProxy: `examples/haproxy/run.sh` puts
//! HAProxy (TCP mode, `send-proxy-v2`, health checks with PROXY `LOCAL`) in
//! front of two `sc-server` instances and checks that sessions spread over
//! both, that the servers log the clients' own addresses, and that stopping
//! one server (SIGTERM) mid-run fails no session: the one open on it
//! finishes there, the new ones go to the other server. This test runs that
//! script on the binaries of this build and asserts its outcome.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole run takes about 10 s; this bounds it.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The directory of this build's binaries, with `sc-ca` built into it too
/// (it belongs to another package of the workspace).
fn bin_dir() -> PathBuf {
    let server = Path::new(env!("CARGO_BIN_EXE_sc-server"));
    let dir = server
        .parent()
        .expect("the binaries' directory")
        .to_path_buf();
    if !dir.join("sc-ca").is_file() {
        let target = dir.parent().expect("the target directory");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args(["build", "--quiet", "-p", "sc-ca", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build -p sc-ca");
        assert!(status.success(), "cargo build -p sc-ca failed");
    }
    dir
}

#[test]
#[ignore = "needs haproxy; .ci/run installs it and runs this with --ignored"]
fn haproxy_spreads_sessions_keeps_client_addresses_and_survives_a_server_stop() {
    // The script looks on PATH, then in /usr/sbin (Debian's place for it).
    let found = ["haproxy", "/usr/sbin/haproxy"].into_iter().find_map(|h| {
        let out = Command::new(h).arg("-v").output().ok()?;
        out.status.success().then_some(h)
    });
    assert!(
        found.is_some(),
        "this test needs haproxy (apt-get install haproxy): not on PATH nor in /usr/sbin"
    );
    let bin = bin_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/haproxy/run.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("12")
        .env("SC_BIN_DIR", &bin)
        .env_remove("SC_KEEP_WORK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run examples/haproxy/run.sh");
    // Read both pipes on threads so neither fills up, and bound the run.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            // SIGTERM lets the script's trap stop what it started.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
            let _ = child.wait();
            panic!("the HAProxy run did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().expect("stdout");
    let stderr = err.join().expect("stderr");
    println!("{stdout}");
    assert!(
        status.success(),
        "the HAProxy run failed ({status}):\n{stdout}\n{stderr}"
    );
    for needle in [
        "sessions: s1 ",
        "failed 0",
        "client addresses the servers logged are the ones HAProxy saw",
        "(PROXY LOCAL, then closed), accepted without a warning",
        "long sessions open: s1 1, s2 1",
        "SIGTERM to s1",
        "Server sc_servers/s1 is DOWN",
        "s1 still running (draining)",
        " 0 failed",
        "s1 exited with status 0",
        "== ok:",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} not in the run's output:\n{stdout}"
        );
    }
    // s1 had the long session (and maybe a short one) open at the SIGTERM.
    let drain = stdout
        .lines()
        .find_map(|l| l.split("shutting down: no longer accepting; ").nth(1))
        .expect("s1's shutdown line");
    let open: u32 = drain
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count of open sessions");
    assert!(open >= 1, "s1 drained nothing: {drain}");
    // Both servers took sessions in phase 1.
    let spread = stdout
        .lines()
        .find(|l| l.starts_with("sessions: s1 "))
        .expect("the spread line");
    // "sessions: s1 6, s2 6, failed 0"
    let counts: Vec<u32> = spread
        .split(", ")
        .filter_map(|part| part.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        matches!(counts[..], [s1, s2, 0] if s1 > 0 && s2 > 0),
        "{spread}"
    );
}
