//! Writes the seed corpora in `fuzz/corpus/<target>/` from the fuzz
//! harness's own fixture, so every seed is a real record, certificate, key
//! or header for the state it is fed in:
//!
//! ```text
//! RUSTFLAGS="--cfg fuzzing" cargo run --manifest-path fuzz/Cargo.toml \
//!     --target-dir fuzz/target/seeds --example make_corpus
//! ```

use std::net::SocketAddr;
use std::path::Path;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sc_pki::{cert_to_pem, crl_to_pem, CertificateDer};
use sc_net::proxy_protocol::{ProxyHeader, TLV_CLIENT_IDENTITY};
use sc_session::Side;
use sc_wire::{Codec, HandshakeMessage, ProtocolVersion, Reader};

fn write(target: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).expect("seed file");
    }
    println!("{target}: {} seeds", seeds.len());
}

fn pem_chain(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    chain
        .iter()
        .map(|c| cert_to_pem(c).expect("PEM"))
        .collect::<String>()
        .into_bytes()
}

fn main() {
    let f = sc_fuzz::fixture();

    write("session_streams", &streams_seeds());
    write("handshake_client", &sc_fuzz::handshake_seeds(Side::Client));
    write("handshake_server", &sc_fuzz::handshake_seeds(Side::Server));
    let client = sc_fuzz::session_seeds(Side::Client);
    let server = sc_fuzz::session_seeds(Side::Server);
    write("session_client", &client);
    write("session_server", &server);
    write("session_rekey", &sc_fuzz::session_rekey_seeds());
    // The cookie check: the first flight as it comes, busy or not, retried
    // or not (selectors 0-3), and the echo unchanged (selector 3, no edits).
    let hello = &f.to_server[0].1;
    let mut hello_record = sc_wire::RecordHeader {
        kind: sc_wire::RecordKind::HANDSHAKE,
        len: hello.len(),
    }
    .encoded();
    hello_record.extend_from_slice(hello);
    write(
        "cookie_first_flight",
        &(0u8..4)
            .map(|sel| [&[sel][..], &hello_record].concat())
            .chain([vec![3u8]])
            .collect::<Vec<_>>(),
    );
    // The deframer: the same wire bytes, cut after the first record header.
    let records: Vec<Vec<u8>> = client
        .iter()
        .chain(&server)
        .map(|s| [&[5u8][..], &s[1..]].concat())
        .collect();
    write("wire_deframer", &records);

    // Every handshake message of the recorded handshakes (both protocol
    // versions), one per seed.
    let mut messages = Vec::new();
    let v2 = f.to_client.iter().chain(&f.to_server);
    let v1 = f.to_client_v1.iter().chain(&f.to_server_v1);
    for (version, (_, record)) in v2
        .map(|r| (ProtocolVersion::V2, r))
        .chain(v1.map(|r| (ProtocolVersion::V1, r)))
    {
        let mut r = Reader::new(record);
        while r.left() > 0 {
            let before = r.left();
            let msg = HandshakeMessage::read_for(version, &mut r).expect("a real message");
            let start = record.len() - before;
            let end = record.len() - r.left();
            assert_eq!(msg.encoded(), record[start..end]);
            messages.push(record[start..end].to_vec());
        }
    }
    write("wire_handshake_message", &messages);

    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    write(
        "pki_pem",
        &[
            pem_chain(std::slice::from_ref(&f.root)),
            pem_chain(f.server.chain()),
            crl_to_pem(&f.crl).expect("PEM").into_bytes(),
            f.root_key.to_pkcs8_pem().expect("PEM").as_bytes().to_vec(),
            f.root_key
                .to_encrypted_pkcs8_pem(b"fuzz", &mut rng)
                .expect("PEM")
                .as_bytes()
                .to_vec(),
        ],
    );
    write(
        "pki_chain",
        &[
            sc_fuzz::join_chain(f.server.chain()),
            sc_fuzz::join_chain(f.client.chain()),
            sc_fuzz::join_chain(&[f.client.chain()[0].clone(), f.root.clone()]),
        ],
    );

    write(
        "server_config",
        &[
            b"listen = \"127.0.0.1:7000\"\ncert = \"server.pem\"\nkey = \"server.key\"\nca = \"ca.pem\"\nmax_message = \"64KiB\"\nhandshake_timeout = 2.5\n".to_vec(),
            include_bytes!("server_config_example.toml").to_vec(),
            b"listen = \"127.0.0.1:7000\"\nmax_conections = 5\n".to_vec(),
        ],
    );

    let v4: (SocketAddr, SocketAddr) = (
        "192.0.2.1:40000".parse().expect("addr"),
        "198.51.100.7:7000".parse().expect("addr"),
    );
    let v6: (SocketAddr, SocketAddr) = (
        "[2001:db8::1]:40000".parse().expect("addr"),
        "[2001:db8::7]:7000".parse().expect("addr"),
    );
    let local = ProxyHeader {
        source: None,
        destination: None,
        tlvs: Vec::new(),
    };
    write(
        "proxy_header",
        &[
            ProxyHeader::tcp(v4.0, v4.1).encode().expect("encodes"),
            ProxyHeader::tcp(v6.0, v6.1)
                .with_tlv(TLV_CLIENT_IDENTITY, b"app-1".to_vec())
                .encode()
                .expect("encodes"),
            local.encode().expect("encodes"),
        ],
    );
}

/// Scripts for `session_streams`: a server side that receives an Open with
/// data, a Window, a Fin and a Reset, and reads and writes between them.
fn streams_seeds() -> Vec<Vec<u8>> {
    use sc_wire::streams::{Frame, ResetCode, StreamId};
    let frame = |f: Frame<'_>| {
        let mut out = Vec::new();
        f.encode(&mut out);
        out
    };
    // op 0: receive a record of `len` bytes.
    let receive = |content: &[u8]| {
        let mut op = vec![0, content.len() as u8];
        op.extend_from_slice(content);
        op
    };
    let one = StreamId(1);
    let mut open = frame(Frame::Open {
        id: one,
        service: None,
    });
    open.extend(frame(Frame::Data {
        id: one,
        data: b"hello",
    }));
    let mut a = vec![0u8];
    a.extend(receive(&open));
    a.extend([1, 1, 2, 1, 4, 4]);
    a.extend(receive(&frame(Frame::Window {
        id: one,
        increment: 100,
    })));
    a.extend(receive(&frame(Frame::Fin { id: one })));
    a.extend([1, 1, 6, 1, 4, 4, 3, 1]);
    let mut b = vec![1u8, 5, 0, 2, 1, 4, 4];
    b.extend(receive(&frame(Frame::Reset {
        id: one,
        code: ResetCode::REFUSED,
        reason: "stream limit reached (8 open)".into(),
    })));
    vec![a, b]
}
