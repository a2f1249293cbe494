//! An attacker in the middle, over real sockets.
//!
//! A record-aware proxy (`tests/mitm/proxy.rs`, in the spirit of OpenSSL's
//! TLSProxy) sits between a real client (`Connector` over a `TcpStream`) and
//! a real server (`Acceptor` over a `TcpStream`) on 127.0.0.1. In every
//! session it applies one manipulation to one target: a handshake flight or
//! one of the first two application records of either direction. It flips a
//! bit (at every byte position of every target, so every byte of one
//! recorded handshake), truncates, writes one byte at a time, delays,
//! duplicates, reorders, replays another session's records, injects a forged
//! record or a forged plaintext alert, or resets the connections.
//!
//! The application at both ends: the client connects with its first message
//! as early data (it rides in flight 5), sends two more, reads the server's
//! three, then closes; the server reads three messages, answers with three,
//! waits for the client's Close and closes. Every message is unique to its
//! session (the markers).
//!
//! Required: writing one byte at a time and delays well under the handshake
//! timeout succeed (both ends clean, every message delivered); everything
//! else fails closed: the side that receives the manipulated bytes ends with
//! a typed `sc_session::Error` within the handshake (or application idle)
//! timeout, the peer learns it through an alert wherever the proxy still
//! forwards (or the failure is a clean one where the connection was cut), no
//! message the application did not send is delivered, no timeout ends a
//! session unless the manipulation lengthened a record (its receiver then
//! waits for bytes that never come), and no key material reaches any log
//! line. The cases where no alert can be read are named in the table: the
//! connection was cut; the hellos were altered, so the two ends' handshake
//! keys differ and neither can open the other's sealed alert; a forged
//! plaintext alert during the handshake is taken as the peer's
//! (unauthenticated by design, SPEC §10.3).
//!
//! The suite also checks itself: every byte of flights 1-6 is flipped
//! exactly once; every cell's sessions were all attacked (the proxy saw the
//! whole target); the log scan's model of the ratchet opens every sealed
//! record of the reference session; and a record key and a private key
//! logged on purpose at the end are found.
//!
//! **Re-keying (SPEC §15).** A second table attacks the three re-key
//! records of sessions whose ends both re-key: the client starts a re-key
//! (`SecureStream::rekey`) right after its handshake, so after its first
//! message (the early data), then goes on as above. Each direction's
//! records are in a fixed order, so the proxy numbers the records of one
//! direction, from 0 (C->S: ClientHello, 5, 8/10+11, d1, **RekeyInit**
//! (4), d2, d3, **RekeySwitch** (7), Close; S->C: ServerHello, 3+4,
//! 6+7/9, 12, 13, **RekeyReply** (5), d1, d2, d3, Close). The suite checks
//! itself that these are the re-key records: in the reference session each
//! opens, under the ratchet model's keys, with its inner type and is the
//! only record of its direction with its length, and in every attacked
//! session the record at the target position has that sealed length (Init
//! 1,307 bytes, Reply 1,211, Switch 27: the 4-byte header, the content,
//! the 3-byte inner trailer, the 16-byte tag). Every byte of each of the
//! three is flipped once (no sampling); besides the manipulations above,
//! the proxy drops the record, or drops it and black-holes everything its
//! sender sends after it (its FIN still passes). A row with no
//! manipulation, the 1-byte writes and the delay must succeed with the
//! re-key complete at both ends (`rekeys_completed() == 1`) and every
//! message delivered; every other session fails closed as above.
//!
//! A dropped record shows at the next record of its direction, which no
//! longer opens (the ratchet). Only where nothing follows does a timeout
//! decide: with the RekeyInit or the Reply black-holed, the client's
//! re-key must end with `RekeyError::Unanswered` after the handshake
//! timeout (1 s in these sessions; with the Reply black-holed the server's
//! wait for the Switch may run out first). A single `SecureStream` measures
//! those waits only as it reads and has no timer, so the application, while
//! it waits for a message, reads again when `rekey_deadline()` passes.
//! With the Switch black-holed, the client's FIN after its Close ends the
//! server's wait first: a truncated session.
//!
//! **The cookie retry (SPEC §4.5).** A third table attacks the two records
//! of the retry, in sessions whose server runs a `CookieJar` in front of
//! its `Acceptor` as the reference server's driver does
//! (`tests/mitm/cookie.rs`, after `connection()` in
//! `sc-tunnel/src/exit/runtime.rs`): busy for every connection, it reads
//! the first record, asks the jar, sends the HelloRetry, reads the answer,
//! asks again, then hands the bytes read to the `Acceptor` through
//! `sc_net::Replay`; a refusal is a plaintext alert. The jar is one for all
//! sessions, as one server's. The client is a plain `Connector` (it answers
//! a retry by default). The wire: C[CH] S[**HelloRetry**] C[**CookieEcho +
//! the same CH**] S[SH, 3+4] ..., so the targets are flights 2 and 3. The
//! suite checks itself that they are what it thinks: in every session the
//! HelloRetry is a 45-byte plaintext handshake record of type 0x81 and the
//! answer a plaintext handshake record that starts with a CookieEcho (0x82)
//! of a 36-byte cookie with a ClientHello behind it; in the reference
//! session the answer repeats the ClientHello byte for byte; and the donor
//! session's answer is valid from the donor's source port and refused from
//! another one. Every byte of both is flipped once (no sampling); besides
//! the manipulations of the first table (no reorder: nothing of either
//! direction follows before the peer answers) and the drop, three are the
//! cookie's own: the answer of another session replayed into this one (its
//! cookie is bound to another source port: `handshake failure`), the
//! answer forwarded without its CookieEcho (`handshake failure`: the answer
//! to a retry has no cookie), and a session whose server is not busy, where
//! the attacker drops the ClientHello and answers it with a forged
//! HelloRetry (the server gets a CookieEcho it never asked for, with a MAC
//! it never made: `handshake failure`). The row with no manipulation, the
//! 1-byte writes and the delay must succeed with every message delivered;
//! every other session fails closed as above, the driver's refusals
//! counting as the server's typed failure with the alert they send. The
//! driver reads the client's plaintext alert as a first flight and refuses
//! it (counted as the alert delivered). A dropped record leaves both ends
//! waiting: the handshake timeout decides, and where both run out together
//! the two timeout alerts cross. The cookie sessions listen on 127.0.0.2
//! where the system has it, so that their TIME_WAIT connections do not take
//! the ports the other tables bind on 127.0.0.1.
//!
//! `cargo test --test mitm -- --nocapture` prints the tables. Set
//! `MITM_DEBUG_LOG=<file>` to keep the captured logs.

#[path = "mitm/cookie.rs"]
mod cookie;
#[path = "mitm/logs.rs"]
mod logs;
#[path = "mitm/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{OsRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sc_handshake::cookie::{
    retry_record, CookieJar, CookieSource, Decision, COOKIE_LEN, RETRY_RECORD_LEN,
};
use sc_handshake::crypto::{CryptoProvider, TAG_LEN};
use sc_handshake::{ClientConfig, ServerConfig};
use sc_pki::{
    issue_leaf, issue_root, Credential, Issuer, KeyPair, LeafSpec, ServerName, TrustAnchors,
    UnixTime, Validity, WebPkiClientVerifier, WebPkiServerVerifier,
};
use sc_session::{Acceptor, Connector, Error, RekeyError, SecureStream, SessionConfig};
use sc_wire::record::{INNER_TRAILER_LEN, RECORD_HEADER_LEN};
use sc_wire::rekey::{INIT_LEN, REPLY_LEN};
use sc_wire::{AlertCode, Codec, Cookie, HandshakeType, InnerType, RecordHeader, RecordKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use logs::{Finding, SecretLog};
use proxy::{Dir, Manipulation, Numbering, Plan, Pos, Recording};

/// The handshake timeout of both ends: short, so stalls end quickly.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The application's wait for a message after the handshake (SPEC §10.5:
/// idle timeouts are the application's); then it aborts with `timeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Allowance for a loaded machine on top of either timeout.
const SLACK: Duration = Duration::from_millis(1500);
/// A side still running after this long hangs.
const HANG: Duration = Duration::from_secs(15);
/// The in-bound delay.
const DELAY: Duration = Duration::from_millis(500);
/// Sessions at once.
const PARALLEL: usize = 16;
/// Sessions at once while the manipulations that must succeed run.
const PARALLEL_QUIET: usize = 4;
/// Messages each way.
const MESSAGES: usize = 3;
/// The handshake timeout of both ends in the re-key sessions, which is also
/// how long a RekeyInit may go unanswered: shorter than the application's
/// idle timeout, so a black-holed Init or Reply ends in the initiator's
/// re-key timeout first.
const REKEY_TIMEOUT: Duration = Duration::from_secs(1);

/// The two suites of sessions run one after the other: each measures
/// timeouts, and each reads the log lines its sessions wrote.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------
// What is attacked, and how.
// ---------------------------------------------------------------------------

/// A target: a handshake flight (its handshake records) or one application
/// data record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Unit {
    F1,
    F2,
    F3,
    F4,
    F5,
    F6,
    ClientData1,
    ClientData2,
    ServerData1,
    ServerData2,
    RekeyInit,
    RekeyReply,
    RekeySwitch,
    HelloRetry,
    CookieAnswer,
}

impl Unit {
    const ALL: [Self; 10] = [
        Self::F1,
        Self::F2,
        Self::F3,
        Self::F4,
        Self::F5,
        Self::F6,
        Self::ClientData1,
        Self::ClientData2,
        Self::ServerData1,
        Self::ServerData2,
    ];

    /// The re-key records, in the re-key sessions.
    const REKEY: [Self; 3] = [Self::RekeyInit, Self::RekeyReply, Self::RekeySwitch];

    /// The cookie retry's records, in the cookie sessions.
    const COOKIE: [Self; 2] = [Self::HelloRetry, Self::CookieAnswer];

