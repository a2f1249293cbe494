//! Sessions of streams through the real binaries (SPEC §14): a tunnel
//! entry keeps one session and maps every local connection to a stream of
//! it; `sc-server` sends each stream to the service it names, or resets it
//! with the reason; a killed exit resets every stream at the entry; old and
//! new binaries work together. Loopback only, every wait bounded.

use std::time::Duration;

use sovereign_chain::net::Endpoint;
use sovereign_chain::session::Acceptor;
use sovereign_chain::tunnel::splice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

mod common;
#[path = "faults/support.rs"]
#[allow(dead_code)]
mod support;

use support::{sc_client, sc_server, Pki, Proc, WAIT};

/// A backend that answers every connection with `tag`, then echoes.
async fn tagged_echo(tag: &'static str) -> (JoinHandle<()>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if tcp.write_all(tag.as_bytes()).await.is_err() {
                    return;
                }
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (task, addr)
}

/// Connects to the entry, reads the backend's tag, echoes `msg`.
async fn visit(entry: &Endpoint, msg: &[u8]) -> Result<(String, Vec<u8>), String> {
    let mut s = timeout(WAIT, entry.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let mut tag = [0u8; 1];
    let r = timeout(WAIT, s.read_exact(&mut tag))
        .await
        .map_err(|_| "no tag in time".to_string())?;
    if let Err(e) = r {
        return Err(format!("{:?}: {e}", e.kind()));
    }
    s.write_all(msg).await.map_err(|e| e.to_string())?;
    let mut back = vec![0u8; msg.len()];
    timeout(WAIT, s.read_exact(&mut back))
        .await
        .map_err(|_| "no echo in time".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((String::from_utf8_lossy(&tag).into_owned(), back))
}

/// `sc-server` forwarding to `default` with `extra` flags (-v: a line per
/// stream).
async fn server(pki: &Pki, default: &str, extra: &[&str]) -> (Proc, Endpoint) {
    let mut args = pki.server_args();
    args.extend(["--listen", "127.0.0.1:0", "--forward", default, "-v"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let p = sc_server(&args, None);
    let addr = p.listening().await;
    (p, addr)
}

/// `sc-client --listen 127.0.0.1:0` to `server` with `extra` flags.
async fn entry(pki: &Pki, server: &Endpoint, extra: &[&str]) -> (Proc, Endpoint) {
    let mut args = pki.client_args(&server.to_string());
    args.extend(["--listen", "127.0.0.1:0"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let p = sc_client(&args, None);
    let addr = p.listening().await;
    (p, addr)
}

/// Waits until the entry has ended `n` connections and the exit `n`
/// streams; checks that one session (one handshake) carried them all;
/// returns the exit's stream-end lines.
async fn one_session_carried(client: &Proc, server: &Proc, n: usize) -> Vec<String> {
    client.wait_lines("connection ended", n, WAIT).await;
    assert_eq!(
        client.lines_with("session of streams open").len(),
        1,
        "{}",
        client.log()
    );
    assert_eq!(
        server.lines_with("session start").len(),
        1,
        "{}",
        server.log()
    );
    server.wait_lines("stream end", n, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_share_one_session_and_cost_no_handshake() {
    let pki = Pki::new("streams-share");
    let (_b, backend) = tagged_echo("C").await;
    let (server, server_addr) = server(&pki, &backend, &[]).await;
    let (client, local) = entry(&pki, &server_addr, &[]).await;
    for i in 0..50u32 {
        let msg = format!("hello {i}");
        let (tag, back) = visit(&local, msg.as_bytes()).await.expect("visit");
        assert_eq!((tag.as_str(), back.as_slice()), ("C", msg.as_bytes()));
    }
    let ends = one_session_carried(&client, &server, 50).await;
    assert!(ends.iter().all(|l| l.contains("reason=closed")), "{ends:?}");
}

/// Through the blind relay nothing changes: `sc-proxy` routes the session
/// of streams like any session, so 20 connections through it still cost
/// one handshake, and the relay sees one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_pass_through_the_relay_in_one_session() {
    let pki = Pki::new("streams-relay");
    let (_b, backend) = tagged_echo("C").await;
    let (server, server_addr) = server(&pki, &backend, &[]).await;
    let route = format!("{}={server_addr}", support::SERVER_NAME);
    let proxy = Proc::spawn(
        env!("CARGO_BIN_EXE_sc-proxy"),
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--route".into(),
            route,
        ],
        None,
    );
    let relay = proxy.listening().await;
    let (client, local) = entry(&pki, &relay, &[]).await;
    for i in 0..20u32 {
        let msg = format!("through the relay {i}");
        let (tag, back) = visit(&local, msg.as_bytes()).await.expect("visit");
        assert_eq!((tag.as_str(), back.as_slice()), ("C", msg.as_bytes()));
    }
    one_session_carried(&client, &server, 20).await;
    // The relay carried one session and no more.
    client.signal("TERM");
    let ended = proxy.wait_lines("session end", 1, WAIT).await;
    assert_eq!(ended.len(), 1, "{}", proxy.log());
    assert_eq!(proxy.lines_with("session end").len(), 1, "{}", proxy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_route_streams_and_refuse_with_reasons() {
    let pki = Pki::new("streams-services");
    let (_a, db) = tagged_echo("A").await;
    let (_b, admin) = tagged_echo("B").await;
    let (_c, default) = tagged_echo("C").await;
    let closed = common::ClosedPort::new();
    let refused = closed.addr.to_string();
    pki.write(
        "server.toml",
        &format!(
            "[[service]]\nname = \"db\"\nforward = \"{db}\"\n\n\
             [[service]]\nname = \"admin\"\nforward = \"{admin}\"\nallow_client = [\"ops\"]\n\n\
             [[service]]\nname = \"gone\"\nforward = \"{refused}\"\n"
        ),
    );
    let config = pki.path("server.toml");
    let (_server, server_addr) = server(&pki, &default, &["--config", &config]).await;
    // One sc-client, four tunnels in its config file, one service each.
    pki.write(
        "client.toml",
        &format!(
            "ca = \"ca.pem\"\ncert = \"client.pem\"\nkey = \"client.key\"\nserver_name = \"{}\"\n\
             [[tunnel]]\nlisten = \"127.0.0.1:0\"\nconnect = \"{server_addr}\"\nserver_name = \"{0}\"\nservice = \"db\"\n\
             [[tunnel]]\nlisten = \"127.0.0.1:0\"\nconnect = \"{server_addr}\"\nserver_name = \"{0}\"\nservice = \"admin\"\n\
             [[tunnel]]\nlisten = \"127.0.0.1:0\"\nconnect = \"{server_addr}\"\nserver_name = \"{0}\"\nservice = \"nosuch\"\n\
             [[tunnel]]\nlisten = \"127.0.0.1:0\"\nconnect = \"{server_addr}\"\nserver_name = \"{0}\"\n\
             [[tunnel]]\nlisten = \"127.0.0.1:0\"\nconnect = \"{server_addr}\"\nserver_name = \"{0}\"\nservice = \"gone\"\n",
            support::SERVER_NAME
        ),
    );
    let client = sc_client(&["--config".into(), pki.path("client.toml")], None);
    let listens = client.wait_lines("tunnelling to", 5, WAIT).await;
    let addr = |service: &str| -> Endpoint {
        let line = listens
            .iter()
            .find(|l| match service {
                "-" => !l.contains("service="),
                s => l.contains(&format!("service={s} ")) || l.ends_with(&format!("service={s}")),
            })
            .unwrap_or_else(|| panic!("no tunnel for {service}: {listens:?}"));
        let rest = line.split("listening on ").nth(1).expect("address");
        rest.split(',')
            .next()
            .expect("address")
            .parse()
            .expect("endpoint")
    };
    assert_eq!(visit(&addr("db"), b"q").await.expect("db").0, "A");
    assert_eq!(visit(&addr("-"), b"q").await.expect("default").0, "C");
    // Refused streams: the application sees a reset, the entry says why,
    // and the session (and its other streams) go on.
    for (service, why) in [
        ("admin", "client dns:app-1 may not use service admin"),
        ("nosuch", "unknown service nosuch"),
        ("gone", "refused the connection"),
    ] {
        let e = visit(&addr(service), b"q").await.expect_err(service);
        assert!(!e.contains("no tag"), "{service}: {e}");
        let ended = client
            .wait_lines(&format!("service={service}"), 2, WAIT)
            .await
            .pop()
            .unwrap_or_default();
        assert!(ended.contains(why), "{service}: {ended}");
    }
    assert_eq!(visit(&addr("db"), b"again").await.expect("db").0, "A");
    assert_eq!(
        client.lines_with("session of streams open").len(),
        1,
        "{}",
        client.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_exit_resets_every_stream_at_the_entry() {
    let pki = Pki::new("streams-kill");
    let (_b, backend) = tagged_echo("C").await;
    let (mut server, server_addr) = server(&pki, &backend, &[]).await;
    let (client, local) = entry(&pki, &server_addr, &[]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = local.connect().await.expect("connect");
        let mut tag = [0u8; 1];
        timeout(WAIT, s.read_exact(&mut tag))
            .await
            .expect("tag in time")
            .expect("tag");
        open.push(s);
    }
    server.kill9().await;
    for (i, s) in open.iter_mut().enumerate() {
        let mut rest = Vec::new();
        let r = timeout(WAIT, s.read_to_end(&mut rest))
            .await
            .expect("the cut is seen in time");
        let e = r.expect_err("a reset, never a clean end");
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset,
            "stream {i}: {e}"
        );
    }
    let ended = client.wait_lines("connection ended", 3, WAIT).await;
    assert!(
        ended.iter().all(|l| l.contains("reason=session error")),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_new_binaries_work_together() {
    let pki = Pki::new("streams-mixed");
    let (_b, backend) = tagged_echo("C").await;
    // A client that does not multiplex, to a server that does.
    let (server, server_addr) = server(&pki, &backend, &[]).await;
    let (client, local) = entry(&pki, &server_addr, &["--no-multiplex"]).await;
    for _ in 0..3 {
        assert_eq!(visit(&local, b"x").await.expect("visit").0, "C");
    }
    let ends = server.wait_lines("session end", 3, WAIT).await;
    assert!(ends.iter().all(|l| !l.contains("streams=")), "{ends:?}");
    assert!(client.lines_with("session of streams").is_empty());

    // A client that multiplexes, to a server that does not (the library's
    // Acceptor without streams stands for an older sc-server): one session
    // per connection, and the entry says so.
    let acceptor = Acceptor::new(pki.server_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let old_addr: Endpoint = listener
        .local_addr()
        .expect("addr")
        .to_string()
        .parse()
        .expect("endpoint");
    let old = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(secure) = acceptor.accept(tcp).await else {
                    return;
                };
                assert!(!secure.connection().has_streams());
                if let Ok(plain) = TcpStream::connect(&backend).await {
                    splice(secure, plain, None, None).await;
                }
            });
        }
    });
    let (client, local) = entry(&pki, &old_addr, &[]).await;
    for _ in 0..3 {
        assert_eq!(visit(&local, b"x").await.expect("visit").0, "C");
    }
    client.wait_line("does not take streams").await;
    assert!(client.lines_with("session of streams open").is_empty());
    old.abort();
}

/// SIGTERM to the entry ends its kept session with the authenticated
/// Close: the exit logs a clean end, never a possible truncation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_entry_closes_its_kept_session_cleanly() {
    let pki = Pki::new("streams-stop");
    let (_b, backend) = tagged_echo("C").await;
    let (server, server_addr) = server(&pki, &backend, &[]).await;
    let (client, local) = entry(&pki, &server_addr, &[]).await;
    assert_eq!(visit(&local, b"one").await.expect("visit").0, "C");
    client.wait_line("connection ended").await;
    client.signal("TERM");
    let line = client.wait_line("INFO session of streams ended").await;
    assert!(line.contains("reason=closed by the server"), "{line}");
    let end = server.wait_line("INFO session end").await;
    assert!(end.contains("reason=closed"), "{end}");
    assert!(end.contains("streams=1"), "{end}");
}

/// At the default level the entry logs a stream only when it fails: a
/// refused service gets its line with the reason, a stream that closed
/// cleanly none (its session's line counts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entry_logs_failed_streams_at_the_default_level_only() {
    let pki = Pki::new("streams-quiet");
    let (_b, backend) = tagged_echo("C").await;
    let (_server, server_addr) = server(&pki, &backend, &[]).await;
    let mut args = pki.client_args(&server_addr.to_string());
    args.extend(["--listen", "127.0.0.1:0"].map(String::from));
    let default_service = Proc::spawn(env!("CARGO_BIN_EXE_sc-client"), &args, None);
    let plain = default_service.listening().await;
    args.extend(["--service", "nosuch"].map(String::from));
    let unknown = Proc::spawn(env!("CARGO_BIN_EXE_sc-client"), &args, None);
    let refused = unknown.listening().await;

    assert_eq!(visit(&plain, b"fine").await.expect("visit").0, "C");
    let e = visit(&refused, b"q").await.expect_err("refused");
    assert!(!e.contains("no tag"), "{e}");
    let line = unknown.wait_line("connection ended").await;
    assert!(line.contains("unknown service nosuch"), "{line}");
    // The clean stream's end (under a millisecond after its visit) has
    // long been logged, if it was going to be.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        default_service.lines_with("connection ended").is_empty(),
        "{}",
        default_service.log()
    );
}

/// Exit-side memory per idle stream: 1,000 local connections through one
/// entry (one session), each reads its tag and echoes a message, then all
/// stay open and idle; prints `sc-server`'s RSS before and after (from
/// /proc) and what each idle stream costs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release --test streams -- --ignored --nocapture idle_stream_memory"]
async fn idle_stream_memory() {
    const STREAMS: usize = 1000;
    let pki = Pki::new("streams-memory");
    let (_b, backend) = tagged_echo("M").await;
    let (server, server_addr) = server(&pki, &backend, &["--max-streams", "2000"]).await;
    let (client, local) = entry(
        &pki,
        &server_addr,
        &["--max-connections", "2000", "--max-handshakes", "2000"],
    )
    .await;
    let hold = |n: usize| {
        let local = local.clone();
        async move {
            let mut held = Vec::with_capacity(n);
            for i in 0..n {
                let mut s = timeout(WAIT, local.connect())
                    .await
                    .expect("connect in time")
                    .expect("connect");
                let mut tag = [0u8; 1];
                timeout(WAIT, s.read_exact(&mut tag))
                    .await
                    .expect("tag in time")
                    .expect("tag");
                let msg = format!("idle {i}");
                s.write_all(msg.as_bytes()).await.expect("write");
                let mut back = vec![0u8; msg.len()];
                timeout(WAIT, s.read_exact(&mut back))
                    .await
                    .expect("echo in time")
                    .expect("echo");
                held.push(s);
            }
            held
        }
    };
    // Warm up (the session, thread stacks, allocator arenas), then measure.
    let _warm = hold(20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib();
    let held = hold(STREAMS).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib();
    let per = after.saturating_sub(before) as f64 / STREAMS as f64;
    println!(
        "sc-server: RSS {before} KiB before, {after} KiB with {STREAMS} more idle streams \
         (one session): {per:.2} KiB per stream"
    );
    assert_eq!(
        client.lines_with("session of streams open").len(),
        1,
        "one session carried them all"
    );
    // A copy buffer (256 KiB) or a stream window's worth left behind per
    // idle stream would show as hundreds of KiB each.
    assert!(per < 16.0, "{per:.2} KiB per idle stream");
    drop(held);
}
