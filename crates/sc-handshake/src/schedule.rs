//! The key schedule: labels, HKDF-Expand-Label, the transcript hash and the
//! context strings every signature and MAC covers.
//!
//! ```text
//! HS        = HKDF-Extract(salt = "Sovereign-Chain/1 handshake", IKM = X25519 shared secret)
//! th_n      = SHA-256(messages 1..n, steps 7–10 in the permuted order)
//! c_hs      = Expand-Label(HS, "c hs traffic", th_2, 32)    client→server handshake chain₀
//! s_hs      = Expand-Label(HS, "s hs traffic", th_2, 32)    server→client handshake chain₀
//! kc2_key   = Expand-Label(HS, "c confirm",    th_2, 32)    MAC key of step 10
//! MS        = HKDF-Extract(salt = Expand-Label(HS, "derived", SHA-256(""), 32),
//!                          IKM  = ss_7 || ss_8 || version (u16) || suite (u16))
//! c_ap      = Expand-Label(MS, "c ap traffic", th_11, 32)
//! s_ap      = Expand-Label(MS, "s ap traffic", th_11, 32)
//! c_chain₀  = HKDF-Extract(salt = seed code, IKM = c_ap)     client→server record chain
//! s_chain₀  = HKDF-Extract(salt = seed code, IKM = s_ap)     server→client record chain
//! ack_key   = Expand-Label(MS, "s ack",        th_11, 32)    MAC key of step 13
//! ```
//!
//! Version 2 (SPEC §16.4) changes three lines and adds one:
//!
//! ```text
//! HS        = HKDF-Extract(salt = "Sovereign-Chain/2 handshake",
//!                          IKM  = X25519 shared secret || ss_2)     ss_2: ML-KEM of step 2
//! kc1_key   = Expand-Label(HS, "s confirm",    th_2, 32)    MAC key of step 9
//! MS        = HKDF-Extract(salt = Expand-Label(HS, "derived", SHA-256(""), 32),
//!                          IKM  = ss_8 || 0x5c02 || suite (u16))
//! ```

use sc_wire::{CipherSuite, ProtocolVersion};
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, CryptoProvider, HashContext, Secret, SECRET_LEN};

/// Prefix of every HKDF label.
pub const LABEL_PREFIX: &[u8] = b"sc1 ";
/// Salt of the handshake secret's extraction.
pub const HANDSHAKE_SALT: &[u8] = b"Sovereign-Chain/1 handshake";
/// Salt of the handshake secret's extraction in version 2.
pub const HANDSHAKE_SALT_V2: &[u8] = b"Sovereign-Chain/2 handshake";
/// Label of the client→server handshake traffic secret.
pub const LABEL_C_HS_TRAFFIC: &[u8] = b"c hs traffic";
/// Label of the server→client handshake traffic secret.
pub const LABEL_S_HS_TRAFFIC: &[u8] = b"s hs traffic";
/// Label of the MAC key of KeyConfirm2 (step 10).
pub const LABEL_C_CONFIRM: &[u8] = b"c confirm";
/// Label of the MAC key of KeyConfirm1 (step 9) in version 2.
pub const LABEL_S_CONFIRM: &[u8] = b"s confirm";
/// Label of the salt of the master secret's extraction.
pub const LABEL_DERIVED: &[u8] = b"derived";
/// Label of the client→server application traffic secret.
pub const LABEL_C_AP_TRAFFIC: &[u8] = b"c ap traffic";
/// Label of the server→client application traffic secret.
pub const LABEL_S_AP_TRAFFIC: &[u8] = b"s ap traffic";
/// Label of the MAC key of SecureAck (step 13).
pub const LABEL_S_ACK: &[u8] = b"s ack";
/// Label of the first epoch secret of a session that re-keys (SPEC §15.1).
pub const LABEL_EPOCH: &[u8] = b"epoch";
/// Salt of the order-seed extraction.
pub const ORDER_SALT: &[u8] = b"Sovereign-Chain/1 step order";
/// Label of the step-order derivation.
pub const LABEL_ORDER: &[u8] = b"order";