    fn short(self) -> &'static str {
        match self {
            Self::F1 => "F1",
            Self::F2 => "F2",
            Self::F3 => "F3",
            Self::F4 => "F4",
            Self::F5 => "F5",
            Self::F6 => "F6",
            Self::ClientData1 => "C>S d1",
            Self::ClientData2 => "C>S d2",
            Self::ServerData1 => "S>C d1",
            Self::ServerData2 => "S>C d2",
            Self::RekeyInit => "Init",
            Self::RekeyReply => "Reply",
            Self::RekeySwitch => "Switch",
            Self::HelloRetry => "Retry",
            Self::CookieAnswer => "Answer",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::F1 => "C->S [1] plaintext ClientHello",
            Self::F2 => "S->C [2] plaintext + [3,4] sealed",
            Self::F3 => "C->S [5]",
            Self::F4 => "S->C [6, 7/9]",
            Self::F5 => "C->S [8/10, 11] (handshake record)",
            Self::F6 => "S->C [12], [13]",
            Self::ClientData1 => "C->S first data record (early data, in flight 5)",
            Self::ClientData2 => "C->S second data record",
            Self::ServerData1 => "S->C first data record (after SecureAck)",
            Self::ServerData2 => "S->C second data record",
            Self::RekeyInit => "C->S record 4: RekeyInit (after d1)",
            Self::RekeyReply => "S->C record 5: RekeyReply (after 13)",
            Self::RekeySwitch => "C->S record 7: RekeySwitch (after d3)",
            Self::HelloRetry => "S->C flight 2: plaintext HelloRetry (the cookie)",
            Self::CookieAnswer => "C->S flight 3: plaintext CookieEcho + the same ClientHello",
        }
    }

    fn dir(self) -> Dir {
        match self {
            Self::F1
            | Self::F3
            | Self::F5
            | Self::ClientData1
            | Self::ClientData2
            | Self::RekeyInit
            | Self::RekeySwitch
            | Self::CookieAnswer => Dir::ClientToServer,
            _ => Dir::ServerToClient,
        }
    }

    /// The unit's records. The wire of a session, by flight:
    /// C[CH] S[SH, 3+4] C[5] S[6+7/9] C[8/10+11, d1] S[12, 13]
    /// C[d2, d3] S[d1, d2, d3] C[Close] S[Close]. The re-key records by
    /// their index among their direction's records (`flight` 0; see
    /// [`Unit::numbering`]).
    fn records(self) -> Vec<Pos> {
        let p = |flight, index| Pos { flight, index };
        match self {
            Self::RekeyInit => vec![p(0, 4)],
            Self::RekeyReply => vec![p(0, 5)],
            Self::RekeySwitch => vec![p(0, 7)],
            // C[CH] S[HelloRetry] C[CookieEcho+CH] S[SH, 3+4] ...
            Self::HelloRetry => vec![p(2, 0)],
            Self::CookieAnswer => vec![p(3, 0)],
            Self::F1 => vec![p(1, 0)],
            Self::F2 => vec![p(2, 0), p(2, 1)],
            Self::F3 => vec![p(3, 0)],
            Self::F4 => vec![p(4, 0)],
            Self::F5 => vec![p(5, 0)],
            Self::F6 => vec![p(6, 0), p(6, 1)],
            Self::ClientData1 => vec![p(5, 1)],
            Self::ClientData2 => vec![p(7, 0)],
            Self::ServerData1 => vec![p(8, 0)],
            Self::ServerData2 => vec![p(8, 1)],
        }
    }

    /// The two records a reorder swaps: the unit's own two, or its record
    /// and the next one of the same direction when that one is sent
    /// without this one being delivered. `None` for F1, F3 and F4: the
    /// handshake is a strict ping-pong there, the next record of the same
    /// direction exists only once this one has been delivered.
    fn reorder_targets(self) -> Option<Vec<Pos>> {
        let p = |flight, index| Pos { flight, index };
        match self {
            Self::F1 | Self::F3 | Self::F4 | Self::HelloRetry | Self::CookieAnswer => None,
            Self::F2 | Self::F6 => Some(self.records()),
            Self::F5 => Some(vec![p(5, 0), p(5, 1)]),
            Self::ClientData1 => Some(vec![p(5, 1), p(7, 0)]),
            Self::ClientData2 => Some(vec![p(7, 0), p(7, 1)]),
            Self::ServerData1 => Some(vec![p(8, 0), p(8, 1)]),
            Self::ServerData2 => Some(vec![p(8, 1), p(8, 2)]),
            // With the next record of the direction: d2, d1 and the Close.
            Self::RekeyInit => Some(vec![p(0, 4), p(0, 5)]),
            Self::RekeyReply => Some(vec![p(0, 5), p(0, 6)]),
            Self::RekeySwitch => Some(vec![p(0, 7), p(0, 8)]),
        }
    }

    fn is_data(self) -> bool {
        matches!(
            self,
            Self::ClientData1 | Self::ClientData2 | Self::ServerData1 | Self::ServerData2
        )
    }

    fn is_rekey(self) -> bool {
        Self::REKEY.contains(&self)
    }

    fn is_cookie(self) -> bool {
        Self::COOKIE.contains(&self)
    }

    /// Whether `record` is what a cookie unit's target must be: a
    /// plaintext handshake record holding a reference HelloRetry (45
    /// bytes, type 0x81), or one starting with a CookieEcho (0x82) of a
    /// reference cookie and holding a ClientHello after it. Other units:
    /// always.
    fn looks_right(self, record: &[u8]) -> bool {
        let handshake = record.first() == Some(&RecordKind::HANDSHAKE.0);
        let typ = record.get(RECORD_HEADER_LEN).copied();
        match self {
            Self::HelloRetry => {
                handshake
                    && record.len() == RETRY_RECORD_LEN
                    && typ == Some(HandshakeType::HELLO_RETRY.0)
            }
            Self::CookieAnswer => {
                // header, CookieEcho (header, length, cookie), ClientHello
                let hello_at = RECORD_HEADER_LEN + 4 + 1 + COOKIE_LEN;
                handshake
                    && typ == Some(HandshakeType::COOKIE_ECHO.0)
                    && record.get(hello_at) == Some(&HandshakeType::CLIENT_HELLO.0)
            }
            _ => true,
        }
    }

    /// How the proxy numbers the unit's records: by flight, or, for the
    /// re-key records (whose flights depend on timing), by direction.
    fn numbering(self) -> Numbering {
        if self.is_rekey() {
            Numbering::Direction(self.dir())
        } else {
            Numbering::Flights
        }
    }

    /// The sealed length of a re-key record: header, content, inner
    /// trailer, tag.
    fn sealed_len(self) -> Option<usize> {
        let content = match self {
            Self::RekeyInit => INIT_LEN,
            Self::RekeyReply => REPLY_LEN,
            Self::RekeySwitch => 4,
            _ => return None,
        };
        Some(RECORD_HEADER_LEN + content + INNER_TRAILER_LEN + TAG_LEN)
    }

    /// The inner type of a re-key record.
    fn inner_type(self) -> Option<InnerType> {
        match self {
            Self::RekeyInit => Some(InnerType::REKEY_INIT),
            Self::RekeyReply => Some(InnerType::REKEY_REPLY),
            Self::RekeySwitch => Some(InnerType::REKEY_SWITCH),
            _ => None,
        }
    }

    /// The unit's records in `rec`, as the proxy numbers them; `None` if
    /// one is missing.
    fn bytes_in<'a>(self, rec: &'a Recording, targets: &[Pos]) -> Option<Vec<&'a [u8]>> {
        targets
            .iter()
            .map(|p| match self.numbering() {
                Numbering::Flights => rec.record(*p),
                Numbering::Direction(d) => rec.nth(d, p.index),
            })
            .collect()
    }

    /// Messages of the unit's direction sent (untouched) before it: in a
    /// re-key session the client's d1 goes before the Init, all three
    /// before the Switch.
    fn data_before(self) -> usize {
        match self {
            Self::ClientData2 | Self::ServerData2 | Self::RekeyInit => 1,
            Self::RekeySwitch => MESSAGES,
            _ => 0,
        }
    }

    /// Messages the unit's sender may receive: those its peer sent before
    /// it could see the manipulation. The server gets the client's early
    /// data (flight 5, authentic) before flight 6 reaches the client.
    /// In a re-key session the Reply's sender (the server) may have all
    /// of the client's messages (sent before the Reply can arrive), and
    /// the Switch's sender (the client) all of the server's (sent before
    /// the Switch arrives).
    fn sender_may_get(self) -> usize {
        match self {
            Self::F6 => 1,
            Self::ServerData1 | Self::ServerData2 => MESSAGES,
            Self::RekeyReply | Self::RekeySwitch => MESSAGES,
            _ => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Flip,
    Truncate,
    Split,
    Delay,
    Duplicate,
    Reorder,
    Replay,
    Inject,
    InjectAlert,
    Reset,
    /// The proxy forwards the target unchanged (the re-key sessions).
    Untouched,
    Drop,
    DropRest,
    /// The cookie sessions: the server is not busy; the attacker drops
    /// the ClientHello and answers it with a forged HelloRetry.
    ForgedRetry,
    /// The cookie sessions: the answer is forwarded without its CookieEcho.
    StripEcho,
}

/// The code of the forged plaintext alert.
const FORGED_ALERT: AlertCode = AlertCode::NOT_AUTHORISED;

impl Kind {
    const ALL: [Self; 10] = [
        Self::Flip,
        Self::Truncate,
        Self::Split,
        Self::Delay,
        Self::Duplicate,
        Self::Reorder,
        Self::Replay,
        Self::Inject,
        Self::InjectAlert,
        Self::Reset,
    ];

    /// The rows of the re-key table.
    const REKEY: [Self; 13] = [
        Self::Untouched,
        Self::Flip,
        Self::Truncate,
        Self::Split,
        Self::Delay,
        Self::Duplicate,
        Self::Drop,
        Self::DropRest,
        Self::Reorder,
        Self::Replay,
        Self::Inject,
        Self::InjectAlert,
        Self::Reset,
    ];

    /// The rows of the cookie table.
    const COOKIE: [Self; 13] = [
        Self::Untouched,
        Self::Flip,
        Self::Truncate,
        Self::Split,
        Self::Delay,
        Self::Duplicate,
        Self::Drop,
        Self::Replay,
        Self::Inject,
        Self::InjectAlert,
        Self::Reset,
        Self::ForgedRetry,
        Self::StripEcho,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Flip => "flip (every byte)",
            Self::Truncate => "truncate + FIN",
            Self::Split => "1-byte writes [ok]",
            Self::Delay => "delay 500 ms [ok]",
            Self::Duplicate => "duplicate",
            Self::Reorder => "reorder",
            Self::Replay => "replay (other session)",
            Self::Inject => "inject forged record",
            Self::InjectAlert => "inject plaintext alert",
            Self::Reset => "reset (RST)",
            Self::Untouched => "none [ok]",
            Self::Drop => "drop",
            Self::DropRest => "drop + black-hole rest",
            Self::ForgedRetry => "forged retry (not busy)",
            Self::StripEcho => "strip the CookieEcho",
        }
    }

    /// Manipulations the session must survive.
    fn succeeds(self) -> bool {
        matches!(self, Self::Split | Self::Delay | Self::Untouched)
    }

    /// Manipulations that cut both connections (no alert can pass).
    fn cuts(self) -> bool {
        matches!(self, Self::Truncate | Self::Reset)
    }
}

struct Scenario {
    id: u64,
    unit: Unit,
    kind: Kind,
    variant: String,
    plan: Plan,
    /// The flip makes a record's length field larger (and still valid):
    /// the receiver waits for body bytes that never come, and only a
    /// timeout can end the session. Every other failure must be detected
    /// from the bytes themselves.
    may_stall: bool,
    /// A cookie session's server does not see the connection come from
    /// this address (the donor's, whose answer a replay carries).
    not_from: Option<SocketAddr>,
}

impl Scenario {
    /// What runs at the two ends of the scenario's session.
    fn ends(&self) -> Ends {
        if self.unit.is_rekey() {
            Ends::Rekey
        } else if self.unit.is_cookie() {
            Ends::Cookie {
                busy: self.kind != Kind::ForgedRetry,
                not_from: self.not_from,
            }
        } else {
            Ends::Plain
        }
    }
}

/// Whether XOR-ing `mask` into byte `at` of the records `records` (in
/// wire order) makes one record's length field larger and still valid.
fn lengthens(records: &[&[u8]], at: usize, mask: u8) -> bool {
    let mut start = 0;
    for r in records {
        if (start..start + r.len()).contains(&at) {
            let off = at - start;
            if !(1..4).contains(&off) {
                return false;
            }
            let Ok(old) = RecordHeader::decode(&r[..4]) else {
                return false;
            };
            let mut head = [r[0], r[1], r[2], r[3]];
            head[off] ^= mask;
            return RecordHeader::decode(&head).is_ok_and(|new| new.len > old.len);
        }
        start += r.len();
    }
    false
}

