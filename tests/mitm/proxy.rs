//! The record-aware proxy: it sits between two TCP connections, cuts each
//! direction into records (`kind u8 || length u24`), numbers them by flight
//! (a flight = the records of one direction until the other direction
//! speaks) and applies one manipulation to one target: a set of records
//! given by (flight, index in flight). Every other record is forwarded
//! unchanged, one whole record per write.
//!
//! The proxy parses what the sender sent, never what it forwards, so its
//! numbering is the honest sender's whatever it did to the records.

use std::io;
use std::time::Duration;

use sc_wire::record::RECORD_HEADER_LEN;
use sc_wire::{Codec, HandshakeMessage, Reader, RecordHeader, RecordKind};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A direction of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Dir {
    /// Client to server.
    ClientToServer,
    /// Server to client.
    ServerToClient,
}

/// Where a record is on the wire: its flight (from 1) and its index in the
/// flight (from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) flight: usize,
    pub(crate) index: usize,
}

/// What the proxy does to the target records (all of one direction, taken
/// together once the last of them is in).
#[derive(Clone, Debug)]
pub(crate) enum Manipulation {
    /// Forward unchanged (a recording run).
    Forward,
    /// XOR the byte at `at` (counted over the target's bytes) with `mask`.
    Flip { at: usize, mask: u8 },
    /// Forward the first `keep` bytes, then close both connections (FIN).
    Truncate { keep: usize },
    /// Write one byte at a time, with pauses.
    Split,
    /// Hold the target this long, then forward it.
    Delay(Duration),
    /// Forward the target twice.
    Duplicate,
    /// Forward nothing of the target.
    Drop,
    /// Forward nothing of the target nor anything its sender sends after it
    /// (a one-way black hole; the sender's FIN still passes).
    DropRest,
    /// Forward the first two target records in the opposite order.
    Reorder,
    /// Forward these records (another session's, at the same place) instead.
    Replay(Vec<Vec<u8>>),
    /// Forward this forged record first, then the target.
    Inject(Vec<u8>),
    /// Forward the first `keep` bytes, then reset both connections (RST).
    Reset { keep: usize },
    /// Forward the target (plaintext handshake records) without the first
    /// handshake message of each.
    StripFirstMessage,
    /// Forward nothing of the target, and send these bytes back to its
    /// sender instead: the attacker answers for the receiver.
    AnswerFor(Vec<u8>),
}

/// How a plan's targets are numbered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Numbering {
    /// By flight and index in the flight.
    #[default]
    Flights,
    /// By index among all the records of one direction (`Pos::flight` is
    /// 0): for a session whose flights after the handshake depend on
    /// timing (streams), where each direction's records do not.
    Direction(Dir),
}

/// One manipulation of one target.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// The records manipulated together, in wire order, all of one direction.
    pub(crate) targets: Vec<Pos>,
    pub(crate) manipulation: Manipulation,
    pub(crate) numbering: Numbering,
}

/// One flight as the sender sent it.
#[derive(Clone, Debug)]
pub(crate) struct Flight {
    pub(crate) dir: Dir,
    pub(crate) records: Vec<Vec<u8>>,
}

/// What the proxy saw and did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recording {
    /// Every whole record each sender sent, by flight.
    pub(crate) flights: Vec<Flight>,
    /// The same records by direction: client to server, server to client.
    pub(crate) c2s: Vec<Vec<u8>>,
    pub(crate) s2c: Vec<Vec<u8>>,
    /// Whether the manipulation was applied (all target records came).
    pub(crate) applied: bool,
}

impl Recording {
    /// The `index`-th record sent in `dir`, if it was sent.
    pub(crate) fn nth(&self, dir: Dir, index: usize) -> Option<&[u8]> {
        let all = match dir {
            Dir::ClientToServer => &self.c2s,
            Dir::ServerToClient => &self.s2c,
        };
        all.get(index).map(Vec::as_slice)
    }

    /// The record at `pos`, if it was sent.
    pub(crate) fn record(&self, pos: Pos) -> Option<&[u8]> {
        let f = self.flights.get(pos.flight.checked_sub(1)?)?;
        f.records.get(pos.index).map(Vec::as_slice)
    }

    /// The records at `positions`, concatenated; `None` if one is missing.
    pub(crate) fn bytes(&self, positions: &[Pos]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for p in positions {
            out.extend_from_slice(self.record(*p)?);
        }
        Some(out)
    }
}

