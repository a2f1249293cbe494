//! Record-layer throughput: seal + open through the seed-code ratchet, beside
//! the raw AEAD of the same crate, for both suites at 1, 16 and 64 KiB.
//!
//! Every record costs one HKDF-SHA256 expand and one AEAD key setup on each
//! side (its own key and nonce); the raw AEAD runs with its key set up once.
//! The `per-record` group measures those fixed costs alone. After the run a
//! table compares record-layer and raw throughput from this run's estimates.
//!
//! `cargo bench -p sc-session --bench records`

#![forbid(unsafe_code)]

mod common;

use std::hint::black_box;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use criterion::{BenchmarkId, Criterion, Throughput};
use sc_handshake::crypto::{AEAD_KEY_LEN, NONCE_LEN};
use sc_handshake::schedule::expand_label;
use sc_handshake::{Secret, RUSTCRYPTO};
use sc_session::record::{Direction, RecordOpener, RecordSealer, LABEL_C_RECORD};
use sc_wire::record::{MAX_SEALED_LEN, RECORD_HEADER_LEN};
use sc_wire::{CipherSuite, Codec, InnerType, RecordHeader, RecordKind};

use common::{Missing, Run};

/// Content sizes per record: 1 KiB, 16 KiB and the 64 KiB maximum.
const SIZES: [usize; 3] = [1024, 16 * 1024, 64 * 1024];

/// The size the targets apply to.
const TARGET_SIZE: usize = 64 * 1024;