/// Every manipulation of every unit of `units`; flips at every byte
/// position. The re-key units also get the untouched, drop and black-hole
/// rows.
fn scenarios(reference: &Recording, donor: &Recording, units: &[Unit]) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut push = |unit: Unit, kind, variant: String, targets: Vec<Pos>, manipulation| {
        let id = 1000 + out.len() as u64;
        let may_stall = match &manipulation {
            Manipulation::Flip { at, mask } => {
                let records = unit.bytes_in(reference, &targets).expect("recorded");
                lengthens(&records, *at, *mask)
            }
            _ => false,
        };
        out.push(Scenario {
            id,
            unit,
            kind,
            variant,
            plan: Plan {
                targets,
                manipulation,
                numbering: unit.numbering(),
            },
            may_stall,
            not_from: None,
        });
    };
    for &unit in units {
        let targets = unit.records();
        let bytes = unit
            .bytes_in(reference, &targets)
            .expect("recorded unit")
            .concat();
        let len = bytes.len();
        if unit.is_rekey() {
            for (kind, manipulation) in [
                (Kind::Untouched, Manipulation::Forward),
                (Kind::Drop, Manipulation::Drop),
                (Kind::DropRest, Manipulation::DropRest),
            ] {
                push(unit, kind, String::new(), targets.clone(), manipulation);
            }
        }
        if unit.is_cookie() {
            for (kind, manipulation) in [
                (Kind::Untouched, Manipulation::Forward),
                (Kind::Drop, Manipulation::Drop),
            ] {
                push(unit, kind, String::new(), targets.clone(), manipulation);
            }
        }
        for at in 0..len {
            let mask = 1 << (at % 8);
            push(
                unit,
                Kind::Flip,
                format!("byte {at} ^ {mask:#04x}"),
                targets.clone(),
                Manipulation::Flip { at, mask },
            );
        }
        let mut keeps = vec![1, 4, len / 2, len - 1];
        keeps.dedup();
        for keep in keeps {
            push(
                unit,
                Kind::Truncate,
                format!("keep {keep} of {len}"),
                targets.clone(),
                Manipulation::Truncate { keep },
            );
        }
        push(
            unit,
            Kind::Split,
            String::new(),
            targets.clone(),
            Manipulation::Split,
        );
        push(
            unit,
            Kind::Delay,
            String::new(),
            targets.clone(),
            Manipulation::Delay(DELAY),
        );
        push(
            unit,
            Kind::Duplicate,
            String::new(),
            targets.clone(),
            Manipulation::Duplicate,
        );
        if let Some(pair) = unit.reorder_targets() {
            push(
                unit,
                Kind::Reorder,
                format!("{pair:?}"),
                pair,
                Manipulation::Reorder,
            );
        }
        let replayed = unit
            .bytes_in(donor, &targets)
            .expect("donor record")
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        push(
            unit,
            Kind::Replay,
            String::new(),
            targets.clone(),
            Manipulation::Replay(replayed),
        );
        // A forged record of the kind the receiver expects: a plaintext
        // handshake record of 64 random bytes, or a sealed record as long
        // as the real one.
        let kind = bytes[0];
        let body_len = if kind == RecordKind::SEALED.0 {
            usize::from(bytes[1]) << 16 | usize::from(bytes[2]) << 8 | usize::from(bytes[3])
        } else {
            64
        };
        let mut forged = vec![kind, 0, (body_len >> 8) as u8, body_len as u8];
        let mut body = vec![0u8; body_len];
        ChaCha20Rng::seed_from_u64(len as u64).fill_bytes(&mut body);
        forged.extend_from_slice(&body);
        push(
            unit,
            Kind::Inject,
            format!("{kind:#04x} header, {body_len} random bytes"),
            targets.clone(),
            Manipulation::Inject(forged),
        );
        // A forged plaintext alert in front of the target.
        push(
            unit,
            Kind::InjectAlert,
            format!("{FORGED_ALERT}"),
            targets.clone(),
            Manipulation::Inject(vec![RecordKind::ALERT.0, 0, 0, 1, FORGED_ALERT.0]),
        );
        for keep in [0, len / 2] {
            push(
                unit,
                Kind::Reset,
                format!("after {keep} of {len}"),
                targets.clone(),
                Manipulation::Reset { keep },
            );
        }
        match unit {
            Unit::HelloRetry => {
                // The ClientHello (C->S flight 1) never reaches the server;
                // the client gets a HelloRetry with a cookie of the right
                // form and time, and a MAC the server never made.
                let mut forged = UnixTime::now().as_secs().to_be_bytes()[4..].to_vec();
                let mut mac = [0u8; 32];
                OsRng.fill_bytes(&mut mac);
                forged.extend_from_slice(&mac);
                let cookie = Cookie::new(forged).expect("a 36-byte cookie");
                push(
                    unit,
                    Kind::ForgedRetry,
                    "for the ClientHello, which is dropped".to_owned(),
                    vec![Pos {
                        flight: 1,
                        index: 0,
                    }],
                    Manipulation::AnswerFor(retry_record(&cookie)),
                );
            }
            Unit::CookieAnswer => push(
                unit,
                Kind::StripEcho,
                String::new(),
                targets.clone(),
                Manipulation::StripFirstMessage,
            ),
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The two ends and one session.
// ---------------------------------------------------------------------------

struct World {
    connector: Connector,
    acceptor: Acceptor,
    /// Both ends with re-keying on, and the re-key timeout as handshake
    /// timeout.
    rekey_connector: Connector,
    rekey_acceptor: Acceptor,
    /// The cookie sessions' jar: one server's, shared by all its
    /// connections, so a cookie is valid in another session but for its
    /// source and ClientHello.
    cookies: Arc<Mutex<CookieJar>>,
    secrets: Arc<SecretLog>,
    /// The Ed25519 private keys (seeds) of the CA, the server and the client.
    long_term: Vec<[u8; 32]>,
}

/// An Ed25519 key pair and its 32-byte seed, taken from its PKCS#8 v1 DER
/// (RFC 8410: the seed is the document's last 32 bytes).
fn key_with_seed(rng: &mut ChaCha20Rng) -> (KeyPair, [u8; 32]) {
    let key = KeyPair::generate(rng);
    let der = key.to_pkcs8_der().expect("PKCS#8");
    assert_eq!(der.len(), 48, "a PKCS#8 v1 Ed25519 document");
    assert_eq!(
        der[12..16],
        [0x04, 0x22, 0x04, 0x20],
        "the seed's octet strings"
    );
    let seed: [u8; 32] = der[16..].try_into().expect("32 bytes");
    (key, seed)
}

impl World {
    fn new() -> Self {
        // A root, a server and a client certificate, as `ThrowawayPki`
        // makes them, with the private keys kept for the log scan.
        let rng = &mut ChaCha20Rng::from_seed([7; 32]);
        let validity = Validity::days_from(UnixTime::now(), 1);
        let (ca_key, ca_seed) = key_with_seed(rng);
        let ca_cert = issue_root(&ca_key, "MITM test CA", validity, rng).expect("root certificate");
        let issuer = Issuer {
            cert: &ca_cert,
            key: &ca_key,
        };
        let mut leaf = |spec: &LeafSpec| {
            let (key, seed) = key_with_seed(rng);
            let cert = issue_leaf(&issuer, &key.public_key(), spec, validity, rng).expect("leaf");
            let credential = Credential::new(vec![cert], key).expect("credential");
            (Arc::new(credential), seed)
        };
        let (server_cred, server_seed) = leaf(&LeafSpec::server("server.test"));
        let (client_cred, client_seed) = leaf(&LeafSpec::client("client-1"));
        let anchors = || TrustAnchors::from_der(std::slice::from_ref(&ca_cert)).expect("anchors");
        let secrets = Arc::new(SecretLog::default());
        let client = || {
            ClientConfig::builder()
                .with_server_verifier(Arc::new(WebPkiServerVerifier::new(anchors())))
                .with_credential(client_cred.clone())
                .dangerous_key_log(secrets.clone())
                .build()
        };
        let server = || {
            ServerConfig::builder()
                .with_client_verifier(Arc::new(WebPkiClientVerifier::new(anchors())))
                .with_credential(server_cred.clone())
                .dangerous_key_log(secrets.clone())
                .build()
        };
        let session = SessionConfig {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            ..SessionConfig::default()
        };
        let rekey_session = SessionConfig {
            handshake_timeout: REKEY_TIMEOUT,
            ..SessionConfig::default()
        };
        Self {
            connector: Connector::new(Arc::new(client())).with_session_config(session.clone()),
            acceptor: Acceptor::new(Arc::new(server())).with_session_config(session),
            rekey_connector: Connector::new(Arc::new(client().with_rekey(true)))
                .with_session_config(rekey_session.clone()),
            rekey_acceptor: Acceptor::new(Arc::new(server().with_rekey(true)))
                .with_session_config(rekey_session),
            cookies: Arc::new(Mutex::new(CookieJar::new())),
            secrets,
            long_term: vec![ca_seed, server_seed, client_seed],
        }
    }

    fn provider(&self) -> &'static CryptoProvider {
        self.connector.config().provider()
    }
}

/// The messages of one session, unique to it, all of one length (so the
/// records of every session have the same sizes).
struct Markers {
    client: Vec<Vec<u8>>,
    server: Vec<Vec<u8>>,
}

impl Markers {
    fn new(id: u64) -> Self {
        let nonce = OsRng.next_u64();
        let make = |side: char| -> Vec<Vec<u8>> {
            (1..=MESSAGES)
                .map(|i| format!("{side}{i}-{id:08x}-{nonce:016x}").into_bytes())
                .collect()
        };
        Self {
            client: make('c'),
            server: make('s'),
        }
    }
}

/// How one end's part of a session ended.
#[derive(Debug)]
enum Ending {
    /// Everything sent and received, closes exchanged.
    Clean,
    /// The session failed with this error.
    Failed(Error),
    /// No message within the application's idle timeout after the
    /// handshake: the application aborted with a `timeout` alert.
    IdleTimeout,
    /// The peer's authenticated Close before all its messages.
    ClosedEarly,
    /// A message after the last one.
    ExtraMessage,
    /// Still running after `HANG`.
    Hang,
    /// The task panicked.
    Panicked,
    /// The cookie sessions' server driver refused the connection before
    /// the handshake, with this plaintext alert.
    Refused {
        alert: AlertCode,
        reason: &'static str,
        /// The first flight it refused was the peer's plaintext alert.
        peer_alert: Option<AlertCode>,
    },
}

#[derive(Debug)]
struct SideReport {
    handshake_done: bool,
    delivered: Vec<Vec<u8>>,
    ending: Ending,
    /// How long the operation that ended it took (the handshake, one send
    /// or one receive).
    took: Duration,
    /// Re-keys completed, as the connection counts them at a clean end.
    rekeys: u64,
}

impl SideReport {
    fn new() -> Self {
        Self {
            handshake_done: false,
            delivered: Vec::new(),
            ending: Ending::Clean,
            took: Duration::ZERO,
            rekeys: 0,
        }
    }

    fn ended(mut self, ending: Ending, op: Instant) -> Self {
        self.ending = ending;
        self.took = op.elapsed();
        self
    }

    fn only(ending: Ending) -> Self {
        Self {
            ending,
            ..Self::new()
        }
    }
}

enum Received {
    Message(Vec<u8>),
    Closed,
    Failed(Error),
    Idle,
}

impl Received {
    /// The ending when this was not what the application waited for.
    fn ending(self) -> Ending {
        match self {
            Self::Message(_) => Ending::ExtraMessage,
            Self::Closed => Ending::ClosedEarly,
            Self::Failed(e) => Ending::Failed(e),
            Self::Idle => Ending::IdleTimeout,
        }
    }
}

/// A transport that counts the reads that returned exactly one byte: with
/// whole records on the wire (as every honest sender writes them) there are
/// none, so they show that the receiver saw the 1-byte writes one by one.
struct Counted {
    inner: TcpStream,
    one_byte_reads: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() - before == 1 {
            self.one_byte_reads.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The next message, within the idle timeout. A single `SecureStream`
/// measures the re-key's waits for the peer only as it reads (once caught
/// up with the transport), and it has no timer of its own: when that
/// deadline passes while nothing comes, the application reads again, once
/// per deadline.
async fn receive<IO: AsyncRead + AsyncWrite + Unpin>(s: &mut SecureStream<IO>) -> Received {
    let idle = tokio::time::Instant::now() + IDLE_TIMEOUT;
    let mut looked = None;
    loop {
        let deadline = s
            .connection()
            .rekey_deadline()
            .map(tokio::time::Instant::from_std);
        let wake = match deadline {
            Some(d) if deadline != looked => d.min(idle),
            _ => idle,
        };
        match tokio::time::timeout_at(wake, s.recv_message()).await {
            Ok(Ok(Some(m))) => return Received::Message(m),
            Ok(Ok(None)) => return Received::Closed,
            Ok(Err(e)) => return Received::Failed(e),
            Err(_) if wake < idle => looked = deadline,
            Err(_) => {
                let abort = s.abort(AlertCode::TIMEOUT);
                let _ = tokio::time::timeout(Duration::from_secs(1), abort).await;
                return Received::Idle;
            }
        }
    }
}

async fn client_side(
    connector: Connector,
    addr: SocketAddr,
    m: Arc<Markers>,
    one_byte_reads: Arc<AtomicUsize>,
    rekey: bool,
) -> SideReport {
    let mut r = SideReport::new();
    let mut op = Instant::now();
    let tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) => return r.ended(Ending::Failed(e.into()), op),
    };
    let _ = tcp.set_nodelay(true);
    let tcp = Counted {
        inner: tcp,
        one_byte_reads,
    };
    let name = ServerName::try_from("server.test")
        .expect("name")
        .to_owned();
    op = Instant::now();
    let mut s = match connector
        .connect_with_early_data(name, None, tcp, &m.client[0])
        .await
    {
        Ok(s) => s,
        Err(e) => return r.ended(Ending::Failed(e), op),
    };
    r.handshake_done = true;
    if rekey {
        op = Instant::now();
        if let Err(e) = s.rekey().await {
            return r.ended(Ending::Failed(e), op);
        }
    }
    for msg in &m.client[1..] {
        op = Instant::now();
        if let Err(e) = s.send_message(msg).await {
            return r.ended(Ending::Failed(e), op);
        }
    }
    for _ in 0..MESSAGES {
        op = Instant::now();
        match receive(&mut s).await {
            Received::Message(msg) => r.delivered.push(msg),
            other => return r.ended(other.ending(), op),
        }
    }
    op = Instant::now();
    if let Err(e) = s.shutdown().await {
        return r.ended(Ending::Failed(e.into()), op);
    }
    match receive(&mut s).await {
        Received::Closed => {
            r.rekeys = s.connection().rekeys_completed();
            r.ended(Ending::Clean, op)
        }
        other => r.ended(other.ending(), op),
    }
}

async fn server_side(
    acceptor: Acceptor,
    listener: TcpListener,
    m: Arc<Markers>,
    one_byte_reads: Arc<AtomicUsize>,
) -> SideReport {
    let r = SideReport::new();
    let mut op = Instant::now();
    let tcp = match listener.accept().await {
        Ok((tcp, _)) => tcp,
        Err(e) => return r.ended(Ending::Failed(e.into()), op),
    };
    drop(listener);
    let _ = tcp.set_nodelay(true);
    let tcp = Counted {
        inner: tcp,
        one_byte_reads,
    };
    op = Instant::now();
    match acceptor.accept(tcp).await {
        Ok(s) => serve(s, m, r).await,
        Err(e) => r.ended(Ending::Failed(e), op),
    }
}

/// The server's application once its handshake is done: reads the client's
/// messages, answers, waits for its Close and closes.
async fn serve<IO: AsyncRead + AsyncWrite + Unpin>(
    mut s: SecureStream<IO>,
    m: Arc<Markers>,
    mut r: SideReport,
) -> SideReport {
    let mut op;
    r.handshake_done = true;
    for _ in 0..MESSAGES {
        op = Instant::now();
        match receive(&mut s).await {
            Received::Message(msg) => r.delivered.push(msg),
            other => return r.ended(other.ending(), op),
        }
    }
    for msg in &m.server {
        op = Instant::now();
        if let Err(e) = s.send_message(msg).await {
            return r.ended(Ending::Failed(e), op);
        }
    }
    op = Instant::now();
    match receive(&mut s).await {
        Received::Closed => r.rekeys = s.connection().rekeys_completed(),
        other => return r.ended(other.ending(), op),
    }
    match s.shutdown().await {
        Ok(()) => r.ended(Ending::Clean, op),
        Err(e) => r.ended(Ending::Failed(e.into()), op),
    }
}

async fn bounded(f: impl Future<Output = SideReport>) -> SideReport {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| SideReport::only(Ending::Hang))
}

