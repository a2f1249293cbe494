//! Reading a trusted source's PROXY v2 header from the start of a
//! connection, bounded in time and size, and never past its end (the
//! protocol that follows reads the rest).

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{ProxyError, ProxyHeader, FIXED_LEN};
use crate::{Secs, Stream};

/// What reading a trusted source's header came to.
#[derive(Debug)]
pub enum HeaderRead {
    /// A header (possibly without a client address).
    Header(ProxyHeader),
    /// The source closed before sending a byte (a connect probe).
    Silent,
    /// Refused, and why.
    Refused(String),
}

/// Reads a PROXY v2 header from the start of `io`, never past its end (the
/// handshake that follows reads the rest), within `within`.
pub async fn read_header(io: &mut Stream, within: Duration) -> HeaderRead {
    // Only the bytes that came are in `buf` (its length is reported when
    // the wait is over), never more than the header's own length.
    let mut buf = Vec::with_capacity(FIXED_LEN);
    let reading = async {
        let mut want = FIXED_LEN;
        let mut chunk = [0u8; 256];
        loop {
            let have = buf.len();
            let room = (want - have).min(chunk.len());
            let n = match io.read(&mut chunk[..room]).await {
                Ok(n) => n,
                // A probe that resets the connection at once is as silent
                // as one that closes it.
                Err(_) if have == 0 => 0,
                Err(e) => {
                    return Err(format!(
                        "connection failed in the middle of its PROXY v2 header: {e}"
                    ));
                }
            };
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            match ProxyHeader::decode(&buf) {
                Ok((header, _)) => return Ok(Some(header)),
                Err(ProxyError::Incomplete(total)) => want = total.max(buf.len() + 1),
                Err(ProxyError::NotProxy) => {
                    return Err(
                        "no PROXY v2 header from a trusted source (it sent other bytes first)"
                            .into(),
                    )
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(within, reading).await {
        Ok(Ok(Some(header))) => HeaderRead::Header(header),
        Ok(Ok(None)) if buf.is_empty() => HeaderRead::Silent,
        Ok(Ok(None)) => HeaderRead::Refused(format!(
            "closed after {} bytes of its PROXY v2 header",
            buf.len()
        )),
        Ok(Err(reason)) => HeaderRead::Refused(reason),
        Err(_) if buf.is_empty() => HeaderRead::Refused(format!(
            "no PROXY v2 header from a trusted source within {}",
            Secs(within)
        )),
        Err(_) => HeaderRead::Refused(format!(
            "PROXY v2 header incomplete after {} ({} bytes came)",
            Secs(within),
            buf.len()
        )),
    }
}

/// After a header without a client address: waits (within `within`) for
/// the connection's first byte. `false`: it closed without sending one (a
/// health check); `true`: something came, or the wait is over (the handshake
/// and its timeout take it from there).
pub async fn sends_something(io: &Stream, within: Duration) -> bool {
    let Stream::Tcp(tcp) = io else { return true };
    let mut one = [0u8; 1];
    match tokio::time::timeout(within, tcp.peek(&mut one)).await {
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(_)) | Err(_) => true,
    }
}