/// The context strings signed or MACed at steps 9–13 (and, in version 2,
/// step 4). Each names the protocol, version, role and step, and is
/// followed by a zero byte and the transcript hash, so no signature or MAC
/// can stand in for another — also when one key holds a certificate valid
/// for both roles, and across versions. The constants at the top are
/// version 1's; [`v2`](context::v2) holds version 2's.
pub mod context {
    /// Step 9, server signature over th_6.
    pub const KEY_CONFIRM_1: &[u8] = b"Sovereign-Chain/1 server KeyConfirm1 step 9";
    /// Step 10, client MAC over th_6.
    pub const KEY_CONFIRM_2: &[u8] = b"Sovereign-Chain/1 client KeyConfirm2 step 10";
    /// Step 11, client signature over th_10.
    pub const CLIENT_AUTH: &[u8] = b"Sovereign-Chain/1 client ClientAuth step 11";
    /// Step 12, server signature over th_11.
    pub const SERVER_AUTH: &[u8] = b"Sovereign-Chain/1 server ServerAuth step 12";
    /// Step 13, server MAC over th_12.
    pub const SECURE_ACK: &[u8] = b"Sovereign-Chain/1 server SecureAck step 13";

    /// Version 2's context strings (SPEC §16.5).
    pub mod v2 {
        /// Step 4, server signature over th_3.
        pub const CLIENT_CERT_REQUEST: &[u8] = b"Sovereign-Chain/2 server ClientCertRequest step 4";
        /// Step 9, server MAC over th_6.
        pub const KEY_CONFIRM_1: &[u8] = b"Sovereign-Chain/2 server KeyConfirm1 step 9";
        /// Step 10, client MAC over th_6.
        pub const KEY_CONFIRM_2: &[u8] = b"Sovereign-Chain/2 client KeyConfirm2 step 10";
        /// Step 11, client signature over th_10.
        pub const CLIENT_AUTH: &[u8] = b"Sovereign-Chain/2 client ClientAuth step 11";
        /// Step 12, server signature over th_11.
        pub const SERVER_AUTH: &[u8] = b"Sovereign-Chain/2 server ServerAuth step 12";
        /// Step 13, server MAC over th_12.
        pub const SECURE_ACK: &[u8] = b"Sovereign-Chain/2 server SecureAck step 13";
    }
}

/// The context strings of one protocol version, for the steps both versions
/// share (step 4's exists only in version 2).
pub(crate) struct Contexts {
    pub(crate) key_confirm_1: &'static [u8],
    pub(crate) key_confirm_2: &'static [u8],
    pub(crate) client_auth: &'static [u8],
    pub(crate) server_auth: &'static [u8],
    pub(crate) secure_ack: &'static [u8],
}

impl Contexts {
    /// The strings of `version` (version 1's for any version but 2).
    pub(crate) fn of(version: ProtocolVersion) -> &'static Self {
        static V1: Contexts = Contexts {
            key_confirm_1: context::KEY_CONFIRM_1,
            key_confirm_2: context::KEY_CONFIRM_2,
            client_auth: context::CLIENT_AUTH,
            server_auth: context::SERVER_AUTH,
            secure_ack: context::SECURE_ACK,
        };
        static V2: Contexts = Contexts {
            key_confirm_1: context::v2::KEY_CONFIRM_1,
            key_confirm_2: context::v2::KEY_CONFIRM_2,
            client_auth: context::v2::CLIENT_AUTH,
            server_auth: context::v2::SERVER_AUTH,
            secure_ack: context::v2::SECURE_ACK,
        };
        if version == ProtocolVersion::V2 {
            &V2
        } else {
            &V1
        }
    }
}

