//! Every log line of the test binary, and a scan of them for key material.
//!
//! One global subscriber at trace level writes into a buffer: a
//! thread-scoped one would miss the lines logged on tokio's worker threads
//! (and tracing caches callsite interest process-wide).
//!
//! The key material looked for: every secret a [`KeyLog`] on both
//! configurations receives (X25519 and ML-KEM shared secrets, handshake and
//! master secrets, confirm keys, the four chain₀), the per-record keys and
//! chain keys the ratchet derives from each chain₀ for the first
//! [`RATCHET_DEPTH`] records, and the long-term Ed25519 private keys. Each is
//! looked for through 16-byte windows at offsets 0, 8 and 16 (so a logged
//! half is found too): each window's first 8 bytes as hex (16 hex digits,
//! either case), as a Rust `Debug` byte list (`[12, 200, …`), and the whole
//! window raw.

use std::sync::{Arc, Mutex, OnceLock};

use sc_handshake::crypto::{CryptoProvider, AEAD_KEY_LEN, NONCE_LEN};
use sc_handshake::schedule::expand_label;
use sc_handshake::schedule::key_log_labels as labels;
use sc_handshake::{KeyLog, Secret};
use sc_session::record::{LABEL_C_RECORD, LABEL_S_RECORD};

/// Records per chain whose keys are derived and looked for (a session of
/// the suite seals at most 6 records per chain).
pub(crate) const RATCHET_DEPTH: usize = 8;

/// The captured log output.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub(crate) fn snapshot(&self) -> Vec<u8> {
        self.0.lock().expect("log buffer").clone()
    }
}

/// Installs the one subscriber of this test binary (at the first call) and
/// returns its buffer.
pub(crate) fn capture() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Captured::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        buf
    })
}

/// One secret a key log received.
#[derive(Clone)]
pub(crate) struct Logged {
    pub(crate) label: &'static str,
    pub(crate) client_random: [u8; 32],
    pub(crate) secret: Vec<u8>,
}

/// Collects every secret handed to it.
#[derive(Debug, Default)]
pub(crate) struct SecretLog(Mutex<Vec<Logged>>);

impl core::fmt::Debug for Logged {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Logged")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl KeyLog for SecretLog {
    fn log(&self, label: &'static str, client_random: &[u8; 32], secret: &[u8]) {
        self.0.lock().expect("secrets").push(Logged {
            label,
            client_random: *client_random,
            secret: secret.to_vec(),
        });
    }
}

impl SecretLog {
    /// Every secret so far, in the order they were derived.
    pub(crate) fn entries(&self) -> Vec<Logged> {
        self.0.lock().expect("secrets").clone()
    }
}

/// One record's key and nonce as the ratchet derives them.
pub(crate) struct RecordKey {
    pub(crate) key: [u8; AEAD_KEY_LEN],
    pub(crate) nonce: [u8; NONCE_LEN],
}

/// The record chain a logged secret starts, with its ratchet label.
fn chain_label(label: &str) -> Option<&'static [u8]> {
    match label {
        labels::CLIENT_HS_TRAFFIC | labels::CLIENT_CHAIN0 => Some(LABEL_C_RECORD),
        labels::SERVER_HS_TRAFFIC | labels::SERVER_CHAIN0 => Some(LABEL_S_RECORD),
        _ => None,
    }
}

/// The keys of the first [`RATCHET_DEPTH`] records of the chain `logged`
/// starts (none if it starts no chain), and the chain keys after each
/// (SPEC's ratchet, as `sc-session/src/record.rs` derives them:
/// `key || nonce || next = Expand-Label(chain, label, "", 76)`).
pub(crate) fn ratchet(
    provider: &CryptoProvider,
    logged: &Logged,
) -> (Vec<RecordKey>, Vec<[u8; 32]>) {
    let (mut keys, mut chains) = (Vec::new(), Vec::new());
    let Some(label) = chain_label(logged.label) else {
        return (keys, chains);
    };
    let mut chain = Secret::from_slice(&logged.secret).expect("a 32-byte chain secret");
    for _ in 0..RATCHET_DEPTH {
        let mut okm = [0u8; AEAD_KEY_LEN + NONCE_LEN + 32];
        expand_label(provider, &chain, label, &[], &mut okm).expect("expand");
        let mut k = RecordKey {
            key: [0; AEAD_KEY_LEN],
            nonce: [0; NONCE_LEN],
        };
        k.key.copy_from_slice(&okm[..AEAD_KEY_LEN]);
        k.nonce
            .copy_from_slice(&okm[AEAD_KEY_LEN..AEAD_KEY_LEN + NONCE_LEN]);
        let next: [u8; 32] = okm[AEAD_KEY_LEN + NONCE_LEN..]
            .try_into()
            .expect("32 bytes");
        chain = Secret::new(next);
        keys.push(k);
        chains.push(next);
    }
    (keys, chains)
}

/// The 16-byte windows at offsets 0, 8, 16… of `secret`.
fn windows(secret: &[u8], out: &mut Vec<[u8; 16]>) {
    assert!(secret.len() >= 16, "a secret of {} bytes", secret.len());
    let mut at = 0;
    while at + 16 <= secret.len() {
        out.push(secret[at..at + 16].try_into().expect("16 bytes"));
        at += 8;
    }
}