async fn bounded_with_source(
    f: impl Future<Output = (SideReport, Option<SocketAddr>)>,
) -> (SideReport, Option<SocketAddr>) {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| (SideReport::only(Ending::Hang), None))
}

struct Session {
    client: SideReport,
    server: SideReport,
    /// `None` if the proxy hung or was never reached.
    rec: Option<Recording>,
    markers: Arc<Markers>,
    /// Reads of exactly one byte by the client and by the server.
    client_one_byte_reads: usize,
    server_one_byte_reads: usize,
    /// The server's TCP peer (the proxy's outbound port), which a cookie
    /// binds; cookie sessions only.
    source: Option<SocketAddr>,
}

/// What runs at the two ends of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ends {
    Plain,
    /// Both ends re-key and the client starts one.
    Rekey,
    /// The server runs the reference server's cookie driver in front of
    /// its `Acceptor` (`busy`: every ClientHello without a cookie gets a
    /// HelloRetry; else none does), and sees the connection come from
    /// another address than `not_from`.
    Cookie {
        busy: bool,
        not_from: Option<SocketAddr>,
    },
}

/// One session: a server, a proxy and a client on fresh loopback ports;
/// with `rekey`, both ends re-key and the client starts one.
async fn run_session(world: &World, id: u64, plan: Plan, rekey: bool) -> Session {
    let ends = if rekey { Ends::Rekey } else { Ends::Plain };
    run_session_with(world, id, plan, ends).await
}

/// A listener on a fresh loopback port. The cookie sessions listen on
/// 127.0.0.2 where the system has it (Linux: all of 127/8 is loopback):
/// the connections the tables leave in TIME_WAIT hold ports of their
/// listeners' address, and the three tables together run about 10,000
/// sessions within a minute, near the 28,000 ephemeral ports of Linux's
/// default range.
async fn bind(ends: Ends) -> io::Result<TcpListener> {
    if matches!(ends, Ends::Cookie { .. }) {
        if let Ok(l) = TcpListener::bind("127.0.0.2:0").await {
            return Ok(l);
        }
    }
    TcpListener::bind("127.0.0.1:0").await
}

/// Connects to `to` from a port that is not `not_from`'s: a cookie is bound
/// to its client's address and port, and the system may give a new
/// connection the port an earlier one had.
async fn connect_from_another(
    to: SocketAddr,
    not_from: Option<SocketAddr>,
) -> io::Result<TcpStream> {
    let Some(avoid) = not_from else {
        return TcpStream::connect(to).await;
    };
    // Held while the next is bound, so that one gets another port.
    let mut taken = Vec::new();
    loop {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        if socket.local_addr()? != avoid {
            return socket.connect(to).await;
        }
        taken.push(socket);
    }
}

async fn run_session_with(world: &World, id: u64, plan: Plan, ends: Ends) -> Session {
    let rekey = ends == Ends::Rekey;
    let not_from = match ends {
        Ends::Cookie { not_from, .. } => not_from,
        Ends::Plain | Ends::Rekey => None,
    };
    let (connector, acceptor) = if rekey {
        (&world.rekey_connector, &world.rekey_acceptor)
    } else {
        (&world.connector, &world.acceptor)
    };
    let markers = Arc::new(Markers::new(id));
    let server_l = bind(ends).await.expect("bind the server");
    let proxy_l = bind(ends).await.expect("bind the proxy");
    let server_addr = server_l.local_addr().expect("server address");
    let proxy_addr = proxy_l.local_addr().expect("proxy address");
    let client_reads = Arc::new(AtomicUsize::new(0));
    let server_reads = Arc::new(AtomicUsize::new(0));
    let server = match ends {
        Ends::Cookie { busy, .. } => tokio::spawn(bounded_with_source(cookie::server_side(
            acceptor.clone(),
            world.cookies.clone(),
            busy,
            server_l,
            markers.clone(),
            server_reads.clone(),
        ))),
        Ends::Plain | Ends::Rekey => {
            let plain = server_side(
                acceptor.clone(),
                server_l,
                markers.clone(),
                server_reads.clone(),
            );
            tokio::spawn(bounded_with_source(async move { (plain.await, None) }))
        }
    };
    let mut proxy = tokio::spawn(async move {
        let (c, _) = proxy_l.accept().await.ok()?;
        drop(proxy_l);
        let s = connect_from_another(server_addr, not_from).await.ok()?;
        Some(proxy::run(c, s, plan).await)
    });
    let client = tokio::spawn(bounded(client_side(
        connector.clone(),
        proxy_addr,
        markers.clone(),
        client_reads.clone(),
        rekey,
    )));
    let client = client
        .await
        .unwrap_or_else(|_| SideReport::only(Ending::Panicked));
    let (server, source) = server
        .await
        .unwrap_or_else(|_| (SideReport::only(Ending::Panicked), None));
    let rec = match tokio::time::timeout(HANG, &mut proxy).await {
        Ok(Ok(rec)) => rec,
        _ => {
            proxy.abort();
            None
        }
    };
    Session {
        client,
        server,
        rec,
        markers,
        client_one_byte_reads: client_reads.load(Ordering::Relaxed),
        server_one_byte_reads: server_reads.load(Ordering::Relaxed),
        source,
    }
}

// ---------------------------------------------------------------------------
// Judging a session.
// ---------------------------------------------------------------------------

/// A short name of an error, for the table.
fn error_kind(e: &Error) -> String {
    if let Some(code) = alert_received(e) {
        return format!("PeerAlert({code})");
    }
    match e {
        Error::Io(io) => format!("Io({:?})", io.kind()),
        Error::Timeout { .. } => "Timeout".into(),
        _ => {
            // `Handshake(PeerMisbehaved(UnexpectedMessage { … }))` →
            // `Handshake(PeerMisbehaved(UnexpectedMessage))`.
            let debug = format!("{e:?}");
            let cut = debug.find([' ', '{', '"', ',']).unwrap_or(debug.len());
            let head = debug[..cut].trim_end_matches(['(', ')']);
            let open = head.matches('(').count();
            format!("{head}{}", ")".repeat(open))
        }
    }
}

fn alert_received(e: &Error) -> Option<AlertCode> {
    match e {
        Error::PeerAlert(code) | Error::Handshake(sc_handshake::Error::AlertReceived(code)) => {
            Some(*code)
        }
        _ => None,
    }
}

fn ending_kind(e: &Ending) -> String {
    match e {
        Ending::Clean => "clean".into(),
        Ending::Failed(e) => error_kind(e),
        Ending::IdleTimeout => "app idle timeout (aborts: timeout alert)".into(),
        Ending::ClosedEarly => "CLOSED EARLY".into(),
        Ending::ExtraMessage => "EXTRA MESSAGE".into(),
        Ending::Hang => "HANG".into(),
        Ending::Panicked => "PANIC".into(),
        Ending::Refused {
            alert,
            reason,
            peer_alert,
        } => {
            let read = peer_alert.map_or_else(String::new, |a| {
                format!(" (what it read: the peer's plaintext alert {a})")
            });
            format!("driver refused with {alert}: {reason}{read}")
        }
    }
}

/// The alert an ending sent to the peer.
fn alert_sent(e: &Ending) -> Option<AlertCode> {
    match e {
        Ending::Failed(e) => e.alert(),
        Ending::IdleTimeout => Some(AlertCode::TIMEOUT),
        Ending::Refused { alert, .. } => Some(*alert),
        _ => None,
    }
}

fn alert_got(e: &Ending) -> Option<AlertCode> {
    match e {
        Ending::Failed(e) => alert_received(e),
        Ending::Refused { peer_alert, .. } => *peer_alert,
        _ => None,
    }
}

/// Ended by a timeout: the application's idle timeout, the handshake's,
/// or a re-key's wait for the peer (`Error::io_kind` is `TimedOut` for the
/// last two).
fn timed_out(e: &Ending) -> bool {
    match e {
        Ending::IdleTimeout => true,
        Ending::Failed(e) => e.io_kind() == io::ErrorKind::TimedOut,
        Ending::Refused { reason, .. } => *reason == cookie::HELLO_TIMED_OUT,
        _ => false,
    }
}

