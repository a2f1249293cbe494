//! The first thing to run: a throwaway CA, a server and a client, the 13
//! steps with the order of 7–10 and when each was processed, three echoed
//! messages, and a summary.
//!
//! Until the network layer lands the two sides talk in memory: every byte
//! still goes through the real handshake and record layer, exactly as it
//! would over TCP.
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
use sovereign_chain::session::pair::Pair;
use sovereign_chain::session::{SessionConfig, Side};
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let started = Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SC_LOG")
                .unwrap_or_else(|_| "sc_handshake=debug,sc_session=info".into()),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .event_format(StepFormat { started })
        .init();

    let now = UnixTime::since_unix_epoch(SystemTime::now().duration_since(UNIX_EPOCH)?);
    println!("Sovereign-Chain demo: a throwaway CA, a server and a client, in memory\n");
    let pki = ThrowawayPki::new("demo.server", "demo-client", now, &mut OsRng)?;
    println!(
        "  CA      Sovereign-Chain Throwaway CA (Ed25519, valid 1 day, never written to disk)"
    );
    println!("  server  certificate for DNS:demo.server, EKU serverAuth");
    println!("  client  certificate for DNS:demo-client, EKU clientAuth");

    let client = ClientConfig::builder()
        .with_server_verifier(Arc::new(pki.server_verifier()?))
        .with_credential(pki.client.clone())
        .build();
    let offered: Vec<String> = client.suites().iter().map(|s| s.to_string()).collect();
    println!(
        "  client offers {} (AES first only where the CPU has AES instructions)\n",
        offered.join(", ")
    );
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(pki.client_verifier()?))
        .with_credential(pki.server.clone())
        .build();

    let hs_start = Instant::now();
    let mut pair = Pair::new(
        Arc::new(client),
        Arc::new(server),
        ServerName::try_from("demo.server")?,
        SessionConfig::default(),
        now,
        Box::new(OsRng),
    )?;
    // The first message is queued now and rides with step 11: the client
    // sends application data 2 round trips after it starts.
    pair.client.send_message(b"hello")?;
    pair.handshake()?;
    let handshake_time = hs_start.elapsed();
    let summary = pair.client.summary().ok_or("no handshake summary")?.clone();

    println!("\nflights (each is one write; steps 3-13 are encrypted):");
    let contents = [
        "1 ClientHello",
        "2 ServerHello | 3 ServerCertSend, 4 ClientCertRequest",
        "5 ClientCertSend",
        "6 SeedCode, 7 KeyExchange1 / 9 KeyConfirm1 (permuted)",
        "8 KeyExchange2 / 10 KeyConfirm2 (permuted), 11 ClientAuth + \"hello\"",
        "12 ServerAuth | 13 SecureAck",
    ];
    for (i, f) in pair.flights.iter().enumerate() {
        let who = if f.from == Side::Client {
            "client → server"
        } else {
            "server → client"
        };
        println!(
            "  {}. {who}  {:>5} bytes  {}",
            i + 1,
            f.bytes.len(),
            contents.get(i).unwrap_or(&"")
        );
    }

    println!("\nmessages (the server answers each with \"echo: \", as the seed's server did):");
    let mut rtts = Vec::new();
    let mut pending = vec!["hello"];
    for next in [
        "",
        "the quick brown fox",
        "13 steps, 24 orders, one key per record",
    ] {
        let t = Instant::now();
        if !next.is_empty() {
            pair.client.send_message(next.as_bytes())?;
            pending.push(next);
            pair.drive()?;
        }
        while let Some(m) = pair.server.recv_message() {
            pair.server
                .send_message(&[b"echo: ".as_slice(), &m].concat())?;
        }
        pair.drive()?;
        while let Some(reply) = pair.client.recv_message() {
            println!(
                "  client: {:<42} server: {}",
                pending.remove(0),
                String::from_utf8_lossy(&reply)
            );
        }
        rtts.push(t.elapsed());
    }
    pair.client.close()?;
    pair.server.close()?;
    pair.drive()?;
    pair.server.receive_eof()?;
    pair.client.receive_eof()?;

    let (c, s) = (pair.client.stats(), pair.server.stats());
    println!("\nsummary");
    println!("  server identity (verified)   {}", summary.peer);
    println!(
        "  client identity (verified)   {}",
        pair.server
            .summary()
            .map(|s| s.peer.to_string())
            .unwrap_or_default()
    );
    println!("  cipher                       {}", summary.suite);
    println!(
        "  order of steps 7-10          {}  (one of 24, from the order seed)",
        summary.order
    );
    println!(
        "  handshake, wall time         {}  (both sides on one thread, with logging)",
        ms(handshake_time)
    );
    println!(
        "  echo round trips             {}  (in memory)",
        rtts.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  handshake bytes on the wire  client {} B, server {} B",
        c.handshake_bytes_sent, s.handshake_bytes_sent
    );
    println!(
        "  all bytes on the wire        client {} B, server {} B",
        c.bytes_sent, s.bytes_sent
    );
    println!(
        "  session hash                 {}…",
        hex(&summary.session_hash[..8])
    );
    println!("  end                          both sides sent an authenticated close");
    Ok(())
}

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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
