//! Opening sessions to a server ([`Target`]), and saying why one could not
//! be opened — or why one ended — in one line for a person ([`ConnectError`],
//! [`alert_sentence`], [`session_error_sentence`]).

use core::fmt;
use std::io;
use std::time::{Duration, Instant};

use sc_net::{io_reason, Endpoint, Secs, Stream};
use sc_pki::{CertError, ServerName};
use sc_session::{Connector, Error as SessionError, SecureStream, SessionConfig};
use sc_wire::{AlertCode, RouteName};

/// Where sessions go: the server's address, the name its certificate must
/// carry, the route name for a relay, and the [`Connector`] (identity,
/// trust, cipher and session tuning).
#[derive(Clone, Debug)]
pub struct Target {
    /// The server's (or relay's) address.
    pub connect: Endpoint,
    /// The name the server's certificate must carry (DNS name or IP address).
    pub server_name: ServerName<'static>,
    /// The route name sent in the ClientHello, for a relay.
    pub route: Option<RouteName>,
    /// Client configuration and session tuning.
    pub connector: Connector,
}

impl Target {
    /// Connects to the server and runs the handshake. The connection and the
    /// handshake together must complete within the session's handshake
    /// timeout.
    pub async fn connect(&self) -> Result<SecureStream<Stream>, ConnectError> {
        let timeout = self.connector.session_config().handshake_timeout;
        let started = Instant::now();
        let io = match tokio::time::timeout(timeout, self.connect.connect()).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(self.error(ConnectFailure::Unreachable(e))),
            Err(_) => return Err(self.error(ConnectFailure::Timeout)),
        };
        // What the TCP connection took comes off the handshake's time.
        let left = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let connector = if left < timeout {
            let session = SessionConfig {
                handshake_timeout: left,
                ..self.connector.session_config().clone()
            };
            self.connector.clone().with_session_config(session)
        } else {
            self.connector.clone()
        };
        match connector
            .connect(self.server_name.clone(), self.route.clone(), io)
            .await
        {
            Ok(stream) => Ok(stream),
            Err(SessionError::Timeout { .. }) => Err(self.error(ConnectFailure::Timeout)),
            Err(e) => Err(self.error(ConnectFailure::Handshake(e))),
        }
    }

    fn error(&self, failure: ConnectFailure) -> ConnectError {
        ConnectError {
            addr: self.connect.clone(),
            route: self.route.as_ref().map(|r| r.as_str().to_owned()),
            timeout: self.connector.session_config().handshake_timeout,
            failure,
        }
    }
}

/// Why [`Target::connect`] failed. Its `Display` is one line for a person
/// ("server certificate is not valid for 'db.internal' (it names:
/// api.internal)", "cannot connect to 127.0.0.1:9: connection refused",
/// "client certificate revoked"); [`hint`](Self::hint) says what to do,
/// where that helps.
#[derive(Debug)]
pub struct ConnectError {
    addr: Endpoint,
    route: Option<String>,
    timeout: Duration,
    failure: ConnectFailure,
}

/// What went wrong in [`Target::connect`].
#[non_exhaustive]
#[derive(Debug)]
pub enum ConnectFailure {
    /// The connection could not be opened.
    Unreachable(io::Error),
    /// The connection and handshake did not complete within the handshake
    /// timeout.
    Timeout,
    /// The handshake failed.
    Handshake(SessionError),
}

impl ConnectError {
    /// What went wrong.
    pub fn failure(&self) -> &ConnectFailure {
        &self.failure
    }

    /// The server's address.
    pub fn addr(&self) -> &Endpoint {
        &self.addr
    }

