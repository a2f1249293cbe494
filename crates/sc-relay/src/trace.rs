//! The relay's passive record trace (debug level only, `sc-proxy -v`): the
//! header of every record that passes, decoded with `sc-wire`, as an
//! observer of `sc-net`'s byte pump. It never holds more than a header's
//! four bytes and never fails the connection.

use sc_net::pump::Observer;
use sc_wire::record::RECORD_HEADER_LEN;
use sc_wire::{Codec, RecordHeader};

/// Which way the traced bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the client to the backend.
    Up,
    /// From the backend to the client.
    Down,
}

/// Follows the record stream of one direction as bytes pass, logging each
/// record header; it never holds more than a header's four bytes and never
/// fails the connection (bytes that are not records end the trace).
#[derive(Debug)]
pub(crate) struct RecordTrace {
    client: String,
    direction: &'static str,
    header: [u8; RECORD_HEADER_LEN],
    have: usize,
    skip: usize,
    stopped: bool,
}

impl RecordTrace {
    pub(crate) fn new(client: &str, direction: Direction) -> Self {
        Self {
            client: client.to_owned(),
            direction: match direction {
                Direction::Up => "client->backend",
                Direction::Down => "backend->client",
            },
            header: [0; RECORD_HEADER_LEN],
            have: 0,
            skip: 0,
            stopped: false,
        }
    }

    /// Records that start in `bytes` are logged; a header split over two
    /// calls is joined.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.stopped {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (RECORD_HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < RECORD_HEADER_LEN {
                return;
            }
            self.have = 0;
            match RecordHeader::decode(&self.header) {
                Ok(h) => {
                    tracing::debug!(
                        client = %self.client,
                        direction = %self.direction,
                        kind = %h.kind,
                        length = h.len,
                        "record"
                    );
                    self.skip = h.len;
                }
                Err(e) => {
                    tracing::debug!(
                        client = %self.client,
                        direction = %self.direction,
                        "not a record ({e}): record trace stopped for this direction"
                    );
                    self.stopped = true;
                }
            }
        }
    }
}

impl Observer for RecordTrace {
    fn chunk(&mut self, bytes: &[u8]) {
        self.feed(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_follows_records_split_anywhere_and_stops_on_garbage() {
        let mut stream = vec![0xc1, 0, 0, 3, 1, 2, 3];
        stream.extend_from_slice(&[0xc3, 0, 0, 20]);
        stream.extend_from_slice(&[0; 20]);
        stream.extend_from_slice(&[0xc2, 0, 0, 1, 0x14]);
        for cut in 0..stream.len() {
            let mut t = RecordTrace::new("peer", Direction::Up);
            t.feed(&stream[..cut]);
            t.feed(&stream[cut..]);
            assert!(!t.stopped && t.have == 0 && t.skip == 0, "cut {cut}");
        }
        let mut t = RecordTrace::new("peer", Direction::Down);
        t.feed(b"GET / HTTP/1.1\r\n");
        assert!(t.stopped);
        t.feed(&stream);
        assert!(t.stopped);
    }
}
