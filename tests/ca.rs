//! `sc-ca` as users run it: the real binary in a temporary directory, its
//! stdout, stderr and exit status compared with snapshots in
//! `tests/ca/snapshots/` (values that change every run — serials, dates,
//! fingerprints, the temporary path — are replaced by placeholders).
//!
//! `SC_UPDATE_SNAPSHOTS=1 cargo test --test ca` rewrites the snapshots; review
//! the diff before committing it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_sc-ca");
const DAY: u64 = 86_400;

/// A fresh empty directory, removed when dropped.
struct Sandbox(PathBuf);

impl Sandbox {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sc-ca-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Runs sc-ca in `sb` with `args` (split on spaces; `{}` marks one argument
/// with spaces, given in `extra`) and extra environment.
fn sc_ca(sb: &Sandbox, args: &[&str], env: &[(&str, String)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(&sb.0)
        .env_remove("SC_CA_PASSPHRASE")
        .env_remove("SC_CA_TEST_NOW");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("sc-ca runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(sb: &Sandbox, args: &[&str]) -> Run {
    let r = sc_ca(sb, args, &[]);
    assert_eq!(
        r.code, 0,
        "sc-ca {args:?} failed:\n{}{}",
        r.stdout, r.stderr
    );
    r
}

fn fails(sb: &Sandbox, args: &[&str], env: &[(&str, String)]) -> String {
    let r = sc_ca(sb, args, env);
    assert_ne!(r.code, 0, "sc-ca {args:?} should fail:\n{}", r.stdout);
    assert!(
        r.stderr.starts_with("error: "),
        "one error line first: {}",
        r.stderr
    );
    r.stderr
}

/// Replaces what changes from run to run.
fn normalize(text: &str, sb: &Sandbox) -> String {
    let text = text.replace(sb.0.to_str().expect("utf-8 path"), "[TMP]");
    // A CA made by `init` lasts 3650 days from that second: a command run
    // in a later second has 3649 whole days left (both are right).
    let text = text.replace("use --days 3649 or less", "use --days 3650 or less");
    let mut out = String::new();
    for token in split_keep(&text) {
        out.push_str(&placeholder(&token).unwrap_or(token));
    }
    out
}

/// Splits text into runs of [0-9A-Za-z:-] and everything else.
fn split_keep(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let word = |c: char| c.is_ascii_alphanumeric() || c == ':' || c == '-';
    for c in text.chars() {
        if !cur.is_empty() && word(c) != cur.chars().all(word) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn placeholder(t: &str) -> Option<String> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if t.len() == 32 && hex(t) {
        return Some("[SERIAL]".into());
    }
    if let Some(h) = t.strip_prefix("sha256:") {
        if h.len() == 64 && hex(h) {
            return Some("sha256:[PIN]".into());
        }
    }
    if t.len() == 95 && t.split(':').all(|p| p.len() == 2 && hex(p)) {
        return Some("[FINGERPRINT]".into());
    }
    // A date may end a clause ("valid until 2036-11-23: distribute it"), and
    // ':' is a word character here (for times and fingerprints).
    let (date, colon) = t.strip_suffix(':').map_or((t, ""), |d| (d, ":"));
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() == 3 && parts[0].len() == 4 && parts.iter().all(|p| digits(p)) {
        return Some(format!("[DATE]{colon}"));
    }
    if t.len() == 5 && t.as_bytes()[2] == b':' && digits(&t[..2]) && digits(&t[3..]) {
        return Some("[TIME]".into());
    }
    None
}

fn snapshot(name: &str, sb: &Sandbox, runs: &[(String, Run)]) {
    let mut text = String::new();
    for (cmd, r) in runs {
        text.push_str(&format!("$ sc-ca {cmd}\n"));
        text.push_str(&normalize(&r.stdout, sb));
        if !r.stderr.is_empty() {
            text.push_str("[stderr]\n");
            text.push_str(&normalize(&r.stderr, sb));
        }
        text.push_str(&format!("[exit {}]\n\n", r.code));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ca/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("SC_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &text).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with SC_UPDATE_SNAPSHOTS=1. Output:\n{text}",
            path.display()
        )
    });
    if want != text {
        panic!(
            "snapshot {} differs.\n--- want\n{want}\n--- got\n{text}",
            path.display()
        );
    }
}

/// Runs a sequence of commands, recording each for a snapshot.
fn session(sb: &Sandbox, cmds: &[&str]) -> Vec<(String, Run)> {
    cmds.iter()
        .map(|c| {
            let args: Vec<&str> = c.split_whitespace().collect();
            (c.to_string(), sc_ca(sb, &args, &[]))
        })
        .collect()
}

#[test]
fn a_team_runs_its_ca() {
    let sb = Sandbox::new();
    let runs = session(
        &sb,
        &[
            "init --dir ca --name Example-CA --intermediate",
            "issue server db.internal --dir ca --dns db.internal --ip 10.0.0.7",
            "issue client app-1 --dir ca --uri spiffe://example/app-1",
            "issue client app-1 --dir ca",
            "list --dir ca",
            "verify --ca ca/ca.pem --name db.internal ca/db.internal.pem",
            "verify --ca ca/ca.pem --name api.internal ca/db.internal.pem",
            "verify --ca ca/ca.pem --purpose client --name app-1 ca/app-1.pem",
            "verify --ca ca/ca.pem --purpose server --name app-1 ca/app-1.pem",
            "revoke --dir ca --cert ca/app-1.pem --reason key-compromise",
            "verify --ca ca/ca.pem --crl ca/crl.pem --purpose client ca/app-1.pem",
            "verify --ca ca/ca.pem --crl ca/crl.pem --name db.internal ca/db.internal.pem",
            "renew db.internal --dir ca --days 90",
            "crl --dir ca",
            "list --dir ca",
            "inspect ca/db.internal.pem",
            "inspect ca/crl.pem",
            "inspect ca/app-1.key",
        ],
    );
    snapshot("a_team_runs_its_ca", &sb, &runs);
    // Keys are private, everything else public; no temporary file is left.
    for f in [
        "ca/ca.key",
        "ca/intermediate.key",
        "ca/db.internal.key",
        "ca/app-1.key",
    ] {
        assert_eq!(mode(&sb.path(f)), 0o600, "{f}");
    }
    for f in [
        "ca/ca.pem",
        "ca/index.toml",
        "ca/crl.pem",
        "ca/db.internal.pem",
    ] {
        assert_eq!(mode(&sb.path(f)) & 0o077, 0o044, "{f}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(sb.path("ca"))
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The index holds no key material.
    let index = std::fs::read_to_string(sb.path("ca/index.toml")).expect("index");
    assert!(!index.contains("PRIVATE"));
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("file").permissions().mode() & 0o777
}

#[test]
fn help_teaches_the_commands() {
    let sb = Sandbox::new();
    let runs = session(
        &sb,
        &[
            "--help",
            "issue server --help",
            "issue client --help",
            "request --help",
            "verify --help",
        ],
    );
    snapshot("help", &sb, &runs);
}

#[test]
fn encrypted_ca_keys_need_the_passphrase() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("pass"), "correct horse\n").expect("write");
    std::fs::set_permissions(
        sb.path("pass"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    ok(
        &sb,
        &[
            "init",
            "--dir",
            "ca",
            "--encrypt",
            "--passphrase-file",
            "pass",
        ],
    );
    let key = std::fs::read_to_string(sb.path("ca/ca.key")).expect("key");
    assert!(key.contains("ENCRYPTED PRIVATE KEY"), "{key}");
    // No passphrase, no terminal.
    let e = fails(&sb, &["issue", "server", "a.test", "--dir", "ca"], &[]);
    assert!(
        e.contains("no terminal") && e.contains("SC_CA_PASSPHRASE"),
        "{e}"
    );
    // The wrong one.
    let e = fails(
        &sb,
        &["issue", "server", "a.test", "--dir", "ca"],
        &[("SC_CA_PASSPHRASE", "wrong".into())],
    );
    assert!(e.contains("wrong passphrase"), "{e}");
    // The right one, by environment and by file.
    let r = sc_ca(
        &sb,
        &["issue", "server", "a.test", "--dir", "ca"],
        &[("SC_CA_PASSPHRASE", "correct horse".into())],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    ok(
        &sb,
        &[
            "issue",
            "server",
            "b.test",
            "--dir",
            "ca",
            "--passphrase-file",
            "pass",
        ],
    );
    // Issued leaf keys are not encrypted (servers load them unattended).
    assert!(!std::fs::read_to_string(sb.path("ca/a.test.key"))
        .expect("key")
        .contains("ENCRYPTED"));
}

#[test]
fn bad_input_gets_one_clear_error() {
    let sb = Sandbox::new();
    let mut runs = Vec::new();
    let mut record = |cmd: &str, env: &[(&str, String)]| {
        let args: Vec<&str> = cmd.split_whitespace().collect();
        let r = sc_ca(&sb, &args, env);
        assert_ne!(r.code, 0, "sc-ca {cmd} should fail: {}", r.stdout);
        runs.push((cmd.to_string(), r));
    };
    record("list --dir nowhere", &[]);
    std::fs::create_dir_all(sb.path("half")).expect("dir");
    std::fs::write(sb.path("half/ca.pem"), "").expect("write");
    record("issue server x.test --dir half", &[]);
    record("init --dir half", &[]);
    // A real CA for the rest.
    ok(&sb, &["init", "--dir", "ca"]);
    record("init --dir ca", &[]);
    ok(&sb, &["issue", "server", "db.internal", "--dir", "ca"]);
    record("issue server db.internal --dir ca", &[]);
    record("issue server ../escape --dir ca", &[]);
    record("issue server ok.test --dir ca --dns bad..name", &[]);
    record("issue server long.test --dir ca --days 4000", &[]);
    record("revoke --dir ca --serial 00ff", &[]);
    record("revoke --dir ca --serial xyz", &[]);
    record("renew nobody --dir ca", &[]);
    record("revoke --dir ca --serial 1 --reason because", &[]);
    std::fs::write(
        sb.path("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    record("inspect garbage.pem", &[]);
    record("inspect nothing.pem", &[]);
    std::fs::write(sb.path("binary.pem"), [0xff, 0xfe, 0x00]).expect("write");
    record("inspect binary.pem", &[]);
    record("verify --ca garbage.pem ca/db.internal.pem", &[]);
    // A P-256 certificate (made by OpenSSL once; see sc-pki's test data).
    let p256 = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/sc-pki/tests/data/p256-cert.pem");
    std::fs::copy(p256, sb.path("p256.pem")).expect("copy fixture");
    record("verify --ca ca/ca.pem --name server.test p256.pem", &[]);
    // A CA key others can read is refused, as OpenSSH refuses loose keys.
    std::fs::set_permissions(
        sb.path("ca/ca.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    record("issue server loose.test --dir ca", &[]);
    std::fs::set_permissions(
        sb.path("ca/ca.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    // A key that does not belong to the CA certificate.
    std::fs::copy(sb.path("ca/ca.key"), sb.path("ca.key.bak")).expect("backup");
    std::fs::copy(sb.path("ca/db.internal.key"), sb.path("ca/ca.key")).expect("swap");
    record("issue server swapped.test --dir ca", &[]);
    std::fs::copy(sb.path("ca.key.bak"), sb.path("ca/ca.key")).expect("restore");
    // An expired CA (the clock moved 2 days past a 1-day CA).
    ok(&sb, &["init", "--dir", "short", "--days", "1"]);
    record(
        "issue server late.test --dir short",
        &[("SC_CA_TEST_NOW", (now() + 2 * DAY).to_string())],
    );
    // A CA that is not valid yet (this machine's clock is 2 days behind).
    record(
        "issue server early.test --dir short",
        &[("SC_CA_TEST_NOW", (now() - 2 * DAY).to_string())],
    );
    // A damaged index.
    std::fs::write(sb.path("ca/index.toml"), "format = 1\nname = [").expect("write");
    record("list --dir ca", &[]);
    snapshot("bad_input", &sb, &runs);
    // Every error is one "error:" line, optionally followed by one "hint:"
    // line (clap's own usage errors, exit 2, add its "try --help" line).
    for (cmd, r) in runs.iter().filter(|(_, r)| r.code != 2) {
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert!(
            (lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")))
                && lines[0].starts_with("error: "),
            "sc-ca {cmd}: {}",
            r.stderr
        );
    }
}

#[test]
fn verify_tells_each_outcome_apart() {
    let sb = Sandbox::new();
    ok(&sb, &["init", "--dir", "ca"]);
    ok(&sb, &["init", "--dir", "other", "--name", "Other-CA"]);
    ok(&sb, &["issue", "server", "db.internal", "--dir", "ca"]);
    ok(&sb, &["issue", "client", "app-1", "--dir", "ca"]);
    ok(
        &sb,
        &[
            "issue",
            "server",
            "old.internal",
            "--dir",
            "ca",
            "--days",
            "1",
        ],
    );
    let later = [("SC_CA_TEST_NOW", (now() + 3 * DAY).to_string())];
    let earlier = [("SC_CA_TEST_NOW", (now() - 3 * DAY).to_string())];
    let pin = |file: &str| {
        let out = ok(&sb, &["inspect", file]).stdout;
        out.split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .expect("a pin")
            .trim_end_matches(',')
            .to_owned()
    };
    let db_pin = pin("ca/db.internal.pem");
    let app_pin = pin("ca/app-1.pem");
    let none: &[(&str, String)] = &[];
    let pin_ok = format!("--name db.internal --pin {db_pin} ca/db.internal.pem");
    let pin_bad = format!("--name db.internal --pin {app_pin} ca/db.internal.pem");
    // (what, arguments after `verify --ca ca/ca.pem`, environment, expected)
    let cases = [
        (
            "good chain",
            "--name db.internal ca/db.internal.pem",
            none,
            "OK",
        ),
        (
            "unknown issuer",
            "--ca other/ca.pem --name db.internal ca/db.internal.pem",
            none,
            "unknown",
        ),
        (
            "expired",
            "--name old.internal ca/old.internal.pem",
            &later[..],
            "expired",
        ),
        (
            "not yet valid",
            "--name db.internal ca/db.internal.pem",
            &earlier[..],
            "not valid",
        ),
        ("wrong EKU", "--name app-1 ca/app-1.pem", none, "purpose"),
        (
            "name mismatch",
            "--name api.internal ca/db.internal.pem",
            none,
            "api.internal",
        ),
        ("pin match", pin_ok.as_str(), none, "OK"),
        ("pin mismatch", pin_bad.as_str(), none, "pin"),
        (
            "client good",
            "--purpose client --name app-1 ca/app-1.pem",
            none,
            "OK",
        ),
        (
            "client not named",
            "--purpose client --name app-2 ca/app-1.pem",
            none,
            "app-1",
        ),
    ];
    let mut reasons = std::collections::BTreeSet::new();
    for (what, args, env, expect) in cases {
        let mut full: Vec<&str> = vec!["verify"];
        if !args.contains("--ca ") {
            full.extend(["--ca", "ca/ca.pem"]);
        }
        full.extend(args.split_whitespace());
        let r = sc_ca(&sb, &full, env);
        let out = format!("{}{}", r.stdout, r.stderr);
        if expect == "OK" {
            assert_eq!((r.code, r.stdout.trim()), (0, "OK"), "{what}: {out}");
        } else {
            assert_eq!(r.code, 1, "{what}: {out}");
            assert!(
                out.contains(expect),
                "{what}: expected '{expect}' in: {out}"
            );
            reasons.insert(r.stderr.clone());
        }
    }
    // Revoked, through the CRL the CA publishes.
    ok(
        &sb,
        &["revoke", "--dir", "ca", "--cert", "ca/db.internal.pem"],
    );
    let r = sc_ca(
        &sb,
        &[
            "verify",
            "--ca",
            "ca/ca.pem",
            "--crl",
            "ca/crl.pem",
            "--name",
            "db.internal",
            "ca/db.internal.pem",
        ],
        &[],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("revoked"), "{}", r.stderr);
    reasons.insert(r.stderr);
    assert_eq!(reasons.len(), 8, "distinct reasons: {reasons:#?}");
}

/// OpenSSL reads what sc-ca writes.
#[test]
#[ignore = "needs the openssl CLI; .ci/run installs it and runs this with --ignored"]
fn openssl_reads_what_sc_ca_writes() {
    let sb = Sandbox::new();
    ok(&sb, &["init", "--dir", "ca", "--intermediate"]);
    ok(&sb, &["issue", "server", "db.internal", "--dir", "ca"]);
    ok(&sb, &["issue", "client", "app-1", "--dir", "ca"]);
    ok(&sb, &["revoke", "--dir", "ca", "--cert", "ca/app-1.pem"]);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&sb.0)
            .output()
            .expect("the openssl CLI is installed");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (good, text) = openssl(&["x509", "-noout", "-text", "-in", "ca/db.internal.pem"]);
    assert!(
        good && text.contains("ED25519")
            && text.contains("DNS:db.internal")
            && text.contains("TLS Web Server Authentication"),
        "{text}"
    );
    let (good, text) = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        "ca/ca.pem",
        "-untrusted",
        "ca/intermediate.pem",
        "-purpose",
        "sslserver",
        "ca/db.internal.pem",
    ]);
    assert!(good && text.contains(": OK"), "{text}");
    let (good, text) = openssl(&["crl", "-noout", "-text", "-in", "ca/crl.pem"]);
    assert!(
        good && text.contains("Revoked Certificates") && text.contains("CRL Number"),
        "{text}"
    );
    // OpenSSL also finds the revoked client in the CRL, and the server not.
    std::fs::write(
        sb.path("chain.pem"),
        [
            std::fs::read_to_string(sb.path("ca/ca.pem")).expect("ca"),
            std::fs::read_to_string(sb.path("ca/intermediate.pem")).expect("int"),
        ]
        .concat(),
    )
    .expect("write");
    let (good, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        "chain.pem",
        "-CRLfile",
        "ca/crl.pem",
        "ca/app-1.pem",
    ]);
    assert!(!good && text.contains("revoked"), "{text}");
    let (good, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        "chain.pem",
        "-CRLfile",
        "ca/crl.pem",
        "ca/db.internal.pem",
    ]);
    assert!(good, "{text}");
    let (good, text) = openssl(&["pkey", "-noout", "-in", "ca/db.internal.key"]);
    assert!(good, "{text}");
}

// ---- Keys that never travel: `sc-ca request` on the host, `--csr` at the CA.

/// `sc-ca request` on two "hosts", `issue --csr` at the CA: the CA holds no
/// key of theirs, and the certificates work with the hosts' own keys in a
/// real handshake between sc-server and sc-client.
#[test]
fn a_request_signed_by_the_ca_works_with_the_hosts_key() {
    let sb = Sandbox::new();
    let runs = session(
        &sb,
        &[
            "init --dir ca --name Example-CA --intermediate",
            "request db.internal --out server-host",
            "request app-1 --out client-host --uri spiffe://example/app-1",
            "issue server db.internal --dir ca --csr server-host/db.internal.csr",
            "issue client app-1 --dir ca --csr client-host/app-1.csr --uri spiffe://example/app-1",
            "verify --ca ca/ca.pem --name db.internal ca/db.internal.pem",
            "verify --ca ca/ca.pem --purpose client --name app-1 ca/app-1.pem",
            "list --dir ca",
        ],
    );
    snapshot("csr_flow", &sb, &runs);
    for (cmd, r) in &runs {
        assert_eq!(r.code, 0, "sc-ca {cmd}: {}", r.stderr);
        // Matching names: no note about ignored ones.
        assert!(r.stderr.is_empty(), "sc-ca {cmd}: {}", r.stderr);
    }
    // The keys stay on the hosts; the CA has none of theirs.
    assert_eq!(mode(&sb.path("server-host/db.internal.key")), 0o600);
    assert_eq!(mode(&sb.path("client-host/app-1.key")), 0o600);
    assert_eq!(mode(&sb.path("server-host/db.internal.csr")) & 0o077, 0o044);
    assert!(!sb.path("ca/db.internal.key").exists());
    assert!(!sb.path("ca/app-1.key").exists());
    let key = std::fs::read_to_string(sb.path("server-host/db.internal.key")).expect("key");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key}");
    // A second request for the same name does not overwrite the key.
    let e = fails(
        &sb,
        &["request", "db.internal", "--out", "server-host"],
        &[],
    );
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(
        std::fs::read_to_string(sb.path("server-host/db.internal.key")).expect("key"),
        key
    );

    // A real session: sc-server with the server host's key, sc-client with
    // the client host's, both certificates issued from requests.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let p = |rel: &str| sb.path(rel).display().to_string();
    let mut server = Command::new(env!("CARGO_BIN_EXE_sc-server"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cert",
            &p("ca/db.internal.pem"),
            "--key",
            &p("server-host/db.internal.key"),
            "--ca",
            &p("ca/ca.pem"),
            "--allow-client",
            "uri:spiffe://example/app-1",
            "--echo",
        ])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sc-server starts");
    let up = (0..3000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let client = up.then(|| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sc-client"))
            .args([
                "--connect",
                &format!("127.0.0.1:{port}"),
                "--server-name",
                "db.internal",
                "--ca",
                &p("ca/ca.pem"),
                "--cert",
                &p("ca/app-1.pem"),
                "--key",
                &p("client-host/app-1.key"),
            ])
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sc-client starts");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin.write_all(b"hello\n").expect("write");
        }
        child.wait_with_output().expect("sc-client ends")
    });
    let _ = server.kill();
    let _ = server.wait();
    let out = client.expect("sc-server listens in time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "server: echo: hello\n"
    );
    assert!(stderr.contains("connected to db.internal"), "{stderr}");
}

/// The names are the CA's: what a request asks for is shown in one note
/// and not certified.
#[test]
fn renewing_a_certificate_issued_from_a_request_keeps_the_hosts_key() {
    let sb = Sandbox::new();
    for cmd in [
        "init --dir ca --name Example-CA",
        "request db.internal --out host",
        "issue server db.internal --dir ca --csr host/db.internal.csr",
    ] {
        ok(&sb, &cmd.split_whitespace().collect::<Vec<_>>());
    }
    let pin = |file: &str| -> String {
        let out = ok(&sb, &["inspect", file]).stdout;
        out.split("sha256:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no pin in {out}"))
            .to_owned()
    };
    let host_key = pin("host/db.internal.key");
    let first = ok(&sb, &["inspect", "ca/db.internal.pem"]).stdout;
    let r = ok(
        &sb,
        &["renew", "db.internal", "--dir", "ca", "--days", "30"],
    );
    assert!(
        r.stdout.contains("no key file: the key stays on the host"),
        "{}",
        r.stdout
    );
    // A new certificate for the host's key; no key at the CA.
    assert_ne!(ok(&sb, &["inspect", "ca/db.internal.pem"]).stdout, first);
    assert_eq!(pin("ca/db.internal.pem"), host_key);
    assert!(!sb.path("ca/db.internal.key").exists());
    ok(
        &sb,
        &[
            "verify",
            "--ca",
            "ca/ca.pem",
            "--name",
            "db.internal",
            "ca/db.internal.pem",
        ],
    );
    // A certificate file that is not the current one is not renewed.
    std::fs::copy(sb.path("ca/ca.pem"), sb.path("ca/db.internal.pem")).expect("copy");
    let e = fails(&sb, &["renew", "db.internal", "--dir", "ca"], &[]);
    assert!(
        e.contains("is not the current certificate of 'db.internal'"),
        "{e}"
    );
}

#[test]
fn the_names_come_from_the_ca_not_the_request() {
    let sb = Sandbox::new();
    ok(&sb, &["init", "--dir", "ca"]);
    ok(
        &sb,
        &[
            "request",
            "db.internal",
            "--out",
            "host",
            "--dns",
            "evil.example",
            "--ip",
            "10.9.9.9",
        ],
    );
    let r = ok(
        &sb,
        &[
            "issue",
            "server",
            "db.internal",
            "--dir",
            "ca",
            "--csr",
            "host/db.internal.csr",
        ],
    );
    let note: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(note.len(), 1, "{}", r.stderr);
    assert!(
        note[0].starts_with("note: ")
            && note[0].contains("DNS:evil.example, IP:10.9.9.9")
            && note[0].contains("ignored")
            && note[0].ends_with("the certificate names DNS:db.internal"),
        "{}",
        r.stderr
    );
    let shown = ok(&sb, &["inspect", "ca/db.internal.pem"]).stdout;
    assert!(shown.contains("names        DNS:db.internal\n"), "{shown}");
    assert!(
        !shown.contains("evil") && !shown.contains("10.9.9.9"),
        "{shown}"
    );
    // The certificate is for the request's key.
    let key_pin = ok(&sb, &["inspect", "host/db.internal.key"]).stdout;
    let pin = key_pin
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("a pin");
    assert!(shown.contains(pin), "{shown}\n{key_pin}");
    // It verifies for the CA's name, and not for the requested one.
    ok(
        &sb,
        &[
            "verify",
            "--ca",
            "ca/ca.pem",
            "--name",
            "db.internal",
            "ca/db.internal.pem",
        ],
    );
    let e = fails(
        &sb,
        &[
            "verify",
            "--ca",
            "ca/ca.pem",
            "--name",
            "evil.example",
            "ca/db.internal.pem",
        ],
        &[],
    );
    assert!(e.contains("not valid for 'evil.example'"), "{e}");
}

/// Every bad request is refused with one line naming why (and a hint),
/// exit 1, before the CA is touched: nothing is written.
#[test]
fn bad_requests_get_one_line_naming_why() {
    use sovereign_chain::pki::{make_request_pem, KeyPair, LeafSpec};

    let sb = Sandbox::new();
    ok(&sb, &["init", "--dir", "ca", "--intermediate"]);
    ok(&sb, &["request", "good", "--out", "host"]);
    let good = std::fs::read_to_string(sb.path("host/good.csr")).expect("csr");
    // A changed signature: the first base64 character of the last line
    // (all signature bytes) replaced.
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let last = lines.len() - 2;
    let first = lines[last].remove(0);
    lines[last].insert(0, if first == 'A' { 'B' } else { 'A' });
    std::fs::write(sb.path("badsig.csr"), lines.join("\n") + "\n").expect("write");
    std::fs::write(sb.path("text.csr"), "not a request\n").expect("write");
    std::fs::write(sb.path("binary.csr"), [0xff, 0xfe, 0x00]).expect("write");
    std::fs::write(sb.path("short.der"), [0x30, 0x03, 0x02, 0x01, 0x00]).expect("write");
    std::fs::write(
        sb.path("garbage.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQE=\n-----END CERTIFICATE REQUEST-----\n",
    )
    .expect("write");
    // A P-256 request (made by OpenSSL once from sc-pki's P-256 test key).
    let p256 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ca/p256.csr");
    std::fs::copy(p256, sb.path("p256.csr")).expect("copy fixture");
    // A request for the CA's own keys (as someone with the CA keys could make).
    for (key, out) in [
        ("ca/ca.key", "root.csr"),
        ("ca/intermediate.key", "inter.csr"),
    ] {
        let pem = std::fs::read_to_string(sb.path(key)).expect("CA key");
        let key = KeyPair::from_pem(&pem, None).expect("plain key");
        let csr = make_request_pem(&key, &LeafSpec::client("sneaky")).expect("request");
        std::fs::write(sb.path(out), csr).expect("write");
    }
    let index = std::fs::read_to_string(sb.path("ca/index.toml")).expect("index");
    // (file, what the one line must say)
    let cases = [
        (
            "missing.csr",
            "cannot read the request missing.csr: no such file",
        ),
        ("text.csr", "not a certificate request (neither PEM"),
        ("binary.csr", "not a certificate request (neither PEM"),
        ("ca/ca.pem", "holds a PEM \"CERTIFICATE\" block"),
        ("host/good.key", "holds a PEM \"PRIVATE KEY\" block"),
        ("short.der", "the request does not parse as PKCS#10"),
        ("garbage.csr", "the request does not parse as PKCS#10"),
        ("badsig.csr", "the request's signature does not verify"),
        (
            "p256.csr",
            "the request's key is id-ecPublicKey secp256r1 (1.2.840.10045.2.1), not Ed25519",
        ),
        (
            "root.csr",
            "the request's key is this CA's own key (ca/ca.pem)",
        ),
        (
            "inter.csr",
            "the request's key is this CA's own key (ca/intermediate.pem)",
        ),
    ];
    let mut runs = Vec::new();
    for (file, says) in cases {
        let cmd = format!("issue client sneaky --dir ca --csr {file}");
        let args: Vec<&str> = cmd.split_whitespace().collect();
        let r = sc_ca(&sb, &args, &[]);
        assert_eq!(r.code, 1, "{cmd}: {}{}", r.stdout, r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert!(
            lines.len() == 2 && lines[0].starts_with("error: ") && lines[1].starts_with("hint: "),
            "{cmd}: {}",
            r.stderr
        );
        assert!(
            lines[0].contains(says),
            "{cmd}: want '{says}' in: {}",
            r.stderr
        );
        runs.push((cmd, r));
    }
    snapshot("csr_bad_input", &sb, &runs);
    // Nothing was issued or written.
    assert!(!sb.path("ca/sneaky.pem").exists());
    assert!(!sb.path("ca/sneaky.key").exists());
    assert_eq!(
        std::fs::read_to_string(sb.path("ca/index.toml")).expect("index"),
        index
    );
    // The good request still works after all that.
    ok(
        &sb,
        &[
            "issue",
            "client",
            "good",
            "--dir",
            "ca",
            "--csr",
            "host/good.csr",
        ],
    );
}

/// A request made by OpenSSL (`openssl req -new -key ed25519.key`), in PEM
/// and DER, is signed like one of sc-ca's; OpenSSL reads sc-ca's request;
/// OpenSSL requests for other keys are refused with the algorithm named.
#[test]
#[ignore = "needs the openssl CLI; .ci/run installs it and runs this with --ignored"]
fn openssl_made_requests_work() {
    let sb = Sandbox::new();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&sb.0)
            .output()
            .expect("the openssl CLI is installed");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let must = |args: &[&str]| {
        let (good, text) = openssl(args);
        assert!(good, "openssl {args:?}: {text}");
        text
    };
    ok(&sb, &["init", "--dir", "ca", "--intermediate"]);
    must(&["genpkey", "-algorithm", "ed25519", "-out", "k.pem"]);
    must(&[
        "req", "-new", "-key", "k.pem", "-subj", "/CN=x", "-out", "r.csr",
    ]);
    let r = ok(
        &sb,
        &["issue", "client", "x", "--dir", "ca", "--csr", "r.csr"],
    );
    // CN=x and no SANs: nothing differs from what the CA certifies.
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // The certificate is for OpenSSL's key, and OpenSSL accepts the chain.
    let cert_key = must(&["x509", "-noout", "-pubkey", "-in", "ca/x.pem"]);
    let own_key = must(&["pkey", "-pubout", "-in", "k.pem"]);
    assert_eq!(cert_key, own_key);
    std::fs::write(
        sb.path("chain.pem"),
        [
            std::fs::read_to_string(sb.path("ca/ca.pem")).expect("ca"),
            std::fs::read_to_string(sb.path("ca/intermediate.pem")).expect("int"),
        ]
        .concat(),
    )
    .expect("write");
    let text = must(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        "chain.pem",
        "-purpose",
        "sslclient",
        "ca/x.pem",
    ]);
    assert!(text.contains(": OK"), "{text}");
    // DER, with a SAN the CA does not give: signed, and the SAN ignored.
    must(&[
        "req",
        "-new",
        "-key",
        "k.pem",
        "-subj",
        "/CN=y",
        "-addext",
        "subjectAltName=DNS:evil.example",
        "-outform",
        "DER",
        "-out",
        "r.der",
    ]);
    let r = ok(
        &sb,
        &["issue", "client", "y", "--dir", "ca", "--csr", "r.der"],
    );
    assert!(
        r.stderr
            .starts_with("note: r.der: the request's names (CN=y, DNS:evil.example) were ignored"),
        "{}",
        r.stderr
    );
    let text = must(&[
        "x509",
        "-noout",
        "-ext",
        "subjectAltName",
        "-in",
        "ca/y.pem",
    ]);
    assert!(text.contains("DNS:y") && !text.contains("evil"), "{text}");
    // OpenSSL reads and verifies sc-ca's requests.
    ok(
        &sb,
        &[
            "request",
            "db.internal",
            "--out",
            "host",
            "--ip",
            "10.0.0.7",
        ],
    );
    let text = must(&[
        "req",
        "-verify",
        "-noout",
        "-text",
        "-in",
        "host/db.internal.csr",
    ]);
    assert!(
        text.contains("verify OK")
            && text.contains("ED25519")
            && text.contains("IP Address:10.0.0.7"),
        "{text}"
    );
    // Other keys: the algorithm is named.
    for (make, says) in [
        (
            &[
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key", "-subj",
                "/CN=a", "-out", "a.csr",
            ][..],
            "the request's key is rsaEncryption (1.2.840.113549.1.1.1), not Ed25519",
        ),
        (
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-nodes",
                "-keyout",
                "ec.key",
                "-subj",
                "/CN=a",
                "-out",
                "a.csr",
            ][..],
            "the request's key is id-ecPublicKey secp384r1 (1.2.840.10045.2.1), not Ed25519",
        ),
        (
            &[
                "req",
                "-new",
                "-newkey",
                "ed448",
                "-nodes",
                "-keyout",
                "ed448.key",
                "-subj",
                "/CN=a",
                "-out",
                "a.csr",
            ][..],
            "the request's key is id-Ed448 (1.3.101.113), not Ed25519",
        ),
    ] {
        must(make);
        let e = fails(
            &sb,
            &["issue", "client", "a", "--dir", "ca", "--csr", "a.csr"],
            &[],
        );
        assert!(e.contains(says), "want '{says}' in: {e}");
    }
}

/// `sc-ca request --encrypt` writes the host's key encrypted, as `init
/// --encrypt` does the CA's; the request is signed all the same.
#[test]
fn a_request_key_can_be_encrypted() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("pass"), "correct horse\n").expect("write");
    std::fs::set_permissions(
        sb.path("pass"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    ok(&sb, &["init", "--dir", "ca"]);
    let r = ok(
        &sb,
        &[
            "request",
            "app-1",
            "--out",
            "host",
            "--encrypt",
            "--passphrase-file",
            "pass",
        ],
    );
    assert!(r.stdout.contains("(mode 0600, encrypted)"), "{}", r.stdout);
    assert_eq!(mode(&sb.path("host/app-1.key")), 0o600);
    let shown = ok(&sb, &["inspect", "host/app-1.key"]).stdout;
    assert!(shown.contains("encrypted    yes"), "{shown}");
    ok(
        &sb,
        &[
            "issue",
            "client",
            "app-1",
            "--dir",
            "ca",
            "--csr",
            "host/app-1.csr",
        ],
    );
    // No passphrase and no terminal: one line, and no key is written.
    let e = fails(
        &sb,
        &["request", "app-2", "--out", "host", "--encrypt"],
        &[],
    );
    assert!(e.contains("no terminal"), "{e}");
    assert!(!sb.path("host/app-2.key").exists() && !sb.path("host/app-2.csr").exists());
}