    /// What to do about it, where there is something to say.
    pub fn hint(&self) -> Option<String> {
        let addr = &self.addr;
        match &self.failure {
            ConnectFailure::Unreachable(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => Some(format!(
                    "check that the server is running and listening on {addr}"
                )),
                _ => None,
            },
            ConnectFailure::Timeout => Some(format!(
                "check that {addr} is a Sovereign-Chain server and reachable, \
                 or raise --handshake-timeout"
            )),
            ConnectFailure::Handshake(e) => handshake_hint(e, addr),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = &self.addr;
        match &self.failure {
            ConnectFailure::Unreachable(e) => {
                write!(f, "cannot connect to {addr}: {}", io_reason(e))
            }
            ConnectFailure::Timeout => write!(
                f,
                "handshake with {addr} timed out after {}",
                Secs(self.timeout)
            ),
            ConnectFailure::Handshake(e) => {
                f.write_str(&handshake_sentence(e, addr, self.route.as_deref()))
            }
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            ConnectFailure::Unreachable(e) => Some(e),
            ConnectFailure::Timeout => None,
            ConnectFailure::Handshake(e) => Some(e),
        }
    }
}

/// The one-line reason for a failed handshake with the server at `addr`.
fn handshake_sentence(e: &SessionError, addr: &Endpoint, route: Option<&str>) -> String {
    use sc_handshake::{Error as Hs, PeerIncompatible};
    match e {
        SessionError::Handshake(h) => match h {
            Hs::Certificate(c) => server_cert_sentence(c),
            Hs::PeerIncompatible(PeerIncompatible::NoCommonCipher { offered, .. }) => {
                let offered: Vec<String> = offered.iter().map(ToString::to_string).collect();
                format!(
                    "no cipher suite in common with the server (this client offers {})",
                    offered.join(", ")
                )
            }
            Hs::PeerIncompatible(p) => p.to_string(),
            Hs::AlertReceived(code) => alert_sentence(*code, route),
            Hs::InvalidMessage(m) => {
                format!("{addr} did not answer as a Sovereign-Chain server ({m})")
            }
            Hs::PeerMisbehaved(m) => format!("the server broke the protocol: {m}"),
            Hs::Local(s) => format!("handshake failed on this side: {s}"),
            other => format!("handshake with {addr} failed: {other}"),
        },
        SessionError::PeerAlert(code) => alert_sentence(*code, route),
        SessionError::Truncated => {
            format!("{addr} closed the connection during the handshake")
        }
        SessionError::Io(io) => format!(
            "connection to {addr} failed during the handshake: {}",
            io_reason(io.get_ref())
        ),
        SessionError::InvalidMessage(m) => {
            format!("{addr} did not answer as a Sovereign-Chain server ({m})")
        }
        SessionError::DecryptFailed | SessionError::UnexpectedRecord { .. } => {
            format!("the server broke the protocol: {e}")
        }
        other => format!("handshake with {addr} failed: {other}"),
    }
}

/// A refused server certificate, named as the server's.
fn server_cert_sentence(c: &CertError) -> String {
    match c {
        CertError::UnsupportedKey => {
            "the server's certificate does not carry an Ed25519 key (the only kind supported)"
                .to_owned()
        }
        CertError::WrongPurpose => {
            "the server's certificate is not valid for server use (it lacks serverAuth)".to_owned()
        }
        CertError::PinMismatch { presented } => {
            format!("the server's key {presented} matches none of the pinned keys (--pin)")
        }
        CertError::CrlExpired { .. } | CertError::CrlBadSignature | CertError::CrlInvalid(_) => {
            format!("cannot check the server's certificate: {c}")
        }
        other => {
            let text = other.to_string();
            if text.starts_with("certificate") {
                format!("server {text}")
            } else {
                format!("server certificate refused: {text}")
            }
        }
    }
}

/// The alert a failed handshake ended with, received or sent, for the
/// metrics' `alert` label.
pub(crate) fn failure_alert(e: &SessionError) -> Option<AlertCode> {
    match e {
        SessionError::PeerAlert(code)
        | SessionError::Handshake(sc_handshake::Error::AlertReceived(code)) => Some(*code),
        e => e.alert(),
    }
}

/// What the server's alert means for this client, in one line.
pub fn alert_sentence(code: AlertCode, route: Option<&str>) -> String {
    let s = match code {
        AlertCode::CERTIFICATE_REVOKED => "client certificate revoked",
        AlertCode::CERTIFICATE_EXPIRED => "client certificate expired",
        AlertCode::CERTIFICATE_NOT_YET_VALID => "client certificate not yet valid",
        AlertCode::UNKNOWN_ISSUER => {
            "the server does not trust the CA of the client certificate (unknown issuer)"
        }
        AlertCode::WRONG_PURPOSE => {
            "client certificate is not valid for client use (it lacks clientAuth)"
        }
        AlertCode::UNSUPPORTED_CERTIFICATE => {
            "the server refused the client certificate: only Ed25519 keys are supported"
        }
        AlertCode::BAD_CERTIFICATE => "the server refused the client certificate (bad certificate)",
        AlertCode::NOT_AUTHORISED => "the server does not authorise this client",
        AlertCode::ANONYMOUS_NOT_ALLOWED => {
            "the server does not accept anonymous clients; use a client certificate"
        }
        AlertCode::NO_COMMON_CIPHER => "no cipher suite in common with the server",
        AlertCode::PROTOCOL_VERSION => {
            "the server refused this client's protocol version (a server with \
             --min-version 2 refuses a client that speaks only version 1)"
        }
        AlertCode::TIMEOUT => "the server timed out waiting for this client",
        AlertCode::NO_ROUTE => {
            return match route {
                Some(r) => format!("no route for {r}"),
                None => "no route for this session (no route name sent)".to_owned(),
            }
        }
        AlertCode::GOING_AWAY => {
            "the server sent going away: it is shutting down, or at one of its limits \
             (connections, per source, anonymous sessions)"
        }
        AlertCode::INTERNAL_ERROR => "the server failed internally",
        AlertCode::HANDSHAKE_FAILURE => {
            "the server reports a handshake failure (a signature or MAC did not verify)"
        }
        AlertCode::BAD_RECORD => "the server could not authenticate a record from this client",
        other => return format!("the server ended the session: {other}"),
    };
    s.to_owned()
}

fn handshake_hint(e: &SessionError, addr: &Endpoint) -> Option<String> {
    use sc_handshake::Error as Hs;
    let code = match e {
        SessionError::Handshake(Hs::Certificate(c)) => {
            return match c {
                CertError::NameMismatch { expected, .. } => Some(format!(
                    "set --server-name to a name the certificate carries, \
                     or issue the server a certificate for '{expected}'"
                )),
                CertError::UnknownIssuer => Some(
                    "pass the CA that issued the server's certificate with --ca".to_owned(),
                ),
                CertError::Expired { .. } | CertError::NotYetValid { .. } => Some(
                    "renew the server's certificate, or check this machine's clock (--clock-skew)"
                        .to_owned(),
                ),
                CertError::PinMismatch { .. } => Some(
                    "the server's key changed or the pin is wrong; \
                     `sc-ca inspect CERT` shows a certificate's key pin"
                        .to_owned(),
                ),
                CertError::BadSignature => Some(
                    "the server's certificate was not signed by the CA given with --ca \
                     (another CA of the same name?)"
                        .to_owned(),
                ),
                CertError::CrlExpired { .. } => {
                    Some("publish a fresh CRL (sc-ca crl) and pass it with --crl".to_owned())
                }
                _ => None,
            };
        }
        SessionError::Handshake(Hs::PeerIncompatible(
            sc_handshake::PeerIncompatible::NoCommonCipher { .. },
        )) => return Some("try --cipher auto".to_owned()),
        SessionError::Handshake(Hs::PeerIncompatible(
            sc_handshake::PeerIncompatible::VersionBelowMinimum { .. },
        )) => {
            return Some(
                "the server speaks only protocol version 1 (an older server, or sc-server \
                 --max-version 1): upgrade it, or allow version 1 with --min-version 1 \
                 (this client's certificate then goes out before the server proves its key)"
                    .to_owned(),
            )
        }
        SessionError::Handshake(Hs::AlertReceived(code)) | SessionError::PeerAlert(code) => *code,
        SessionError::Truncated => {
            return Some(format!(
                "check that {addr} is a Sovereign-Chain server; its log says why it closed the connection"
            ))
        }
        SessionError::InvalidMessage(_) | SessionError::Handshake(Hs::InvalidMessage(_)) => {
            return Some("check that --connect names a Sovereign-Chain server".to_owned())
        }
        _ => return None,
    };
    let hint = match code {
        AlertCode::CERTIFICATE_REVOKED => "ask the CA for a new client certificate",
        AlertCode::CERTIFICATE_EXPIRED => "renew the client certificate (sc-ca renew NAME)",
        AlertCode::CERTIFICATE_NOT_YET_VALID => "check this machine's clock",
        AlertCode::UNKNOWN_ISSUER => "use a client certificate from a CA the server trusts",
        AlertCode::WRONG_PURPOSE => "issue a client certificate (sc-ca issue client NAME)",
        AlertCode::NOT_AUTHORISED => {
            "ask the server's operator to admit this client (sc-server --allow-client NAME)"
        }
        AlertCode::NO_COMMON_CIPHER => "try --cipher auto",
        AlertCode::GOING_AWAY => "try again later; the server's log says which limit, if any",
        AlertCode::NO_ROUTE => {
            "the relay (or the server's tunnel exit) could not route this session: check \
             --route (default: --server-name) against the relay's routes; its log says why"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

/// The one-line reason an established session ended with `e`.
pub fn session_error_sentence(e: &SessionError) -> String {
    match e {
        SessionError::Truncated => {
            "the server closed the connection without an authenticated close \
             (data may have been cut off)"
                .to_owned()
        }
        // After the handshake only the authenticated server can send an
        // alert (a plaintext one is refused then): `no route` is its tunnel
        // exit failing to reach its backend, not a relay's missing route.
        SessionError::PeerAlert(AlertCode::NO_ROUTE) => {
            "the server could not reach its backend (no route); the server's log says why"
                .to_owned()
        }
        SessionError::PeerAlert(code) => alert_sentence(*code, None),
        SessionError::Io(io) => format!("connection lost: {}", io_reason(io.get_ref())),
        other => format!("session failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_read_as_sentences() {
        assert_eq!(
            alert_sentence(AlertCode::CERTIFICATE_REVOKED, None),
            "client certificate revoked"
        );
        assert_eq!(
            alert_sentence(AlertCode::NO_ROUTE, Some("db")),
            "no route for db"
        );
        assert!(alert_sentence(AlertCode(0xee), None).starts_with("the server ended the session"));
        assert!(alert_sentence(AlertCode::GOING_AWAY, None).contains("going away"));
        // During the handshake `no route` is a relay's; after it, the
        // server's own backend.
        assert_eq!(
            session_error_sentence(&SessionError::PeerAlert(AlertCode::NO_ROUTE)),
            "the server could not reach its backend (no route); the server's log says why"
        );
    }

    #[test]
    fn certificate_errors_name_the_server() {
        let e = CertError::NameMismatch {
            expected: "db.internal".into(),
            presented: vec!["api.internal".into()],
        };
        assert_eq!(
            server_cert_sentence(&e),
            "server certificate is not valid for 'db.internal' (it names: api.internal)"
        );
        assert_eq!(
            server_cert_sentence(&CertError::UnknownIssuer),
            "server certificate issued by an unknown CA"
        );
    }
}