/// One suite under test.
struct Suite {
    suite: CipherSuite,
    /// The criterion function name.
    name: &'static str,
    /// Record-layer throughput target at [`TARGET_SIZE`], as a fraction of
    /// raw AEAD throughput.
    target: f64,
    /// The raw AEAD, keyed once.
    raw: fn(&mut Criterion, &'static str, usize),
    /// The raw AEAD, keyed per record, on an empty record.
    rekeyed: fn(&mut Criterion, &'static str),
}

const SUITES: [Suite; 2] = [
    Suite {
        suite: CipherSuite::CHACHA20_POLY1305,
        name: "chacha20-poly1305",
        target: 0.90,
        raw: raw_aead::<ChaCha20Poly1305>,
        rekeyed: raw_rekeyed_empty::<ChaCha20Poly1305>,
    },
    Suite {
        suite: CipherSuite::AES_256_GCM,
        name: "aes-256-gcm",
        target: 0.80,
        raw: raw_aead::<Aes256Gcm>,
        rekeyed: raw_rekeyed_empty::<Aes256Gcm>,
    },
];

/// A sealer and an opener of the same direction, in lock-step.
fn endpoints(suite: CipherSuite) -> (RecordSealer, RecordOpener) {
    let chain0 = Secret::new([0x42; 32]);
    let sealer = RecordSealer::new(
        &RUSTCRYPTO,
        suite,
        Direction::ClientToServer,
        chain0.clone(),
    )
    .expect("the RustCrypto provider implements both suites");
    let opener = RecordOpener::new(&RUSTCRYPTO, suite, Direction::ClientToServer, chain0)
        .expect("the RustCrypto provider implements both suites");
    (sealer, opener)
}

/// Seals `content` as one record into `wire` (cleared first) and opens it
/// again in place; returns the opened content's length.
fn round_trip(
    sealer: &mut RecordSealer,
    opener: &mut RecordOpener,
    content: &[u8],
    wire: &mut Vec<u8>,
) -> usize {
    wire.clear();
    sealer
        .seal(InnerType::DATA, content, 0, wire)
        .expect("content is within the fragment limit");
    let (header, body) = wire.split_at_mut(RECORD_HEADER_LEN);
    let header = RecordHeader::decode(header).expect("the sealer wrote a valid header");
    let (typ, plain) = opener
        .open(header, body)
        .expect("the opener is in lock-step with the sealer");
    debug_assert_eq!(typ, InnerType::DATA);
    plain.len()
}

/// `records/<suite>/<size>`: seal + open of one record of `size` bytes.
fn records(c: &mut Criterion, suite: &Suite, size: usize) {
    let content = vec![0x5a; size];
    let (mut sealer, mut opener) = endpoints(suite.suite);
    let mut wire = Vec::with_capacity(RECORD_HEADER_LEN + MAX_SEALED_LEN);
    // The path works and returns the content before it is timed.
    assert_eq!(
        round_trip(&mut sealer, &mut opener, &content, &mut wire),
        size
    );

    let mut group = c.benchmark_group("records");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function(BenchmarkId::new(suite.name, size), |b| {
        b.iter(|| round_trip(&mut sealer, &mut opener, black_box(&content), &mut wire))
    });
    group.finish();
}

/// The AAD a record of `size` content bytes carries (its header), so the raw
/// AEAD authenticates as many bytes as the record layer does.
fn header_for(size: usize) -> [u8; RECORD_HEADER_LEN] {
    RecordHeader {
        kind: RecordKind::SEALED,
        len: size + sc_wire::record::INNER_TRAILER_LEN + sc_wire::record::TAG_LEN,
    }
    .to_bytes()
}

/// `raw-aead/<suite>/<size>`: the crate's own AEAD, key set up once, fixed
/// nonce, encrypt then decrypt in place on the same buffer.
fn raw_aead<A: AeadInPlace + KeyInit>(c: &mut Criterion, name: &'static str, size: usize) {
    let cipher = A::new_from_slice(&[0x42; AEAD_KEY_LEN]).expect("32-byte key");
    let nonce = aes_gcm::aead::Nonce::<A>::clone_from_slice(&[0x24; NONCE_LEN]);
    let aad = header_for(size);
    let mut buf = vec![0x5a; size];

    let mut group = c.benchmark_group("raw-aead");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function(BenchmarkId::new(name, size), |b| {
        b.iter(|| {
            let tag = cipher
                .encrypt_in_place_detached(&nonce, &aad, black_box(&mut buf))
                .expect("within the AEAD's length limit");
            cipher
                .decrypt_in_place_detached(&nonce, &aad, &mut buf, &tag)
                .expect("the tag was just made");
        })
    });
    group.finish();
}

/// `per-record/<suite>/raw-rekeyed-empty`: the AEAD work of an empty record
/// (its 3-byte inner trailer) without the ratchet, with what the record layer
/// adds per record: a cipher set up from a fresh key on each side.
fn raw_rekeyed_empty<A: AeadInPlace + KeyInit>(c: &mut Criterion, name: &'static str) {
    let key = [0x42; AEAD_KEY_LEN];
    let nonce = aes_gcm::aead::Nonce::<A>::clone_from_slice(&[0x24; NONCE_LEN]);
    let aad = header_for(0);
    let mut trailer = [0u8; sc_wire::record::INNER_TRAILER_LEN];

    let mut group = c.benchmark_group("per-record");
    group.bench_function(BenchmarkId::new(name, "raw-rekeyed-empty"), |b| {
        b.iter(|| {
            let tag = A::new_from_slice(black_box(&key))
                .expect("32-byte key")
                .encrypt_in_place_detached(&nonce, &aad, &mut trailer)
                .expect("within the AEAD's length limit");
            A::new_from_slice(black_box(&key))
                .expect("32-byte key")
                .decrypt_in_place_detached(&nonce, &aad, &mut trailer, &tag)
                .expect("the tag was just made");
        })
    });
    group.finish();
}

/// `per-record/...`: the fixed costs of one record, with no content.
fn per_record(c: &mut Criterion) {
    let chain = Secret::new([0x42; 32]);
    let mut okm = [0u8; AEAD_KEY_LEN + NONCE_LEN + 32];
    let mut group = c.benchmark_group("per-record");
    // One ratchet step: key, nonce and next chain key from the chain key.
    group.bench_function(BenchmarkId::new("hkdf-sha256", "ratchet-step"), |b| {
        b.iter(|| {
            expand_label(
                &RUSTCRYPTO,
                black_box(&chain),
                LABEL_C_RECORD,
                &[],
                &mut okm,
            )
            .expect("76 bytes is within HKDF's limit");
        })
    });
    group.finish();
    for suite in &SUITES {
        // The whole record path with an empty record (the 3-byte inner
        // trailer is still sealed): two ratchet steps, two key setups.
        let (mut sealer, mut opener) = endpoints(suite.suite);
        let mut wire = Vec::with_capacity(RECORD_HEADER_LEN + MAX_SEALED_LEN);
        let mut group = c.benchmark_group("per-record");
        group.bench_function(BenchmarkId::new(suite.name, "seal-open-empty"), |b| {
            b.iter(|| round_trip(&mut sealer, &mut opener, black_box(&[]), &mut wire))
        });
        group.finish();
        (suite.rekeyed)(c, suite.name);
    }
}

fn main() {
    let run = Run::start();
    let mut c = Criterion::default().configure_from_args();
    // Record and raw side by side, so both see the same machine load.
    for suite in &SUITES {
        for size in SIZES {
            records(&mut c, suite, size);
            (suite.raw)(&mut c, suite.name, size);
        }
    }
    per_record(&mut c);
    c.final_summary();
    if run.benchmarking() {
        report(&run);
    }
}

fn gbps(size: usize, ns: f64) -> f64 {
    size as f64 / ns
}

fn show(value: &Result<f64, Missing>, width: usize, f: impl Fn(f64) -> String) -> String {
    match value {
        Ok(v) => format!("{:>width$}", f(*v)),
        Err(_) => format!("{:>width$}", "n/a"),
    }
}

/// The ratio table, from this run's estimates only.
fn report(run: &Run) {
    println!();
    println!("Record layer vs raw AEAD, seal + open per record, this run");
    println!(
        "(GB/s = 10^9 content bytes/s; estimates from {})",
        run.searched()
    );
    println!(
        "{:<18} {:>6} {:>12} {:>10} {:>11} {:>14}  target",
        "suite", "size", "record GB/s", "raw GB/s", "record/raw", "extra µs/rec"
    );
    let mut missing = Vec::new();
    for suite in &SUITES {
        for size in SIZES {
            let value = size.to_string();
            let rec = run.estimate(&format!("records/{}/{value}", suite.name));
            let raw = run.estimate(&format!("raw-aead/{}/{value}", suite.name));
            for (what, r) in [("records", &rec), ("raw-aead", &raw)] {
                if let Err(why) = r {
                    missing.push(format!("{what}/{}/{value}: {why}", suite.name));
                }
            }
            let rec = rec.map(|e| e.ns);
            let raw = raw.map(|e| e.ns);
            let ratio = match (&rec, &raw) {
                (Ok(r), Ok(w)) => Ok(w / r),
                (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            };
            let extra = match (&rec, &raw) {
                (Ok(r), Ok(w)) => Ok((r - w) / 1e3),
                (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            };
            let target = if size == TARGET_SIZE {
                let mark = format!("≥ {:.0} %", suite.target * 100.0);
                match &ratio {
                    Ok(q) if *q >= suite.target => format!("{mark}: met"),
                    Ok(_) => format!("{mark}: MISSED"),
                    Err(_) => format!("{mark}: not measured"),
                }
            } else {
                "-".to_owned()
            };
            println!(
                "{:<18} {:>6} {} {} {} {}  {}",
                suite.name,
                size,
                show(&rec.clone().map(|ns| gbps(size, ns)), 12, |v| format!(
                    "{v:.3}"
                )),
                show(&raw.clone().map(|ns| gbps(size, ns)), 10, |v| format!(
                    "{v:.3}"
                )),
                show(&ratio, 11, |v| format!("{:.1} %", v * 100.0)),
                show(&extra, 14, |v| format!("{v:.2}")),
                target,
            );
        }
    }

    println!();
    println!("Fixed cost per record (no content), this run");
    let step = run.estimate("per-record/hkdf-sha256/ratchet-step");
    if let Err(why) = &step {
        missing.push(format!("per-record/hkdf-sha256/ratchet-step: {why}"));
    }
    println!(
        "  {:<52} {} µs",
        "one ratchet step (HKDF-SHA256 expand, 76 bytes)",
        show(&step.map(|e| e.ns), 8, |v| format!("{:.3}", v / 1e3)),
    );
    for suite in &SUITES {
        for (value, what) in [
            ("seal-open-empty", "record seal + open, empty"),
            (
                "raw-rekeyed-empty",
                "raw key setup + seal, key setup + open, 3 B",
            ),
        ] {
            let e = run.estimate(&format!("per-record/{}/{value}", suite.name));
            if let Err(why) = &e {
                missing.push(format!("per-record/{}/{value}: {why}", suite.name));
            }
            println!(
                "  {:<52} {} µs",
                format!("{}: {what}", suite.name),
                show(&e.map(|e| e.ns), 8, |v| format!("{:.3}", v / 1e3)),
            );
        }
    }
    if !missing.is_empty() {
        println!();
        println!("Missing from this run (n/a above):");
        for m in missing {
            println!("  {m}");
        }
    }
}