fn unanswered(e: &Ending) -> bool {
    matches!(
        e,
        Ending::Failed(Error::Rekey(RekeyError::Unanswered { .. }))
    )
}

/// How the failure reached the other end.
fn alert_outcome(sc: &Scenario, client: &Ending, server: &Ending) -> &'static str {
    if sc.kind.cuts() {
        return "connection cut: no alert can pass";
    }
    for (a, b) in [(client, server), (server, client)] {
        if let (Some(sent), Some(got)) = (alert_sent(a), alert_got(b)) {
            if sent == got {
                return "alert delivered";
            }
        }
    }
    // Nothing the client sends after the target passes, its alert
    // neither; its FIN does (the proxy passes it on), and the server reads
    // a truncated session.
    if sc.kind == Kind::DropRest && sc.unit.dir() == Dir::ClientToServer {
        return "C->S black-holed from the target on: no alert can pass that way; the client's FIN does";
    }
    // With the Reply black-holed both re-key waits run out about together:
    // the client's for the Reply, the server's for the Switch. The server's
    // alert cannot pass; the client's comes after the server failed.
    if sc.kind == Kind::DropRest
        && sc.unit == Unit::RekeyReply
        && unanswered(client)
        && timed_out(server)
    {
        return "S->C black-holed from the Reply on: both re-key waits timed out, the server's alert cannot pass";
    }
    // A dropped cookie record leaves both ends waiting (the handshake is a
    // ping-pong), each until its own handshake timeout, which run out
    // together: the alerts cross, each after its receiver stopped reading.
    if sc.kind == Kind::Drop && sc.unit.is_cookie() && timed_out(client) && timed_out(server) {
        return "dropped: both ends waited out their timeouts, the two timeout alerts crossed";
    }
    // A lengthened record stalls its receiver. Whichever side times out
    // first sends its timeout alert; if that is the stalled side, the alert
    // was delivered (above). If it is the other, its alert (and its FIN)
    // become the awaited body: the stalled side reads a cut record, or, when
    // they fill the lengthened record, a record that does not open.
    // The cookie driver, stalled on the answer, reads the client's alert and
    // FIN as the rest of it: a cut record, which it refuses as no answer.
    let stalled = |a: &Ending, b: &Ending| {
        timed_out(a)
            && (timed_out(b)
                || matches!(b, Ending::Failed(Error::Truncated | Error::DecryptFailed))
                || matches!(
                    b,
                    Ending::Refused {
                        peer_alert: None,
                        ..
                    }
                ))
    };
    if sc.may_stall && (stalled(client, server) || stalled(server, client)) {
        return "stalled on a lengthened record, ended by a timeout";
    }
    // A lengthened record that its sender's FIN cuts (the client's half-close
    // after its Close): Truncated, for which no alert is due, both ways.
    let truncated = |e: &Ending| matches!(e, Ending::Failed(Error::Truncated));
    if sc.may_stall && truncated(client) && truncated(server) {
        return "lengthened record cut by its sender's FIN: Truncated both ways, no alert due";
    }
    let decrypt_failed = |e: &Ending| matches!(e, Ending::Failed(Error::DecryptFailed));
    if matches!(sc.unit, Unit::F1 | Unit::F2)
        && ((decrypt_failed(client) && alert_sent(server).is_some())
            || (decrypt_failed(server) && alert_sent(client).is_some()))
    {
        return "alert sent, unreadable: the hellos were altered, handshake keys differ";
    }
    "OTHER"
}

struct Verdict {
    unit: Unit,
    kind: Kind,
    /// Failed closed (or, for the harmless manipulations, succeeded).
    ok: bool,
    receiver: String,
    peer: String,
    /// The receiver of the manipulated bytes saw the problem itself (its
    /// error is not the peer's alert).
    by_receiver: bool,
    alert: &'static str,
    violations: Vec<String>,
    /// The proxy saw the whole target and applied the manipulation.
    attacked: bool,
    /// The record at a re-key target's position has the re-key record's
    /// sealed length (other units: always).
    target_seen: bool,
    /// Reads of exactly one byte by the receiver.
    one_byte_reads: usize,
    /// The longest failing operation of the two ends.
    slowest: Duration,
}

fn is_prefix(got: &[Vec<u8>], sent: &[Vec<u8>], max: usize) -> bool {
    got.len() <= max && got.iter().zip(sent).all(|(a, b)| a == b)
}

fn judge(sc: &Scenario, s: &Session) -> Verdict {
    let (receiver, sender, to_receiver, to_sender) = match sc.unit.dir() {
        Dir::ClientToServer => (&s.server, &s.client, &s.markers.client, &s.markers.server),
        Dir::ServerToClient => (&s.client, &s.server, &s.markers.server, &s.markers.client),
    };
    let one_byte_reads = match sc.unit.dir() {
        Dir::ClientToServer => s.server_one_byte_reads,
        Dir::ServerToClient => s.client_one_byte_reads,
    };
    let mut v = Vec::new();
    if sc.kind == Kind::Split && one_byte_reads == 0 {
        v.push("the receiver never read a lone byte: the writes were not seen one by one".into());
    }
    match &s.rec {
        None => v.push("the proxy hung or was never reached".to_owned()),
        Some(rec) if !rec.applied => v.push("the target never came".to_owned()),
        Some(_) => {}
    }
    let own = &sc.unit.records()[..1];
    let seen = s
        .rec
        .as_ref()
        .and_then(|rec| sc.unit.bytes_in(rec, own))
        .map(|r| r[0].len());
    let target_seen = if sc.kind == Kind::ForgedRetry {
        // The client answered the forged retry: a CookieEcho and its
        // ClientHello, right after the ClientHello the proxy dropped.
        let rec = s.rec.as_ref();
        let at = |index| rec.and_then(|r| r.record(Pos { flight: 1, index }));
        at(0).is_some_and(|r| r.get(RECORD_HEADER_LEN) == Some(&HandshakeType::CLIENT_HELLO.0))
            && at(1).is_some_and(|r| Unit::CookieAnswer.looks_right(r))
    } else if sc.unit.is_cookie() {
        s.rec
            .as_ref()
            .and_then(|rec| sc.unit.bytes_in(rec, own))
            .is_some_and(|r| sc.unit.looks_right(r[0]))
    } else {
        sc.unit.sealed_len().is_none_or(|len| seen == Some(len))
    };
    if !target_seen {
        v.push(format!(
            "the record at {own:?} is not the {}: {seen:?} bytes",
            sc.unit.short(),
        ));
    }
    if sc.kind == Kind::DropRest
        && matches!(sc.unit, Unit::RekeyInit | Unit::RekeyReply)
        && !unanswered(&s.client.ending)
    {
        v.push(format!(
            "the client's re-key did not time out: {}",
            ending_kind(&s.client.ending)
        ));
    }
    for (side, r) in [("client", &s.client), ("server", &s.server)] {
        if matches!(
            r.ending,
            Ending::Hang | Ending::Panicked | Ending::ClosedEarly | Ending::ExtraMessage
        ) {
            v.push(format!("{side}: {}", ending_kind(&r.ending)));
        }
    }
    if sc.kind.succeeds() {
        for (side, r, sent) in [
            ("client", &s.client, &s.markers.server),
            ("server", &s.server, &s.markers.client),
        ] {
            if !matches!(r.ending, Ending::Clean) || !r.handshake_done {
                v.push(format!(
                    "{side} did not succeed: {}",
                    ending_kind(&r.ending)
                ));
            }
            if &r.delivered != sent {
                v.push(format!(
                    "{side} got {} of {} messages",
                    r.delivered.len(),
                    sent.len()
                ));
            }
            if sc.unit.is_rekey() && r.rekeys != 1 {
                v.push(format!("{side} completed {} re-keys, not 1", r.rekeys));
            }
        }
    } else {
        for (side, r) in [("receiver", receiver), ("sender", sender)] {
            if matches!(r.ending, Ending::Clean) {
                v.push(format!("{side} completed despite the manipulation"));
            }
            let bound = if r.handshake_done {
                IDLE_TIMEOUT
            } else {
                HANDSHAKE_TIMEOUT
            } + SLACK;
            if r.took > bound {
                v.push(format!("{side} failed after {:?} > {bound:?}", r.took));
            }
        }
        // A black hole may leave nothing to detect: a timeout may end it.
        // So may a dropped cookie record: the handshake is a ping-pong, so
        // nothing follows it but the two ends' waits.
        let may_time_out = sc.may_stall
            || sc.kind == Kind::DropRest
            || (sc.kind == Kind::Drop && sc.unit.is_cookie());
        if !may_time_out && (timed_out(&receiver.ending) || timed_out(&sender.ending)) {
            v.push(format!(
                "ended by a timeout, not detected: receiver {}, sender {}",
                ending_kind(&receiver.ending),
                ending_kind(&sender.ending)
            ));
        }
        if !matches!(
            receiver.ending,
            Ending::Failed(_) | Ending::IdleTimeout | Ending::Refused { .. }
        ) {
            v.push(format!(
                "receiver has no typed error: {}",
                ending_kind(&receiver.ending)
            ));
        }
        let dup = usize::from(sc.kind == Kind::Duplicate && sc.unit.is_data());
        if !is_prefix(
            &receiver.delivered,
            to_receiver,
            sc.unit.data_before() + dup,
        ) {
            v.push(format!(
                "receiver delivered {} message(s) it must not",
                receiver.delivered.len()
            ));
        }
        if !is_prefix(&sender.delivered, to_sender, sc.unit.sender_may_get()) {
            v.push(format!(
                "sender delivered {} message(s) it must not",
                sender.delivered.len()
            ));
        }
    }
    let forged_taken =
        matches!(&receiver.ending, Ending::Failed(e) if alert_received(e) == Some(FORGED_ALERT));
    let alert = if sc.kind.succeeds() {
        "-"
    } else if sc.kind == Kind::InjectAlert && forged_taken {
        // SPEC §10.3: a plaintext alert is taken while the handshake runs
        // (the peer may have had no keys to seal it), refused afterwards.
        if receiver.handshake_done {
            v.push("a forged plaintext alert taken after the handshake".to_owned());
        }
        "forged plaintext alert taken as the peer's (handshake running: unauthenticated, SPEC 10.3); the peer sees the cut"
    } else {
        alert_outcome(sc, &s.client.ending, &s.server.ending)
    };
    if alert == "OTHER" {
        v.push(format!(
            "no alert reached the peer: client {}, server {}",
            ending_kind(&s.client.ending),
            ending_kind(&s.server.ending)
        ));
    }
    Verdict {
        unit: sc.unit,
        kind: sc.kind,
        ok: v.is_empty(),
        receiver: ending_kind(&receiver.ending),
        peer: ending_kind(&sender.ending),
        by_receiver: alert_got(&receiver.ending).is_none(),
        alert,
        violations: v
            .into_iter()
            .map(|e| {
                format!(
                    "{} / {} {}: {e}",
                    sc.unit.short(),
                    sc.kind.name(),
                    sc.variant
                )
            })
            .collect(),
        attacked: s.rec.as_ref().is_some_and(|r| r.applied),
        target_seen,
        one_byte_reads,
        slowest: s.client.took.max(s.server.took),
    }
}

// ---------------------------------------------------------------------------
// The suite.
// ---------------------------------------------------------------------------