/// The bytes a step's signature or MAC covers: `context || 0x00 || transcript hash`.
pub(crate) fn signed_content(context: &[u8], th: &[u8; SECRET_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.len() + 1 + SECRET_LEN);
    out.extend_from_slice(context);
    out.push(0);
    out.extend_from_slice(th);
    out
}

/// HKDF-Expand-Label, after TLS 1.3:
/// `HKDF-Expand(secret, length (u16) || u8 len || "sc1 " || label || u8 len || context, length)`.
pub fn expand_label(
    provider: &CryptoProvider,
    secret: &Secret,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let len = u16::try_from(out.len())
        .map_err(|_| CryptoError)?
        .to_be_bytes();
    let label_len = [u8::try_from(LABEL_PREFIX.len() + label.len()).map_err(|_| CryptoError)?];
    let context_len = [u8::try_from(context.len()).map_err(|_| CryptoError)?];
    provider.hash.hkdf_expand(
        secret,
        &[&len, &label_len, LABEL_PREFIX, label, &context_len, context],
        out,
    )
}

/// [`expand_label`] into a new 32-byte secret.
pub fn expand_secret(
    provider: &CryptoProvider,
    secret: &Secret,
    label: &[u8],
    context: &[u8],
) -> Result<Secret, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
    expand_label(provider, secret, label, context, &mut bytes[..])?;
    Ok(Secret::new(*bytes))
}

/// Receives every secret of the key schedule, for debugging and for test
/// vectors. **Whoever holds these secrets can decrypt the session**: set one
/// only through the configs' `dangerous_key_log`, never in production.
pub trait KeyLog: Send + Sync + core::fmt::Debug {
    /// One secret: `label` (see [`key_log_labels`]), the session's client
    /// random (to tell sessions apart) and the secret's bytes.
    fn log(&self, label: &'static str, client_random: &[u8; 32], secret: &[u8]);
}

/// The labels a [`KeyLog`] receives, in the order they are derived.
pub mod key_log_labels {
    /// The X25519 shared secret.
    pub const X25519_SHARED: &str = "X25519_SHARED_SECRET";
    /// The handshake secret HS.
    pub const HANDSHAKE: &str = "HANDSHAKE_SECRET";
    /// chain₀ of the client's handshake records.
    pub const CLIENT_HS_TRAFFIC: &str = "CLIENT_HANDSHAKE_TRAFFIC_SECRET";
    /// chain₀ of the server's handshake records.
    pub const SERVER_HS_TRAFFIC: &str = "SERVER_HANDSHAKE_TRAFFIC_SECRET";
    /// The MAC key of KeyConfirm2.
    pub const CLIENT_CONFIRM: &str = "CLIENT_CONFIRM_KEY";
    /// Version 2: the ML-KEM-768 secret of step 2 (in HS).
    pub const MLKEM_STEP2: &str = "MLKEM_STEP2_SHARED_SECRET";
    /// Version 2: the MAC key of KeyConfirm1.
    pub const SERVER_CONFIRM: &str = "SERVER_CONFIRM_KEY";
    /// Version 1: the ML-KEM-768 secret of step 7.
    pub const MLKEM_STEP7: &str = "MLKEM_STEP7_SHARED_SECRET";
    /// The ML-KEM-768 secret of step 8.
    pub const MLKEM_STEP8: &str = "MLKEM_STEP8_SHARED_SECRET";
    /// The master secret MS.
    pub const MASTER: &str = "MASTER_SECRET";
    /// chain₀ of the client's application records (seed-code salted).
    pub const CLIENT_CHAIN0: &str = "CLIENT_CHAIN0";
    /// chain₀ of the server's application records (seed-code salted).
    pub const SERVER_CHAIN0: &str = "SERVER_CHAIN0";
    /// The MAC key of SecureAck.
    pub const SECURE_ACK: &str = "SECURE_ACK_KEY";
    /// The first epoch secret E₀, in a session that re-keys (SPEC §15.1).
    pub const EPOCH0: &str = "EPOCH0_SECRET";
}

/// A session's key log, if one is configured.
#[derive(Clone, Debug)]
pub(crate) struct KeyLogger {
    log: Option<std::sync::Arc<dyn KeyLog>>,
    client_random: [u8; 32],
}

impl KeyLogger {
    pub(crate) fn new(log: Option<std::sync::Arc<dyn KeyLog>>, client_random: [u8; 32]) -> Self {
        Self { log, client_random }
    }