/// Everything the scan looks for: the windows of every logged secret, of
/// the record and chain keys derived from each chain₀, and of `extra`
/// (the long-term private keys).
pub(crate) fn key_material(
    provider: &CryptoProvider,
    logged: &[Logged],
    extra: &[&[u8]],
) -> Vec<[u8; 16]> {
    let mut out = Vec::new();
    for l in logged {
        windows(&l.secret, &mut out);
        let (keys, chains) = ratchet(provider, l);
        for k in &keys {
            windows(&k.key, &mut out);
        }
        for c in &chains {
            windows(c, &mut out);
        }
    }
    for e in extra {
        windows(e, &mut out);
    }
    out
}

/// A secret found in the logs.
#[derive(Debug)]
pub(crate) struct Finding {
    /// How it was written: "hex", "debug list" or "raw".
    pub(crate) form: &'static str,
    /// Where in the log.
    pub(crate) offset: usize,
}

impl Finding {
    /// The log line it is in.
    pub(crate) fn line(&self, log: &[u8]) -> String {
        let start = log[..self.offset]
            .iter()
            .rposition(|c| *c == b'\n')
            .map_or(0, |i| i + 1);
        let end = log[self.offset..]
            .iter()
            .position(|c| *c == b'\n')
            .map_or(log.len(), |i| self.offset + i);
        String::from_utf8_lossy(&log[start..end]).into_owned()
    }
}

/// Finds every secret of `secrets` in `log` (see the module comment).
pub(crate) fn scan(log: &[u8], secrets: &[[u8; 16]]) -> Vec<Finding> {
    Index::new(secrets).scan(log)
}

/// The secrets, sorted for lookups by their first 8 or all 16 bytes.
pub(crate) struct Index {
    sorted: Vec<[u8; 16]>,
    /// A 2^24-bit filter on the first three bytes: keeps the raw scan cheap.
    filter: Vec<u64>,
}

impl Index {
    pub(crate) fn new(secrets: &[[u8; 16]]) -> Self {
        let mut sorted = secrets.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut filter = vec![0u64; 1 << 18];
        for s in &sorted {
            let f = (usize::from(s[0]) << 16) | (usize::from(s[1]) << 8) | usize::from(s[2]);
            filter[f >> 6] |= 1 << (f & 63);
        }
        Self { sorted, filter }
    }

    /// Whether a secret starts with these 8 bytes.
    fn has_prefix(&self, prefix: u64) -> bool {
        let p = prefix.to_be_bytes();
        let i = self.sorted.partition_point(|s| s[..8] < p[..]);
        self.sorted.get(i).is_some_and(|s| s[..8] == p[..])
    }

    /// Finds every secret in `log` (see the module comment).
    pub(crate) fn scan(&self, log: &[u8]) -> Vec<Finding> {
        let mut found = Vec::new();

        // Hex: every 16-digit window of every run of hex digits.
        let mut i = 0;
        while i < log.len() {
            if !log[i].is_ascii_hexdigit() {
                i += 1;
                continue;
            }
            let start = i;
            while i < log.len() && log[i].is_ascii_hexdigit() {
                i += 1;
            }
            for w in start..(i.saturating_sub(15)).max(start) {
                let mut v = 0u64;
                for &c in &log[w..w + 16] {
                    let nibble = (c as char).to_digit(16).expect("a hex digit");
                    v = (v << 4) | u64::from(nibble);
                }
                if self.has_prefix(v) {
                    found.push(Finding {
                        form: "hex",
                        offset: w,
                    });
                }
            }
        }

        // `Debug` of a byte slice: "[12, 200, 3, …".
        for (at, _) in log.iter().enumerate().filter(|(_, &c)| c == b'[') {
            let mut v = 0u64;
            let mut n = 0;
            let mut rest = &log[at + 1..];
            while n < 8 {
                let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 || digits > 3 {
                    break;
                }
                let num: u32 = std::str::from_utf8(&rest[..digits])
                    .expect("ascii digits")
                    .parse()
                    .expect("a number");
                let Ok(byte) = u8::try_from(num) else { break };
                v = (v << 8) | u64::from(byte);
                n += 1;
                rest = &rest[digits..];
                match rest {
                    [b',', b' ', more @ ..] => rest = more,
                    _ => break,
                }
            }
            if n == 8 && self.has_prefix(v) {
                found.push(Finding {
                    form: "debug list",
                    offset: at,
                });
            }
        }

        // Raw: the first 16 bytes anywhere.
        for w in 0..log.len().saturating_sub(15) {
            let f = (usize::from(log[w]) << 16)
                | (usize::from(log[w + 1]) << 8)
                | usize::from(log[w + 2]);
            if self.filter[f >> 6] & (1 << (f & 63)) == 0 {
                continue;
            }
            if self
                .sorted
                .binary_search_by(|s| s[..].cmp(&log[w..w + 16]))
                .is_ok()
            {
                found.push(Finding {
                    form: "raw",
                    offset: w,
                });
            }
        }
        found
    }
}