/// A session without manipulation: its recording.
async fn record(world: &World, id: u64) -> Recording {
    let s = run_session(
        world,
        id,
        Plan {
            targets: Vec::new(),
            manipulation: Manipulation::Forward,
            numbering: Numbering::Flights,
        },
        false,
    )
    .await;
    assert!(
        matches!(
            (&s.client.ending, &s.server.ending),
            (Ending::Clean, Ending::Clean)
        ),
        "clean session: client {:?}, server {:?}",
        s.client.ending,
        s.server.ending
    );
    assert_eq!(s.server.delivered, s.markers.client);
    assert_eq!(s.client.delivered, s.markers.server);
    let rec = s.rec.expect("recording");
    // C[CH] S[SH, 3+4] C[5] S[6+7/9] C[8/10+11, d1] S[12, 13] C[d2, d3]
    // S[d1, d2, d3] C[Close] S[Close]
    let shape: Vec<(Dir, usize)> = rec
        .flights
        .iter()
        .map(|f| (f.dir, f.records.len()))
        .collect();
    let (c, s) = (Dir::ClientToServer, Dir::ServerToClient);
    assert_eq!(
        shape,
        [
            (c, 1),
            (s, 2),
            (c, 1),
            (s, 1),
            (c, 2),
            (s, 2),
            (c, 2),
            (s, 3),
            (c, 1),
            (s, 1)
        ],
        "the flights of a session"
    );
    let kinds: Vec<u8> = rec
        .flights
        .iter()
        .flat_map(|f| &f.records)
        .map(|r| r[0])
        .collect();
    assert_eq!(&kinds[..2], [RecordKind::HANDSHAKE.0; 2], "the two hellos");
    assert_eq!(&kinds[2], &RecordKind::SEALED.0);
    assert!(kinds[2..].iter().all(|k| *k == RecordKind::SEALED.0));
    rec
}

/// Runs every scenario of `list`, `parallel` at once, and judges each.
async fn run_all(world: &Arc<World>, list: Vec<Scenario>, parallel: usize) -> Vec<Verdict> {
    let gate = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(list.len());
    for sc in list {
        let world = world.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let session = run_session_with(&world, sc.id, sc.plan.clone(), sc.ends()).await;
            judge(&sc, &session)
        }));
    }
    let mut verdicts = Vec::with_capacity(tasks.len());
    for t in tasks {
        verdicts.push(t.await.expect("a scenario task panicked"));
    }
    verdicts
}

/// Every byte of flights 1 to 6 of the reference session (the whole
/// handshake, and the early data riding in flight 5) is flipped by exactly
/// one scenario. Returns the number of bytes.
fn check_flip_coverage(list: &[Scenario], reference: &Recording) -> usize {
    let mut flipped: BTreeMap<(Pos, usize), usize> = BTreeMap::new();
    for sc in list {
        let Manipulation::Flip { at, .. } = sc.plan.manipulation else {
            continue;
        };
        let mut start = 0;
        for p in &sc.plan.targets {
            let len = reference.record(*p).expect("recorded").len();
            if (start..start + len).contains(&at) && p.flight <= 6 {
                *flipped.entry((*p, at - start)).or_default() += 1;
            }
            start += len;
        }
    }
    let mut every = BTreeMap::new();
    for (f, flight) in reference.flights.iter().enumerate().take(6) {
        for (index, r) in flight.records.iter().enumerate() {
            let pos = Pos {
                flight: f + 1,
                index,
            };
            for off in 0..r.len() {
                every.insert((pos, off), 1);
            }
        }
    }
    let wrong: Vec<_> = every
        .keys()
        .chain(flipped.keys())
        .filter(|k| flipped.get(k) != every.get(k))
        .take(10)
        .map(|k| (k, flipped.get(k).copied().unwrap_or(0)))
        .collect();
    assert!(
        wrong.is_empty(),
        "bytes not flipped exactly once: {wrong:?}"
    );
    every.len()
}

/// The log scan's model of the ratchet is the real one: with the record
/// keys derived from the reference session's logged chain₀ secrets, every
/// sealed record of that session opens (under the header as AAD). Returns
/// the number of records opened.
fn check_ratchet_model(world: &World, reference: &Recording) -> usize {
    let logged = world.secrets.entries();
    let first = logged
        .first()
        .expect("the reference session logged secrets");
    let session: Vec<_> = logged
        .iter()
        .filter(|l| l.client_random == first.client_random)
        .collect();
    let keys: Vec<logs::RecordKey> = session
        .iter()
        .flat_map(|l| logs::ratchet(world.provider(), l).0)
        .collect();
    let provider = world.provider();
    let mut opened = 0;
    for (f, flight) in reference.flights.iter().enumerate() {
        for (i, r) in flight.records.iter().enumerate() {
            if r[0] != RecordKind::SEALED.0 {
                continue;
            }
            let (ct, tag) = r[4..].split_at(r.len() - 4 - TAG_LEN);
            let tag: [u8; TAG_LEN] = tag.try_into().expect("a tag");
            let opens = keys.iter().any(|k| {
                provider.aeads.iter().any(|aead| {
                    let mut buf = ct.to_vec();
                    aead.open_in_place(&k.key, &k.nonce, &r[..4], &mut buf, &tag)
                        .is_ok()
                })
            });
            assert!(
                opens,
                "record {i} of flight {} opens under a derived key",
                f + 1
            );
            opened += 1;
        }
    }
    assert!(opened >= 14, "{opened} sealed records");
    opened
}

/// One row per kind, one column per unit: `show(cell)`.
fn grid(
    t: &mut String,
    cells: &BTreeMap<(Kind, Unit), Cell>,
    units: &[Unit],
    kinds: impl Iterator<Item = Kind>,
    show: impl Fn(&Cell) -> String,
) {
    for kind in kinds {
        write!(t, "{:24}", kind.name()).expect("write");
        for unit in units {
            let cell = cells
                .get(&(kind, *unit))
                .map_or_else(|| "n/a".to_owned(), &show);
            write!(t, "{cell:>11}").expect("write");
        }
        writeln!(t).expect("write");
    }
}

#[derive(Default)]
struct Cell {
    total: usize,
    attacked: usize,
    ok: usize,
    by_receiver: usize,
    one_byte_reads: usize,
    target_seen: usize,
}

/// The verdicts of one table, by cell and by outcome.
#[derive(Default)]
struct Tally {
    cells: BTreeMap<(Kind, Unit), Cell>,
    outcomes: BTreeMap<Kind, BTreeMap<String, usize>>,
    alerts: BTreeMap<Kind, BTreeMap<&'static str, usize>>,
    violations: Vec<String>,
    slowest: Duration,
}

impl Tally {
    fn new(verdicts: &[Verdict]) -> Self {
        let mut t = Self::default();
        for v in verdicts {
            let c = t.cells.entry((v.kind, v.unit)).or_default();
            c.total += 1;
            c.attacked += usize::from(v.attacked);
            c.ok += usize::from(v.ok);
            c.by_receiver += usize::from(v.by_receiver);
            c.one_byte_reads += v.one_byte_reads;
            c.target_seen += usize::from(v.target_seen);
            *t.outcomes
                .entry(v.kind)
                .or_default()
                .entry(format!("receiver {} / sender {}", v.receiver, v.peer))
                .or_default() += 1;
            *t.alerts
                .entry(v.kind)
                .or_default()
                .entry(v.alert)
                .or_default() += 1;
            t.violations.extend(v.violations.iter().cloned());
            t.slowest = t.slowest.max(v.slowest);
        }
        t
    }

    /// The grids (rows `kinds`, columns `units`) and the outcomes.
    fn write(&self, t: &mut String, units: &[Unit], kinds: &[Kind]) {
        writeln!(
            t,
            "\ndetected / total (fails closed as required); [ok] rows: succeeded / total"
        )
        .expect("write");
        write!(t, "{:24}", "manipulation").expect("write");
        for unit in units {
            write!(t, "{:>11}", unit.short()).expect("write");
        }
        writeln!(t).expect("write");
        grid(t, &self.cells, units, kinds.iter().copied(), |c| {
            format!("{}/{}", c.ok, c.total)
        });
        writeln!(
            t,
            "\nthe receiver of the altered bytes failed on an error of its own, not on reading the \
             peer's alert (where the hellos were altered, its own error can be DecryptFailed on \
             the peer's unreadable alert):"
        )
        .expect("write");
        let failing = kinds.iter().copied().filter(|k| !k.succeeds());
        grid(t, &self.cells, units, failing, |c| {
            format!("{}/{}", c.by_receiver, c.total)
        });
        writeln!(
            t,
            "\nreads that returned a single byte, at the receiver (none where records are \
             written whole):"
        )
        .expect("write");
        let harmless = kinds
            .iter()
            .copied()
            .filter(|k| matches!(k, Kind::Split | Kind::Delay));
        grid(t, &self.cells, units, harmless, |c| {
            c.one_byte_reads.to_string()
        });
        writeln!(
            t,
            "\noutcomes (receiver = the end the altered bytes go to):"
        )
        .expect("write");
        for (kind, by_outcome) in &self.outcomes {
            writeln!(t, "  {}:", kind.name()).expect("write");
            for (what, count) in by_outcome {
                writeln!(t, "    {count:6}  {what}").expect("write");
            }
            for (what, count) in &self.alerts[kind] {
                if *what != "-" {
                    writeln!(t, "    {count:6}  alert: {what}").expect("write");
                }
            }
        }
    }