    fn log(&self, label: &'static str, secret: &Secret) {
        if let Some(log) = &self.log {
            log.log(label, &self.client_random, secret.expose());
        }
    }
}

/// The secrets of the handshake phase.
pub(crate) struct HandshakeSecrets {
    pub(crate) hs: Secret,
    pub(crate) c_hs_traffic: Secret,
    pub(crate) s_hs_traffic: Secret,
    pub(crate) kc2_key: Secret,
}

impl HandshakeSecrets {
    /// Version 1: HS from the X25519 secret alone.
    pub(crate) fn derive_v1(
        provider: &CryptoProvider,
        dh: &Secret,
        th2: &[u8; SECRET_LEN],
        log: &KeyLogger,
    ) -> Result<Self, CryptoError> {
        log.log(key_log_labels::X25519_SHARED, dh);
        Self::derive(provider, HANDSHAKE_SALT, &[dh.expose()], th2, log)
    }

    /// Version 2: HS from the X25519 secret and the ML-KEM-768 secret of
    /// step 2; also the MAC key of step 9 (`kc1_key`), returned beside.
    pub(crate) fn derive_v2(
        provider: &CryptoProvider,
        dh: &Secret,
        ss2: &Secret,
        th2: &[u8; SECRET_LEN],
        log: &KeyLogger,
    ) -> Result<(Self, Secret), CryptoError> {
        log.log(key_log_labels::X25519_SHARED, dh);
        log.log(key_log_labels::MLKEM_STEP2, ss2);
        let out = Self::derive(
            provider,
            HANDSHAKE_SALT_V2,
            &[dh.expose(), ss2.expose()],
            th2,
            log,
        )?;
        let kc1_key = expand_secret(provider, &out.hs, LABEL_S_CONFIRM, th2)?;
        log.log(key_log_labels::SERVER_CONFIRM, &kc1_key);
        Ok((out, kc1_key))
    }

    fn derive(
        provider: &CryptoProvider,
        salt: &[u8],
        ikm: &[&[u8]],
        th2: &[u8; SECRET_LEN],
        log: &KeyLogger,
    ) -> Result<Self, CryptoError> {
        let hs = provider.hash.hkdf_extract(salt, ikm);
        let out = Self {
            c_hs_traffic: expand_secret(provider, &hs, LABEL_C_HS_TRAFFIC, th2)?,
            s_hs_traffic: expand_secret(provider, &hs, LABEL_S_HS_TRAFFIC, th2)?,
            kc2_key: expand_secret(provider, &hs, LABEL_C_CONFIRM, th2)?,
            hs,
        };
        log.log(key_log_labels::HANDSHAKE, &out.hs);
        log.log(key_log_labels::CLIENT_HS_TRAFFIC, &out.c_hs_traffic);
        log.log(key_log_labels::SERVER_HS_TRAFFIC, &out.s_hs_traffic);
        log.log(key_log_labels::CLIENT_CONFIRM, &out.kc2_key);
        Ok(out)
    }
}

/// The ML-KEM-768 secrets the master secret mixes in, by version; the
/// version also fixes the version field of its input.
pub(crate) enum KemSecrets<'a> {
    /// Version 1: `IKM = ss_7 || ss_8 || 0x5c01 || suite` (68 bytes).
    V1 {
        /// Step 7's, encapsulated by the server to the ClientHello's key.
        ss7: &'a Secret,
        /// Step 8's, encapsulated by the client to the ServerHello's key.
        ss8: &'a Secret,
    },
    /// Version 2: `IKM = ss_8 || 0x5c02 || suite` (36 bytes); step 2's
    /// secret is already in HS.
    V2 {
        /// Step 8's, encapsulated by the client to step 7's key.
        ss8: &'a Secret,
    },
}

