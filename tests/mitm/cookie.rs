//! The server side of the cookie sessions: a `CookieJar` in front of the
//! `Acceptor`, as the reference server's driver runs it
//! (`sc-tunnel/src/exit/runtime.rs`, `connection()` and `read_hello`):
//! read the first record, ask the jar, send the HelloRetry, read the
//! answer, ask again (at most two rounds), then hand the bytes read to the
//! `Acceptor` through `sc_net::Replay`, with the handshake timeout that is
//! left. A refusal sends its plaintext alert and lingers as
//! `sc_net::service::refuse` does. What the driver does not do here: a
//! PROXY header (no relay in front), per-source caps and handshake slots.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand_chacha::rand_core::OsRng;
use sc_handshake::cookie::{CookieJar, CookieSource, Decision};
use sc_net::Replay;
use sc_pki::UnixTime;
use sc_session::{Acceptor, Error, SessionConfig};
use sc_wire::first::{classify, Verdict, MAX_HELLO_RECORD};
use sc_wire::{Alert, AlertCode, Codec, RecordHeader, RecordKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{serve, Counted, Ending, Markers, SideReport, HANDSHAKE_TIMEOUT};

/// The driver's reason when no whole first record came in time.
pub(crate) const HELLO_TIMED_OUT: &str = "timeout: no complete ClientHello in time";

/// The driver's `read_hello`: reads until the first record has fully come
/// (or is known not to be a ClientHello record), or the end; `None` at the
/// deadline. Everything read is returned, as the driver keeps it.
async fn read_hello(io: &mut Counted, deadline: Instant) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; MAX_HELLO_RECORD];
    let mut got = 0;
    loop {
        let decided = match classify(&buf[..got]) {
            Verdict::NeedMore => got == buf.len(),
            _ => true,
        };
        if decided {
            buf.truncate(got);
            return Some(buf);
        }
        let read = tokio::time::timeout_at(deadline.into(), io.read(&mut buf[got..])).await;
        match read {
            Ok(Ok(n)) if n > 0 => got += n,
            Ok(_) => {
                buf.truncate(got);
                return Some(buf);
            }
            Err(_) => return None,
        }
    }
}

/// The alert in `head` if it starts with a whole plaintext alert record:
/// the driver reads a peer's alert as a first flight (and refuses it).
fn alert_in(head: &[u8]) -> Option<AlertCode> {
    let header = RecordHeader::decode(head.get(..4)?).ok()?;
    if header.kind != RecordKind::ALERT {
        return None;
    }
    let body = head.get(4..4 + header.len)?;
    Alert::decode(body).ok().map(|a| a.code)
}

/// `sc_net::service::refuse`: the alert, a FIN, then whatever the peer
/// still sends is read and dropped until it closes, within a second.
async fn refuse<IO>(io: IO, alert: AlertCode)
where
    IO: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    sc_net::service::refuse(io, &Alert { code: alert }.plaintext_record()).await;
}

/// One connection of a cookie session. `busy`: the jar is asked as under
/// load (every ClientHello without a cookie gets a HelloRetry); else as
/// not. Returns the report and the source the cookies bind.
pub(crate) async fn server_side(
    acceptor: Acceptor,
    jar: Arc<Mutex<CookieJar>>,
    busy: bool,
    listener: TcpListener,
    m: Arc<Markers>,
    one_byte_reads: Arc<std::sync::atomic::AtomicUsize>,
) -> (SideReport, Option<SocketAddr>) {
    let r = SideReport::new();
    let op = Instant::now();
    let (tcp, peer) = match listener.accept().await {
        Ok(accepted) => accepted,
        Err(e) => return (r.ended(Ending::Failed(e.into()), op), None),
    };
    drop(listener);
    let _ = tcp.set_nodelay(true);
    let mut io = Counted {
        inner: tcp,
        one_byte_reads,
    };
    // The driver's clock starts here, for the hello and the handshake.
    let op = Instant::now();
    let deadline = op + HANDSHAKE_TIMEOUT;
    let source = CookieSource::Ip(peer);
    let mut retried = false;
    let head = loop {
        let Some(head) = read_hello(&mut io, deadline).await else {
            refuse(io, AlertCode::TIMEOUT).await;
            let refused = Ending::Refused {
                alert: AlertCode::TIMEOUT,
                reason: HELLO_TIMED_OUT,
                peer_alert: None,
            };
            return (r.ended(refused, op), Some(peer));
        };
        let decision = jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .first_flight(&head, &source, UnixTime::now(), busy, retried, &mut OsRng);
        match decision {
            Decision::Proceed { .. } => break head,
            Decision::Retry(record) if !retried => {
                retried = true;
                let wrote = tokio::time::timeout_at(deadline.into(), io.write_all(&record)).await;
                match wrote {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return (r.ended(Ending::Failed(e.into()), op), Some(peer)),
                    Err(_) => {
                        let e = std::io::Error::from(std::io::ErrorKind::TimedOut);
                        return (r.ended(Ending::Failed(e.into()), op), Some(peer));
                    }
                }
            }
            // The client's own alert: the driver closes without answering.
            Decision::PeerAlert(code) => {
                return (
                    r.ended(Ending::Failed(Error::PeerAlert(code)), op),
                    Some(peer),
                );
            }
            Decision::Retry(_) | Decision::Refuse { .. } => {
                let (alert, reason) = match decision {
                    Decision::Refuse { alert, reason } => (alert, reason),
                    _ => (AlertCode::HANDSHAKE_FAILURE, "a second cookie retry"),
                };
                let peer_alert = alert_in(&head);
                refuse(io, alert).await;
                let refused = Ending::Refused {
                    alert,
                    reason,
                    peer_alert,
                };
                return (r.ended(refused, op), Some(peer));
            }
        }
    };
    let acceptor = acceptor.with_session_config(SessionConfig {
        handshake_timeout: deadline.saturating_duration_since(Instant::now()),
        ..SessionConfig::default()
    });
    let s = match acceptor.accept(Replay::new(head, io)).await {
        Ok(s) => s,
        Err(e) => return (r.ended(Ending::Failed(e), op), Some(peer)),
    };
    (serve(s, m, r).await, Some(peer))
}