/// How the proxy ends both connections.
enum End {
    /// Both senders closed: pass the closes on (done as they came).
    Done,
    /// Close both connections now (FIN to both ends).
    Fin,
    /// Reset both connections now (RST to both ends).
    Rst,
}

/// One direction's state: bytes not yet forming a whole record, whether the
/// sender closed, whether the receiver still takes bytes.
#[derive(Default)]
struct Lane {
    partial: Vec<u8>,
    /// The sender's bytes stopped being records (cannot happen with an
    /// honest sender): forward them as they come.
    raw: bool,
    read_closed: bool,
    write_dead: bool,
    /// Black-holed (`Manipulation::DropRest`): nothing more is forwarded.
    black_hole: bool,
}

struct Mitm {
    plan: Plan,
    rec: Recording,
    last: Option<Dir>,
    held: Vec<Vec<u8>>,
    done: bool,
    /// Bytes for the sender of the record just handled (`AnswerFor`).
    back: Vec<u8>,
}

/// Writes `bytes`, remembering (not failing on) a receiver that is gone.
async fn put<W: AsyncWrite + Unpin + ?Sized>(lane: &mut Lane, w: &mut W, bytes: &[u8]) {
    if lane.write_dead || lane.black_hole || bytes.is_empty() {
        return;
    }
    if w.write_all(bytes).await.is_err() || w.flush().await.is_err() {
        lane.write_dead = true;
    }
}

impl Mitm {
    /// One whole record from the sender of `dir`: number it, record it, and
    /// forward it or hold it for the manipulation.
    async fn on_record<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        dir: Dir,
        record: Vec<u8>,
        lane: &mut Lane,
        w: &mut W,
    ) -> Option<End> {
        if self.last != Some(dir) {
            self.last = Some(dir);
            self.rec.flights.push(Flight {
                dir,
                records: Vec::new(),
            });
        }
        let flight = self.rec.flights.len();
        let f = self
            .rec
            .flights
            .last_mut()
            .expect("a flight was just pushed");
        let pos = Pos {
            flight,
            index: f.records.len(),
        };
        f.records.push(record.clone());
        let all = match dir {
            Dir::ClientToServer => &mut self.rec.c2s,
            Dir::ServerToClient => &mut self.rec.s2c,
        };
        all.push(record.clone());
        let target = match self.plan.numbering {
            Numbering::Flights => self.plan.targets.contains(&pos),
            Numbering::Direction(d) => {
                d == dir
                    && self.plan.targets.contains(&Pos {
                        flight: 0,
                        index: all.len() - 1,
                    })
            }
        };
        if self.done || !target {
            put(lane, w, &record).await;
            return None;
        }
        self.held.push(record);
        if self.held.len() < self.plan.targets.len() {
            return None;
        }
        self.done = true;
        self.rec.applied = true;
        let held = core::mem::take(&mut self.held);
        if let Manipulation::AnswerFor(answer) = &self.plan.manipulation {
            self.back = answer.clone();
            return None;
        }
        apply(&self.plan.manipulation, held, lane, w).await
    }

    /// The sender of `dir` closed: what is held for the target goes out
    /// unchanged (the target is incomplete; the recording says so).
    async fn on_eof<W: AsyncWrite + Unpin + ?Sized>(&mut self, lane: &mut Lane, w: &mut W) {
        let partial = core::mem::take(&mut lane.partial);
        if !self.done && !self.held.is_empty() {
            for r in core::mem::take(&mut self.held) {
                put(lane, w, &r).await;
            }
        }
        put(lane, w, &partial).await;
        lane.read_closed = true;
        let _ = w.shutdown().await;
    }

    /// Bytes from the sender of `dir`: whole records go to `on_record`.
    async fn on_bytes<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        dir: Dir,
        bytes: &[u8],
        lane: &mut Lane,
        w: &mut W,
    ) -> Option<End> {
        lane.partial.extend_from_slice(bytes);
        loop {
            if lane.raw {
                let b = core::mem::take(&mut lane.partial);
                put(lane, w, &b).await;
                return None;
            }
            // No whole header yet: wait for more (`None`: the relay goes on).
            let head = lane.partial.get(..4)?;
            let Ok(header) = RecordHeader::decode(head) else {
                lane.raw = true;
                continue;
            };
            let len = 4 + header.len;
            if lane.partial.len() < len {
                return None;
            }
            let record: Vec<u8> = lane.partial.drain(..len).collect();
            if let Some(end) = self.on_record(dir, record, lane, w).await {
                return Some(end);
            }
        }
    }
}