/// The outputs of the final key schedule. The master secret itself is
/// dropped (and zeroized) inside [`FinalSecrets::derive`].
pub(crate) struct FinalSecrets {
    pub(crate) c_chain0: Secret,
    pub(crate) s_chain0: Secret,
    pub(crate) ack_key: Secret,
    /// E₀, when the session re-keys.
    pub(crate) epoch0: Option<Secret>,
}

impl FinalSecrets {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn derive(
        provider: &CryptoProvider,
        hs: &Secret,
        kem: KemSecrets<'_>,
        suite: CipherSuite,
        seed_code: &[u8],
        th11: &[u8; SECRET_LEN],
        rekey: bool,
        log: &KeyLogger,
    ) -> Result<Self, CryptoError> {
        let empty_hash = provider.hash.hash(b"");
        let derived = expand_secret(provider, hs, LABEL_DERIVED, &empty_hash)?;
        let suite = suite.0.to_be_bytes();
        let ms = match kem {
            KemSecrets::V1 { ss7, ss8 } => {
                log.log(key_log_labels::MLKEM_STEP7, ss7);
                log.log(key_log_labels::MLKEM_STEP8, ss8);
                provider.hash.hkdf_extract(
                    derived.expose(),
                    &[
                        ss7.expose(),
                        ss8.expose(),
                        &ProtocolVersion::V1.0.to_be_bytes(),
                        &suite,
                    ],
                )
            }
            KemSecrets::V2 { ss8 } => {
                log.log(key_log_labels::MLKEM_STEP8, ss8);
                provider.hash.hkdf_extract(
                    derived.expose(),
                    &[ss8.expose(), &ProtocolVersion::V2.0.to_be_bytes(), &suite],
                )
            }
        };
        let c_ap = expand_secret(provider, &ms, LABEL_C_AP_TRAFFIC, th11)?;
        let s_ap = expand_secret(provider, &ms, LABEL_S_AP_TRAFFIC, th11)?;
        let out = Self {
            c_chain0: provider.hash.hkdf_extract(seed_code, &[c_ap.expose()]),
            s_chain0: provider.hash.hkdf_extract(seed_code, &[s_ap.expose()]),
            ack_key: expand_secret(provider, &ms, LABEL_S_ACK, th11)?,
            epoch0: if rekey {
                Some(expand_secret(provider, &ms, LABEL_EPOCH, th11)?)
            } else {
                None
            },
        };
        log.log(key_log_labels::MASTER, &ms);
        log.log(key_log_labels::CLIENT_CHAIN0, &out.c_chain0);
        log.log(key_log_labels::SERVER_CHAIN0, &out.s_chain0);
        log.log(key_log_labels::SECURE_ACK, &out.ack_key);
        if let Some(e0) = &out.epoch0 {
            log.log(key_log_labels::EPOCH0, e0);
        }
        Ok(out)
    }
}

/// The running transcript hash over every handshake message's full encoding.
pub(crate) struct Transcript {
    ctx: Box<dyn HashContext>,
}

impl Transcript {
    pub(crate) fn new(provider: &CryptoProvider) -> Self {
        Self {
            ctx: provider.hash.start(),
        }
    }

    pub(crate) fn add(&mut self, encoded_message: &[u8]) {
        self.ctx.update(encoded_message);
    }

    pub(crate) fn current(&self) -> [u8; SECRET_LEN] {
        self.ctx.fork().finish()
    }
}
