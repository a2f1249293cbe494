//! The first thing to run: a throwaway CA, a server and a client on loopback
//! TCP in one process. It shows the 13 steps with the order of 7–10 and when
//! each was processed, three echoed messages with their round-trip times, two
//! TCP exchanges carried through a tunnel (entry → streams of one secure
//! session → exit → plaintext backend: the first opens the session, the
//! second costs no handshake), and a summary; it draws the first handshake
//! as a sequence diagram in `handshake.svg` (what `sc-client --trace` draws).
//!
//! ```text
//! cargo run --example demo
//! SC_LOG=trace cargo run --example demo    # more detail
//! ```

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::OsRng;
use sovereign_chain::handshake::{ClientConfig, ServerConfig};
use sovereign_chain::pki::throwaway::ThrowawayPki;
use sovereign_chain::pki::{ServerName, UnixTime};
use sovereign_chain::session::{Acceptor, Connector, MuxSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

// The sequence diagram `sc-client --trace` draws, for `handshake.svg`.
#[path = "../bins/sc-client/trace.rs"]
mod trace;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Every network wait in the demo is bounded by this.
const WAIT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let started = Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SC_LOG")
                .unwrap_or_else(|_| "sc_handshake=debug,sc_session=info".into()),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .event_format(StepFormat { started })
        .init();

    let now = UnixTime::since_unix_epoch(SystemTime::now().duration_since(UNIX_EPOCH)?);
    println!("Sovereign-Chain demo: a throwaway CA, a server and a client on loopback TCP\n");
    let pki = ThrowawayPki::new("demo.server", "demo-client", now, &mut OsRng)?;
    println!(
        "  CA      Sovereign-Chain Throwaway CA (Ed25519, valid 1 day, never written to disk)"
    );
    println!("  server  certificate for DNS:demo.server, EKU serverAuth");
    println!("  client  certificate for DNS:demo-client, EKU clientAuth");

    let client_builder = || -> Result<ClientConfig> {
        Ok(ClientConfig::builder()
            .with_server_verifier(Arc::new(pki.server_verifier()?))
            .with_credential(pki.client.clone())
            .build())
    };
    let client_config = Arc::new(client_builder()?);
    let offered: Vec<String> = client_config
        .suites()
        .iter()
        .map(|s| s.to_string())
        .collect();
    println!(
        "  client offers {} (AES first only where the CPU has AES instructions)",
        offered.join(", ")
    );
    let server_builder = || -> Result<ServerConfig> {
        Ok(ServerConfig::builder()
            .with_client_verifier(Arc::new(pki.client_verifier()?))
            .with_credential(pki.server.clone())
            .build())
    };
    let server_config = Arc::new(server_builder()?);
    let acceptor = Acceptor::new(server_config);
    // The first session records its handshake for `handshake.svg`.
    let connector = trace::traced(Connector::new(client_config));
    let name = ServerName::try_from("demo.server")?;

    // The echo server: answers every message m with "echo: m", as the
    // seed's server did.
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    let acc = acceptor.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = echo.accept().await {
            let acc = acc.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(mut s) = acc.accept(tcp).await else {
                    return;
                };
                while let Ok(Some(m)) = s.recv_message().await {
                    if s.send_message(&[b"echo: ".as_slice(), &m].concat())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    println!("  server  listening on {echo_addr} (echo)\n");

    // The client: the 13 steps are logged as they are processed.
    let tcp = TcpStream::connect(echo_addr).await?;
    tcp.set_nodelay(true)?;
    let hs_start = Instant::now();
    let mut stream =
        tokio::time::timeout(WAIT, connector.connect(name.clone(), None, tcp)).await??;
    let hs_wall = hs_start.elapsed();
    let info = stream.info().clone();
    // Let the server's last log line land, then keep later sessions quiet.
    tokio::time::sleep(Duration::from_millis(5)).await;
    STEPS_SHOWN.store(true, std::sync::atomic::Ordering::Relaxed);
    let svg = std::path::Path::new("handshake.svg");
    trace::save(svg, &info, &format!("{} at {echo_addr}", info.peer()))?;
    println!("\n  the handshake as a sequence diagram: handshake.svg (open it in a browser)");

    println!("\nmessages (the server answers each with \"echo: \"):");
    let mut rtts = Vec::new();
    for m in [
        "hello",
        "the quick brown fox",
        "13 steps, 24 orders, one key per record",
    ] {
        let t = Instant::now();
        stream.send_message(m.as_bytes()).await?;
        let reply = tokio::time::timeout(WAIT, stream.recv_message())
            .await??
            .ok_or("the server closed early")?;
        let rtt = t.elapsed();
        println!(
            "  client: {m:<42} server: {:<48} {}",
            String::from_utf8_lossy(&reply),
            us(rtt)
        );
        rtts.push(rtt);
    }
    stream.shutdown().await?;
    let end = tokio::time::timeout(WAIT, stream.recv_message()).await??;
    let stats = stream.stats();
    let clean = end.is_none();

    // A tunnel, as `sc-client --listen` and `sc-server --forward` run it:
    // an application that knows nothing of Sovereign-Chain talks plaintext
    // TCP to the entry; the entry keeps one secure session to the exit and
    // carries every connection as a stream of it (SPEC §14); the exit talks
    // plaintext to the backend.
    println!(
        "\ntwo tunnelled TCP exchanges: app → entry (plaintext) → a stream of one secure session → exit → backend (plaintext)"
    );
    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let backend_addr = backend.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = backend.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let _ = tcp.read_to_end(&mut req).await;
                let reply = format!(
                    "HTTP/1.0 200 OK\r\n\r\nthe backend saw {} plaintext bytes\n",
                    req.len()
                );
                let _ = tcp.write_all(reply.as_bytes()).await;
            });
        }
    });
    let exit = TcpListener::bind("127.0.0.1:0").await?;
    let exit_addr = exit.local_addr()?;
    let tunnel_acceptor = Acceptor::new(Arc::new(server_builder()?.with_streams(true)));
    tokio::spawn(async move {
        let Ok((tcp, _)) = exit.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(secure) = tunnel_acceptor.accept(tcp).await else {
            return;
        };
        let Ok(session) = MuxSession::new(secure) else {
            return;
        };
        while let Ok((stream, _service)) = session.accept_stream().await {
            tokio::spawn(async move {
                if let Ok(plain) = TcpStream::connect(backend_addr).await {
                    sovereign_chain::tunnel::splice(stream, plain, None, None).await;
                }
            });
        }
    });
    let entry = TcpListener::bind("127.0.0.1:0").await?;
    let entry_addr = entry.local_addr()?;
    let tunnel_connector = Connector::new(Arc::new(client_builder()?.with_streams(true)));
    let tunnel_name = name.clone();
    let tunnel = tokio::spawn(async move {
        let mut session = None;
        let mut reports = Vec::new();
        for _ in 0..2 {
            let (plain, _) = entry.accept().await?;
            // The first connection opens the session; the next one is a
            // stream of it, with no handshake and no round trip.
            let session = match &session {
                Some(s) => s,
                None => {
                    let tcp = TcpStream::connect(exit_addr).await?;
                    tcp.set_nodelay(true)?;
                    let secure = tunnel_connector
                        .connect(tunnel_name.clone(), None, tcp)
                        .await?;
                    let s = MuxSession::new(secure).map_err(|_| "the exit takes no streams")?;
                    session.insert(s)
                }
            };
            let stream = session.open_stream(None)?;
            reports.push(sovereign_chain::tunnel::splice(stream, plain, None, None).await);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(reports)
    });
    let request = b"GET / HTTP/1.0\r\nHost: backend\r\n\r\n";
    let mut times = Vec::new();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        let mut app = TcpStream::connect(entry_addr).await?;
        app.write_all(request).await?;
        app.shutdown().await?;
        let mut reply = Vec::new();
        tokio::time::timeout(WAIT, app.read_to_end(&mut reply)).await??;
        times.push(t.elapsed());
        replies.push(reply);
    }
    let reports = tokio::time::timeout(WAIT, tunnel).await???;
    for (i, ((reply, report), time)) in replies.iter().zip(&reports).zip(&times).enumerate() {
        println!(
            "  app sent     GET / HTTP/1.0 ({} bytes), then closed its sending side",
            request.len()
        );
        for line in String::from_utf8_lossy(reply)
            .lines()
            .filter(|l| !l.is_empty())
        {
            println!("  app got      {line}");
        }
        println!(
            "  entry        {} bytes in, {} bytes out, {} ({}: {})",
            report.plain_to_secure,
            report.secure_to_plain,
            report.end,
            if i == 0 {
                "new session and exchange"
            } else {
                "a stream of the same session, no handshake"
            },
            ms(*time)
        );
    }

    println!("\nsummary");
    println!("  server identity (verified)   {}", info.peer());
    println!("  protocol version             {}", info.version());
    println!("  cipher                       {}", info.cipher());
    println!(
        "  order of steps 7-10          {}  (one of 24, from the order seed)",
        info.step_order()
    );
    println!(
        "  handshake                    {} on loopback ({} wall, incl. connect)",
        ms(info.handshake_duration()),
        ms(hs_wall)
    );
    println!(
        "  message round trips          {}",
        rtts.iter().map(|d| us(*d)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  handshake bytes on the wire  client {} B sent",
        stats.handshake_bytes_sent
    );
    println!(
        "  all bytes on the wire        client {} B sent, {} B received",
        stats.bytes_sent, stats.bytes_received
    );
    println!(
        "  end                          {}",
        if clean {
            "both sides sent an authenticated close"
        } else {
            "the server did not close cleanly"
        }
    );
    println!("  demo run time                {}", ms(started.elapsed()));
    Ok(())
}

/// After the first session, step lines are left out (every tunnelled
/// connection runs the same 13 steps); `SC_LOG` still controls the rest.
static STEPS_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints `   3.1 ms [client] Step 9/13: KeyConfirm1 verified …`.
struct StepFormat {
    started: Instant,
}

#[derive(Default)]
struct Fields {
    message: String,
    role: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "role" {
            self.role = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "side" => self.role = format!("{value:?}").to_lowercase(),
            _ => {}
        }
    }
}

impl<S, N> FormatEvent<S, N> for StepFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut f = Fields::default();
        event.record(&mut f);
        if STEPS_SHOWN.load(std::sync::atomic::Ordering::Relaxed)
            && std::env::var_os("SC_LOG").is_none()
        {
            return Ok(());
        }
        let elapsed = self.started.elapsed().as_secs_f64() * 1000.0;
        let role = if f.role.is_empty() {
            String::new()
        } else {
            format!("[{}] ", f.role)
        };
        writeln!(writer, "  {elapsed:7.2} ms  {role}{}", f.message)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}