/// Applies `m` to the target records and writes the result.
async fn apply<W: AsyncWrite + Unpin + ?Sized>(
    m: &Manipulation,
    mut held: Vec<Vec<u8>>,
    lane: &mut Lane,
    w: &mut W,
) -> Option<End> {
    let mut bytes = held.concat();
    match m {
        Manipulation::Forward => put(lane, w, &bytes).await,
        Manipulation::Flip { at, mask } => {
            bytes[*at] ^= mask;
            put(lane, w, &bytes).await;
        }
        Manipulation::Truncate { keep } => {
            put(lane, w, &bytes[..*keep]).await;
            return Some(End::Fin);
        }
        Manipulation::Reset { keep } => {
            put(lane, w, &bytes[..*keep]).await;
            return Some(End::Rst);
        }
        Manipulation::Split => {
            for r in &held {
                for (i, b) in r.iter().enumerate() {
                    put(lane, w, std::slice::from_ref(b)).await;
                    // Each header byte and the first body byte arrive on
                    // their own; the body in small bursts.
                    if i < 5 || i % 16 == 15 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
        Manipulation::Delay(d) => {
            tokio::time::sleep(*d).await;
            put(lane, w, &bytes).await;
        }
        Manipulation::Duplicate => {
            put(lane, w, &bytes).await;
            put(lane, w, &bytes).await;
        }
        Manipulation::Drop => {}
        Manipulation::DropRest => lane.black_hole = true,
        Manipulation::Reorder => {
            held.swap(0, 1);
            put(lane, w, &held.concat()).await;
        }
        Manipulation::Replay(other) => put(lane, w, &other.concat()).await,
        Manipulation::StripFirstMessage => {
            for r in &held {
                let body = &r[RECORD_HEADER_LEN..];
                let mut reader = Reader::new(body);
                let rest = match HandshakeMessage::read(&mut reader) {
                    Ok(_) => &body[body.len() - reader.left()..],
                    Err(_) => body,
                };
                let mut out = RecordHeader {
                    kind: RecordKind::HANDSHAKE,
                    len: rest.len(),
                }
                .encoded();
                out.extend_from_slice(rest);
                put(lane, w, &out).await;
            }
        }
        // Handled where the target is complete (`Mitm::on_record`).
        Manipulation::AnswerFor(_) => {}
        Manipulation::Inject(forged) => {
            put(lane, w, forged).await;
            put(lane, w, &bytes).await;
        }
    }
    None
}

/// Relays between `client` and `server` under `plan` until both ends have
/// closed (or the plan cuts the connections) and returns what it saw.
pub(crate) async fn run(mut client: TcpStream, mut server: TcpStream, plan: Plan) -> Recording {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut mitm = Mitm {
        plan,
        rec: Recording::default(),
        last: None,
        held: Vec::new(),
        done: false,
        back: Vec::new(),
    };
    let end = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let mut c2s = Lane::default();
        let mut s2c = Lane::default();
        let mut cbuf = vec![0u8; 64 * 1024];
        let mut sbuf = vec![0u8; 64 * 1024];
        loop {
            let (dir, got): (Dir, io::Result<usize>) = tokio::select! {
                r = cr.read(&mut cbuf), if !c2s.read_closed => (Dir::ClientToServer, r),
                r = sr.read(&mut sbuf), if !s2c.read_closed => (Dir::ServerToClient, r),
                else => break End::Done,
            };
            let (lane, w, buf): (&mut Lane, &mut (dyn AsyncWrite + Unpin + Send), &[u8]) = match dir
            {
                Dir::ClientToServer => (&mut c2s, &mut sw, &cbuf),
                Dir::ServerToClient => (&mut s2c, &mut cw, &sbuf),
            };
            match got {
                // A reset is an end too: what was read before it is forwarded.
                Ok(0) | Err(_) => mitm.on_eof(lane, w).await,
                Ok(n) => {
                    if let Some(end) = mitm.on_bytes(dir, &buf[..n], lane, w).await {
                        break end;
                    }
                }
            }
            let back = core::mem::take(&mut mitm.back);
            match dir {
                Dir::ClientToServer => put(&mut s2c, &mut cw, &back).await,
                Dir::ServerToClient => put(&mut c2s, &mut sw, &back).await,
            }
        }
    };
    match end {
        End::Done => {}
        End::Fin => {
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
        }
        End::Rst => {
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
    drop(client);
    drop(server);
    mitm.rec
}