    /// No violation; every applicable cell of `kinds` × `units` present,
    /// every session in it attacked, as required, its target seen.
    fn check(&self, units: &[Unit], kinds: &[Kind]) {
        assert!(
            self.violations.is_empty(),
            "{} violation(s):\n{}",
            self.violations.len(),
            self.violations
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        for (kind, unit) in kinds.iter().flat_map(|k| units.iter().map(|u| (*k, *u))) {
            let applicable = match kind {
                Kind::Reorder => unit.reorder_targets().is_some(),
                Kind::ForgedRetry => unit == Unit::HelloRetry,
                Kind::StripEcho => unit == Unit::CookieAnswer,
                _ => true,
            };
            assert_eq!(
                self.cells.contains_key(&(kind, unit)),
                applicable,
                "{kind:?} × {unit:?} covered"
            );
            if let Some(c) = self.cells.get(&(kind, unit)) {
                assert_eq!(
                    c.attacked, c.total,
                    "{kind:?} × {unit:?}: every session attacked"
                );
                assert_eq!(
                    c.ok, c.total,
                    "{kind:?} × {unit:?}: every session as required"
                );
                assert_eq!(
                    c.target_seen, c.total,
                    "{kind:?} × {unit:?}: the target seen in every session"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flight_and_first_records_under_attack() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let captured = logs::capture();
    let started = Instant::now();
    let world = Arc::new(World::new());

    // One handshake to learn the flights, another to replay from.
    let reference = record(&world, 1).await;
    let donor = record(&world, 2).await;
    for unit in Unit::ALL {
        let a = reference.bytes(&unit.records()).expect("reference unit");
        let b = donor.bytes(&unit.records()).expect("donor unit");
        assert_eq!(a.len(), b.len(), "{unit:?}: record sizes are fixed");
        assert_ne!(a, b, "{unit:?}: two sessions differ");
    }

    let ratchet_records = check_ratchet_model(&world, &reference);

    let list = scenarios(&reference, &donor, &Unit::ALL);
    let flips_cover = check_flip_coverage(&list, &reference);
    let n = list.len();
    let lengthening = list.iter().filter(|sc| sc.may_stall).count();
    // The manipulations that must succeed run first, on their own: under the
    // load of the flood their timing (1-byte writes with pauses, a 500 ms
    // hold) would be the scheduler's, not the proxy's.
    let (quiet, flood): (Vec<_>, Vec<_>) = list.into_iter().partition(|sc| sc.kind.succeeds());
    let mut verdicts = run_all(&world, quiet, PARALLEL_QUIET).await;
    verdicts.extend(run_all(&world, flood, PARALLEL).await);
    let elapsed = started.elapsed();

    // The table.
    let tally = Tally::new(&verdicts);
    let slowest = tally.slowest;
    let mut t = String::new();
    writeln!(
        t,
        "\n{n} sessions over loopback TCP in {elapsed:.1?} (the 1-byte writes and delays first, \
         {PARALLEL_QUIET} at once, then the rest, {PARALLEL} at once; handshake timeout \
         {HANDSHAKE_TIMEOUT:?}, application idle timeout {IDLE_TIMEOUT:?}; slowest failing \
         operation {slowest:.2?})"
    )
    .expect("write");
    writeln!(
        t,
        "{lengthening} of the flips make a record's length field larger: its receiver waits \
         for bytes that never come, so a timeout may end those (counted below as \
         'stalled'); every other failure must be detected from the bytes, with no timeout"
    )
    .expect("write");
    writeln!(t, "targets:").expect("write");
    for unit in Unit::ALL {
        let len = reference.bytes(&unit.records()).map_or(0, |b| b.len());
        writeln!(
            t,
            "  {:7} {:5} bytes  {}",
            unit.short(),
            len,
            unit.describe()
        )
        .expect("write");
    }
    tally.write(&mut t, &Unit::ALL, &Kind::ALL);

    // No key material in any log line.
    let log = captured.snapshot();
    if let Ok(path) = std::env::var("MITM_DEBUG_LOG") {
        std::fs::write(path, &log).expect("write log");
    }
    let logged = world.secrets.entries();
    let long_term: Vec<&[u8]> = world.long_term.iter().map(|k| &k[..]).collect();
    let material = logs::key_material(world.provider(), &logged, &long_term);
    let scan_started = Instant::now();
    let index = logs::Index::new(&material);
    let found = index.scan(&log);
    let scan_took = scan_started.elapsed();
    let text = String::from_utf8_lossy(&log);
    let lines = text.lines().count();
    writeln!(
        t,
        "\nlogs: {lines} lines ({} bytes) captured at trace level, scanned for {} secrets \
         from the key logs of both ends, the record and chain keys of the first {} records \
         of each of their chains (model checked: it opens all {ratchet_records} sealed \
         records of the reference session) and {} long-term private keys ({} 16-byte \
         windows) in {scan_took:.1?}; found: {}",
        log.len(),
        logged.len(),
        logs::RATCHET_DEPTH,
        long_term.len(),
        material.len(),
        found.len()
    )
    .expect("write");
    writeln!(
        t,
        "every byte of flights 1-6 of the reference session ({flips_cover} bytes) flipped \
         once; wall time {:.1?}",
        started.elapsed()
    )
    .expect("write");
    println!("{t}");

    tally.check(&Unit::ALL, &Kind::ALL);
    assert_no_key_material(&found, &log);
    // The capture saw the handshakes and the failures, on every thread.
    for needle in [
        "Step 1/13",
        "Step 13/13",
        "handshake complete",
        "session failed",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from the logs");
    }
    // Every handshake logs its secrets: 11 per end, both ends of the 2
    // clean sessions at least.
    assert!(logged.len() >= 44, "{} secrets", logged.len());

    // The positive control, end to end: a record key of the reference
    // session logged as hex and the client's private key as a byte list,
    // from a worker thread, are found in what the capture holds.
    let key = logs::ratchet(
        world.provider(),
        logged
            .iter()
            .find(|l| l.label == "CLIENT_CHAIN0")
            .expect("a client chain"),
    )
    .0
    .remove(1)
    .key;
    let seed = world.long_term[2];
    tokio::spawn(async move {
        let hex: String = key[8..24].iter().map(|b| format!("{b:02x}")).collect();
        tracing::warn!(target: "mitm_control", "planted record key {hex}");
        tracing::warn!(target: "mitm_control", "planted private key {:?}", &seed[..]);
    })
    .await
    .expect("the planting task");
    // Only what was logged since the scan above (the rest is clean).
    let log = captured.snapshot().split_off(log.len());
    let planted = index.scan(&log);
    // The hex line holds two windows (bytes 8-24 and 16-32 start in it).
    let forms: Vec<&str> = planted.iter().map(|f| f.form).collect();
    assert_eq!(
        forms,
        ["hex", "hex", "debug list"],
        "the planted lines: {planted:?}"
    );
    assert!(planted.iter().all(|f| f.line(&log).contains("planted")));
}

/// A re-key session without manipulation: its recording. Both ends
/// finished the re-key the client started and got every message; each
/// direction's records are as `Unit::records` numbers them, and the three
/// re-key records are the only ones of their lengths.
async fn record_rekey(world: &World, id: u64) -> Recording {
    let forward = Plan {
        targets: Vec::new(),
        manipulation: Manipulation::Forward,
        numbering: Numbering::Flights,
    };
    let s = run_session(world, id, forward, true).await;
    assert!(
        matches!(
            (&s.client.ending, &s.server.ending),
            (Ending::Clean, Ending::Clean)
        ),
        "clean re-key session: client {:?}, server {:?}",
        s.client.ending,
        s.server.ending
    );
    assert_eq!(s.server.delivered, s.markers.client);
    assert_eq!(s.client.delivered, s.markers.server);
    assert_eq!((s.client.rekeys, s.server.rekeys), (1, 1), "re-keys done");
    let rec = s.rec.expect("recording");
    // C->S: CH, 5, 8/10+11, d1, Init, d2, d3, Switch, Close;
    // S->C: SH, 3+4, 6+7/9, 12, 13, Reply, d1, d2, d3, Close.
    assert_eq!((rec.c2s.len(), rec.s2c.len()), (9, 10), "records each way");
    for unit in Unit::REKEY {
        let len = unit.sealed_len().expect("a re-key unit");
        let all = match unit.dir() {
            Dir::ClientToServer => &rec.c2s,
            Dir::ServerToClient => &rec.s2c,
        };
        let at: Vec<usize> = (0..all.len()).filter(|i| all[*i].len() == len).collect();
        assert_eq!(
            at,
            [unit.records()[0].index],
            "{unit:?}: the only record of {len} bytes"
        );
    }
    rec
}

/// The re-key targets of the reference session are the re-key records:
/// each opens under a record key the ratchet model derives from the logged
/// epoch-0 chains, with the re-key record's inner type, an unpadded
/// content of its length.
fn check_rekey_records(world: &World, reference: &Recording) {
    let logged = world.secrets.entries();
    let first = logged
        .first()
        .expect("the reference session logged secrets");
    let keys: Vec<logs::RecordKey> = logged
        .iter()
        .filter(|l| l.client_random == first.client_random)
        .flat_map(|l| logs::ratchet(world.provider(), l).0)
        .collect();
    let provider = world.provider();
    for unit in Unit::REKEY {
        let r = unit.bytes_in(reference, &unit.records()).expect("recorded")[0];
        let (ct, tag) = r[RECORD_HEADER_LEN..].split_at(r.len() - RECORD_HEADER_LEN - TAG_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().expect("a tag");
        let plain = keys
            .iter()
            .find_map(|k| {
                provider.aeads.iter().find_map(|aead| {
                    let mut buf = ct.to_vec();
                    let aad = &r[..RECORD_HEADER_LEN];
                    let opened = aead.open_in_place(&k.key, &k.nonce, aad, &mut buf, &tag);
                    opened.ok().map(|()| buf)
                })
            })
            .unwrap_or_else(|| panic!("{unit:?} opens under a derived key"));
        let inner = unit.inner_type().expect("a re-key unit");
        let content = r.len() - RECORD_HEADER_LEN - INNER_TRAILER_LEN - TAG_LEN;
        assert_eq!(
            plain[content..],
            [0, 0, inner.0],
            "{unit:?}: no padding, inner type {inner:?}"
        );
    }
}

/// Every byte of each re-key target is flipped by exactly one scenario.
/// Returns the number of bytes.
fn check_rekey_flips(list: &[Scenario], reference: &Recording) -> usize {
    let mut total = 0;
    for unit in Unit::REKEY {
        let len = unit.bytes_in(reference, &unit.records()).expect("recorded")[0].len();
        let mut flipped: Vec<usize> = list
            .iter()
            .filter(|sc| sc.unit == unit)
            .filter_map(|sc| match sc.plan.manipulation {
                Manipulation::Flip { at, .. } => Some(at),
                _ => None,
            })
            .collect();
        flipped.sort_unstable();
        assert!(
            flipped.iter().copied().eq(0..len),
            "{unit:?}: every byte flipped once"
        );
        total += len;
    }
    total
}

/// The re-key records (SPEC §15) under attack: the second table of the
/// module doc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_key_records_under_attack() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let captured = logs::capture();
    let log_start = captured.snapshot().len();
    let started = Instant::now();
    let world = Arc::new(World::new());

    let reference = record_rekey(&world, 1).await;
    let donor = record_rekey(&world, 2).await;
    for unit in Unit::REKEY {
        let a = unit
            .bytes_in(&reference, &unit.records())
            .expect("reference");
        let b = unit.bytes_in(&donor, &unit.records()).expect("donor");
        assert_eq!(a[0].len(), b[0].len(), "{unit:?}: record sizes are fixed");
        assert_ne!(a, b, "{unit:?}: two sessions differ");
    }
    check_rekey_records(&world, &reference);

    let list = scenarios(&reference, &donor, &Unit::REKEY);
    let flips_cover = check_rekey_flips(&list, &reference);
    let n = list.len();
    let lengthening = list.iter().filter(|sc| sc.may_stall).count();
    let (quiet, flood): (Vec<_>, Vec<_>) = list.into_iter().partition(|sc| sc.kind.succeeds());
    let mut verdicts = run_all(&world, quiet, PARALLEL_QUIET).await;
    verdicts.extend(run_all(&world, flood, PARALLEL).await);
    let elapsed = started.elapsed();

    let tally = Tally::new(&verdicts);
    let slowest = tally.slowest;
    let mut t = String::new();
    writeln!(
        t,
        "\n{n} re-key sessions over loopback TCP in {elapsed:.1?} (the [ok] rows first, \
         {PARALLEL_QUIET} at once, then the rest, {PARALLEL} at once; handshake and re-key \
         timeout {REKEY_TIMEOUT:?}, application idle timeout {IDLE_TIMEOUT:?}; slowest \
         failing operation {slowest:.2?}); both ends re-key, the client starts one after \
         its first message; {lengthening} flips lengthen a record"
    )
    .expect("write");
    writeln!(
        t,
        "targets (each opens in the reference session under the ratchet model's keys with \
         its inner type; in every session the proxy saw a record of its length there):"
    )
    .expect("write");
    for unit in Unit::REKEY {
        writeln!(
            t,
            "  {:7} {:5} bytes  {}",
            unit.short(),
            unit.sealed_len().unwrap_or(0),
            unit.describe()
        )
        .expect("write");
    }
    tally.write(&mut t, &Unit::REKEY, &Kind::REKEY);

    // No key material in the lines these sessions logged.
    let log = captured.snapshot().split_off(log_start);
    let logged = world.secrets.entries();
    let long_term: Vec<&[u8]> = world.long_term.iter().map(|k| &k[..]).collect();
    let material = logs::key_material(world.provider(), &logged, &long_term);
    let found = logs::Index::new(&material).scan(&log);
    let text = String::from_utf8_lossy(&log);
    writeln!(
        t,
        "\nlogs: {} lines scanned for the key-log secrets of both ends, their first record \
         keys and the long-term keys; found: {}",
        text.lines().count(),
        found.len()
    )
    .expect("write");
    writeln!(
        t,
        "every byte of the three re-key records ({flips_cover} bytes) flipped once; wall \
         time {:.1?}",
        started.elapsed()
    )
    .expect("write");
    println!("{t}");

    tally.check(&Unit::REKEY, &Kind::REKEY);
    assert_no_key_material(&found, &log);
    assert!(
        text.contains("re-key complete"),
        "the re-keys are in the logs"
    );
}

/// A cookie session without manipulation (the server busy): its recording
/// and the source its cookie is bound to. Both ends finished, every message
/// delivered; the flights are those of a session with the HelloRetry and
/// the answer between the ClientHello and the ServerHello, and the answer
/// repeats the ClientHello byte for byte. The server does not see it come
/// from `not_from`.
async fn record_cookie(
    world: &World,
    id: u64,
    not_from: Option<SocketAddr>,
) -> (Recording, SocketAddr) {
    let forward = Plan {
        targets: Vec::new(),
        manipulation: Manipulation::Forward,
        numbering: Numbering::Flights,
    };
    let ends = Ends::Cookie {
        busy: true,
        not_from,
    };
    let s = run_session_with(world, id, forward, ends).await;
    assert!(
        matches!(
            (&s.client.ending, &s.server.ending),
            (Ending::Clean, Ending::Clean)
        ),
        "clean cookie session: client {:?}, server {:?}",
        s.client.ending,
        s.server.ending
    );
    assert_eq!(s.server.delivered, s.markers.client);
    assert_eq!(s.client.delivered, s.markers.server);
    let rec = s.rec.expect("recording");
    // C[CH] S[HelloRetry] C[CookieEcho+CH] S[SH, 3+4] C[5] S[6+7/9]
    // C[8/10+11, d1] S[12, 13] C[d2, d3] S[d1, d2, d3] C[Close] S[Close]
    let shape: Vec<(Dir, usize)> = rec
        .flights
        .iter()
        .map(|f| (f.dir, f.records.len()))
        .collect();
    let (c, v) = (Dir::ClientToServer, Dir::ServerToClient);
    assert_eq!(
        shape,
        [
            (c, 1),
            (v, 1),
            (c, 1),
            (v, 2),
            (c, 1),
            (v, 1),
            (c, 2),
            (v, 2),
            (c, 2),
            (v, 3),
            (c, 1),
            (v, 1)
        ],
        "the flights of a retried session"
    );
    for unit in Unit::COOKIE {
        let r = unit.bytes_in(&rec, &unit.records()).expect("recorded")[0];
        assert!(unit.looks_right(r), "{unit:?}: {:02x?}", &r[..8]);
    }
    let hello = rec.record(Pos {
        flight: 1,
        index: 0,
    });
    let answer = rec.record(Pos {
        flight: 3,
        index: 0,
    });
    let (hello, answer) = (hello.expect("hello"), answer.expect("answer"));
    assert_eq!(
        answer[answer.len() - (hello.len() - RECORD_HEADER_LEN)..],
        hello[RECORD_HEADER_LEN..],
        "the answer repeats the ClientHello"
    );
    (rec, s.source.expect("the server's peer"))
}

/// The cookie retry (SPEC §4.5) under attack: the third table of the
/// module doc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_retry_under_attack() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let captured = logs::capture();
    let log_start = captured.snapshot().len();
    let started = Instant::now();
    let world = Arc::new(World::new());

    let (reference, reference_source) = record_cookie(&world, 1, None).await;
    let (donor, donor_source) = record_cookie(&world, 2, Some(reference_source)).await;
    for unit in Unit::COOKIE {
        let a = unit
            .bytes_in(&reference, &unit.records())
            .expect("reference");
        let b = unit.bytes_in(&donor, &unit.records()).expect("donor");
        assert_eq!(a[0].len(), b[0].len(), "{unit:?}: record sizes are fixed");
        assert_ne!(a, b, "{unit:?}: two sessions differ");
    }
    assert_ne!(reference_source, donor_source, "two source ports");

    let list = scenarios(&reference, &donor, &Unit::COOKIE);
    // Every byte of both records flipped once.
    let mut flips_cover = 0;
    for unit in Unit::COOKIE {
        let len = unit
            .bytes_in(&reference, &unit.records())
            .expect("recorded")[0]
            .len();
        let mut flipped: Vec<usize> = list
            .iter()
            .filter(|sc| sc.unit == unit)
            .filter_map(|sc| match sc.plan.manipulation {
                Manipulation::Flip { at, .. } => Some(at),
                _ => None,
            })
            .collect();
        flipped.sort_unstable();
        assert!(
            flipped.iter().copied().eq(0..len),
            "{unit:?}: every byte flipped once"
        );
        flips_cover += len;
    }
    let n = list.len();
    let lengthening = list.iter().filter(|sc| sc.may_stall).count();
    let (quiet, mut flood): (Vec<_>, Vec<_>) = list.into_iter().partition(|sc| sc.kind.succeeds());
    for sc in &mut flood {
        if sc.kind == Kind::Replay && sc.unit == Unit::CookieAnswer {
            sc.not_from = Some(donor_source);
        }
    }
    // The replays and the forged cookie first: their cookies are to be
    // refused for their source, ClientHello or MAC, not as too old.
    flood.sort_by_key(|sc| !matches!(sc.kind, Kind::Replay | Kind::ForgedRetry));
    // The donor's answer is a valid cookie for the donor's source, not for
    // another one: what the replay into another connection tests.
    let donor_answer = Unit::CookieAnswer
        .bytes_in(&donor, &Unit::CookieAnswer.records())
        .expect("donor")[0]
        .to_vec();
    let decide = |source| {
        world.cookies.lock().expect("the jar").first_flight(
            &donor_answer,
            &CookieSource::Ip(source),
            UnixTime::now(),
            true,
            true,
            &mut OsRng,
        )
    };
    assert_eq!(
        decide(donor_source),
        Decision::Proceed { retried: true },
        "the donor's answer, from the donor"
    );
    assert!(
        matches!(
            decide(reference_source),
            Decision::Refuse {
                alert: AlertCode::HANDSHAKE_FAILURE,
                ..
            }
        ),
        "the donor's answer, from another port"
    );
    let mut verdicts = run_all(&world, flood, PARALLEL).await;
    verdicts.extend(run_all(&world, quiet, PARALLEL_QUIET).await);
    let elapsed = started.elapsed();

    let tally = Tally::new(&verdicts);
    let slowest = tally.slowest;
    let mut t = String::new();
    writeln!(
        t,
        "\n{n} cookie sessions over loopback TCP in {elapsed:.1?} (the server busy: a HelloRetry \
         for every ClientHello without a cookie; the failing rows first, {PARALLEL} at once, \
         the replays and the forged cookie before the rest, then the [ok] rows, \
         {PARALLEL_QUIET} at once; handshake timeout {HANDSHAKE_TIMEOUT:?} from the accept, \
         hello included; slowest failing operation {slowest:.2?}); {lengthening} flips \
         lengthen a record"
    )
    .expect("write");
    writeln!(
        t,
        "targets (checked in every session: the HelloRetry is a {RETRY_RECORD_LEN}-byte \
         plaintext handshake record of type 0x81; the answer starts with a CookieEcho, 0x82, \
         its ClientHello behind it):"
    )
    .expect("write");
    for unit in Unit::COOKIE {
        let len = unit
            .bytes_in(&reference, &unit.records())
            .expect("recorded")[0]
            .len();
        writeln!(
            t,
            "  {:7} {:5} bytes  {}",
            unit.short(),
            len,
            unit.describe()
        )
        .expect("write");
    }
    tally.write(&mut t, &Unit::COOKIE, &Kind::COOKIE);

    let log = captured.snapshot().split_off(log_start);
    let logged = world.secrets.entries();
    let long_term: Vec<&[u8]> = world.long_term.iter().map(|k| &k[..]).collect();
    let material = logs::key_material(world.provider(), &logged, &long_term);
    let found = logs::Index::new(&material).scan(&log);
    let text = String::from_utf8_lossy(&log);
    writeln!(
        t,
        "\nlogs: {} lines scanned for the key-log secrets of both ends, their first record \
         keys and the long-term keys; found: {}",
        text.lines().count(),
        found.len()
    )
    .expect("write");
    writeln!(
        t,
        "every byte of the HelloRetry and the answer ({flips_cover} bytes) flipped once; \
         wall time {:.1?}",
        started.elapsed()
    )
    .expect("write");
    println!("{t}");

    tally.check(&Unit::COOKIE, &Kind::COOKIE);
    assert_no_key_material(&found, &log);
    for needle in [
        "asks for its 36-byte cookie back",
        "bound into the transcript",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from the logs");
    }
}

/// The scan finds a secret in each form it looks for (its negative control).
#[test]
fn the_log_scan_finds_planted_secrets() {
    let secret: [u8; 16] = *b"\x8f\x01\xfe\x10\x00\x7a\x33\xc4\x99\x12\xab\xcd\xef\x01\x02\x03";
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let other = [[0x11u8; 16]];
    let mut log = b"INFO nothing here\n".to_vec();
    assert!(logs::scan(&log, &[secret]).is_empty());
    log.extend_from_slice(format!("key={} ", hex.to_uppercase()).as_bytes());
    log.extend_from_slice(format!("dbg={:?} raw=", &secret[..]).as_bytes());
    log.extend_from_slice(&secret);
    let found = logs::scan(&log, &[secret]);
    let forms: Vec<&str> = found.iter().map(|f| f.form).collect();
    assert_eq!(forms, ["hex", "debug list", "raw"]);
    assert!(found.iter().all(|f| f.line(&log).starts_with("key=")));
    assert!(logs::scan(&log, &other).is_empty());
}

/// The judge's negative control: a session the proxy left alone is a
/// violation where a manipulation must fail, and a cut session is one
/// where it must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_flags_sessions_that_do_not_meet_the_requirement() {
    let world = World::new();
    let targets = Unit::F3.records();
    let scenario = |kind, manipulation| Scenario {
        id: 1,
        unit: Unit::F3,
        kind,
        variant: "control".to_owned(),
        plan: Plan {
            targets: targets.clone(),
            manipulation,
            numbering: Numbering::Flights,
        },
        may_stall: false,
        not_from: None,
    };

    let untouched = scenario(Kind::Flip, Manipulation::Forward);
    let session = run_session(&world, 1, untouched.plan.clone(), false).await;
    let v = judge(&untouched, &session);
    assert!(!v.ok);
    assert!(
        v.violations
            .iter()
            .any(|e| e.contains("completed despite the manipulation")),
        "{:?}",
        v.violations
    );

    let cut = scenario(Kind::Split, Manipulation::Reset { keep: 10 });
    let session = run_session(&world, 2, cut.plan.clone(), false).await;
    let v = judge(&cut, &session);
    assert!(!v.ok);
    assert!(
        v.violations.iter().any(|e| e.contains("did not succeed")),
        "{:?}",
        v.violations
    );

    // A re-key session the proxy left alone, judged as a black-holed Reply.
    let rekey = |kind, manipulation| Scenario {
        id: 3,
        unit: Unit::RekeyReply,
        kind,
        variant: "control".to_owned(),
        plan: Plan {
            targets: Unit::RekeyReply.records(),
            manipulation,
            numbering: Unit::RekeyReply.numbering(),
        },
        may_stall: false,
        not_from: None,
    };
    let forwarded = rekey(Kind::DropRest, Manipulation::Forward);
    let session = run_session(&world, 3, forwarded.plan.clone(), true).await;
    let v = judge(&forwarded, &session);
    assert!(!v.ok);
    for needle in [
        "completed despite the manipulation",
        "re-key did not time out",
    ] {
        assert!(
            v.violations.iter().any(|e| e.contains(needle)),
            "{needle}: {:?}",
            v.violations
        );
    }
    // A session without re-keying: where the Reply would be, the server's
    // first data record; the target check sees it.
    let plain = rekey(Kind::Untouched, Manipulation::Forward);
    let session = run_session(&world, 4, plain.plan.clone(), false).await;
    let v = judge(&plain, &session);
    assert!(!v.ok);
    for needle in ["is not the Reply", "completed 0 re-keys"] {
        assert!(
            v.violations.iter().any(|e| e.contains(needle)),
            "{needle}: {:?}",
            v.violations
        );
    }
}

/// Fails with the first findings (and their log lines) if the scan found key
/// material in the captured log.
fn assert_no_key_material(found: &[Finding], log: &[u8]) {
    assert!(
        found.is_empty(),
        "key material in the logs:\n{}",
        found
            .iter()
            .take(10)
            .map(|f| format!("{}: {}", f.form, f.line(log)))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
