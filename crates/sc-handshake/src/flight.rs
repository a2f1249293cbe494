//! Reading one record's worth of handshake messages, and the step log.

use sc_pki::CertificateDer;
use sc_wire::{
    CertChain, CertificateBytes, Codec, HandshakeMessage, HandshakeType, ProtocolVersion, Reader,
};

use crate::Level;

use crate::error::{Error, PeerMisbehaved};

/// The handshake messages of one record, read one at a time; each comes with
/// its exact encoding for the transcript. Steps 4, 7 and 9 are read in the
/// layout of the handshake's version (a ServerHello names its own).
pub(crate) struct FlightReader<'a> {
    buf: &'a [u8],
    pos: usize,
    version: ProtocolVersion,
}

impl<'a> FlightReader<'a> {
    /// A reader for a flight of a handshake of `version`.
    pub(crate) fn new(buf: &'a [u8], version: ProtocolVersion) -> Self {
        Self {
            buf,
            pos: 0,
            version,
        }
    }

    /// The next message, which must be of type `expected`.
    pub(crate) fn expect(
        &mut self,
        expected: HandshakeType,
    ) -> Result<(HandshakeMessage, &'a [u8]), Error> {
        let name = expected.name().unwrap_or("handshake message");
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Err(PeerMisbehaved::MissingMessage { expected: name }.into());
        }
        // Check the type before decoding the body, so a message out of order is
        // reported as such rather than as whatever its body fails on.
        let got = HandshakeType(rest[0]);
        if got != expected {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: name,
                got,
            }
            .into());
        }
        let mut r = Reader::new(rest);
        let msg = HandshakeMessage::read_for(self.version, &mut r)?;
        let len = rest.len() - r.left();
        self.pos += len;
        Ok((msg, &rest[..len]))
    }

    /// The type of the next message, if there is one.
    pub(crate) fn peek(&self) -> Option<HandshakeType> {
        self.buf.get(self.pos).map(|t| HandshakeType(*t))
    }

    /// Fails if anything is left after the flight's last message.
    pub(crate) fn finish(self, after: HandshakeType) -> Result<(), Error> {
        if self.pos != self.buf.len() {
            return Err(PeerMisbehaved::ExtraMessages {
                after: after.name().unwrap_or("handshake message"),
            }
            .into());
        }
        Ok(())
    }
}

/// Pulls the payload out of a message already known to be of the right type.
macro_rules! payload {
    ($msg:expr, $variant:ident) => {
        match $msg {
            sc_wire::HandshakeMessage::$variant(inner) => inner,
            other => {
                return Err($crate::error::PeerMisbehaved::UnexpectedMessage {
                    expected: stringify!($variant),
                    got: other.typ(),
                }
                .into())
            }
        }
    };
}
pub(crate) use payload;

/// Logs one step as the seed did, behind the version the handshake runs:
/// `SC/2 Step 9/13: KeyConfirm1 verified`. Before the version is known (the
/// client's ClientHello, which offers it) the line has no version. The two
/// messages of the cookie retry are not steps: `Retry: HelloRetry received
/// …`.
pub(crate) fn log_step(
    role: &'static str,
    version: Option<ProtocolVersion>,
    typ: HandshakeType,
    what: &str,
) {
    let name = typ.name().unwrap_or("?");
    let prefix = version.map(|v| format!("{v} ")).unwrap_or_default();
    if (1..=13).contains(&typ.step()) {
        tracing::debug!(
            target: "sc_handshake",
            role,
            step = typ.step(),
            "{prefix}Step {}/13: {name} {what}",
            typ.step(),
        );
    } else {
        tracing::debug!(target: "sc_handshake", role, "{prefix}Retry: {name} {what}");
    }
}

/// Encodes a message, appends it to `out` and returns its encoding's range.
pub(crate) fn push_message(out: &mut Vec<u8>, msg: &HandshakeMessage) -> core::ops::Range<usize> {
    let start = out.len();
    msg.encode(out);
    start..out.len()
}

/// A record at the wrong protection level is a message out of place.
pub(crate) fn check_level(got: Level, want: Level, expected: HandshakeType) -> Result<(), Error> {
    if got == want {
        return Ok(());
    }
    Err(PeerMisbehaved::WrongProtection {
        expected: expected.name().unwrap_or("handshake message"),
        level: got,
    }
    .into())
}

pub(crate) fn to_der(chain: &CertChain) -> Vec<CertificateDer<'static>> {
    chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect()
}

pub(crate) fn to_wire(chain: &[CertificateDer<'static>]) -> Result<CertChain, Error> {
    let certs = chain
        .iter()
        .map(|c| CertificateBytes::new(c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Local(format!("own certificate chain cannot be sent: {e}")))?;
    CertChain::new(certs)
        .map_err(|e| Error::Local(format!("own certificate chain cannot be sent: {e}")))
}

pub(crate) fn internal(_: crate::crypto::CryptoError) -> Error {
    Error::Local("key derivation failed".into())
}
