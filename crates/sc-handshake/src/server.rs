//! The server's state machine: one struct per state, named after what it
//! waits for, each consumed by the flight that moves it on.

use std::sync::Arc;

use rand_core::CryptoRngCore;
use sc_pki::{UnixTime, VerifiedPeer};
use sc_wire::{
    CipherSuite, ClientCertKind, ClientCertRequest, ClientCertRequestV2, Codec, DistinguishedName,
    HandshakeMessage, HandshakeType, MlKemEncapsulationKey, OrderSeed, ProtocolVersion, Random,
    RouteName, SeedCode, SeedCodeSecret, ServerHello, ServerHelloV2,
};

use sc_wire::messages::{
    CERT_HASH_LEN, HANDSHAKE_HEADER_LEN, MAC_LEN, MLKEM768_CT_LEN, MLKEM768_EK_LEN, ORDER_SEED_LEN,
    SEED_CODE_LEN, SIGNATURE_LEN,
};
use zeroize::Zeroizing;

use crate::config::ServerConfig;
use crate::crypto::{KemSecret, Secret};
use crate::error::{Error, PeerIncompatible, PeerMisbehaved};
use crate::flight::{
    check_level, internal, log_step, payload, push_message, to_der, to_wire, FlightReader,
};
use crate::order::StepOrder;
use crate::schedule::{
    context, signed_content, Contexts, FinalSecrets, HandshakeSecrets, KemSecrets, KeyLogger,
    Transcript,
};
use crate::{Action, HandshakeSummary, Level, RekeyKeys};

/// The server's step-6 flight: SeedCode, KeyExchange1 and KeyConfirm1, each
/// with its 4-byte header. Its size is fixed per version, so the buffer
/// holding the seed code is allocated once, at this size.
const fn seed_flight_len(version: ProtocolVersion) -> usize {
    let seed = HANDSHAKE_HEADER_LEN + SEED_CODE_LEN + ORDER_SEED_LEN + CERT_HASH_LEN;
    if version.0 == ProtocolVersion::V2.0 {
        // A fresh encapsulation key and a MAC.
        seed + (HANDSHAKE_HEADER_LEN + MLKEM768_EK_LEN) + (HANDSHAKE_HEADER_LEN + MAC_LEN)
    } else {
        // A ciphertext and a signature.
        seed + (HANDSHAKE_HEADER_LEN + MLKEM768_CT_LEN) + (HANDSHAKE_HEADER_LEN + SIGNATURE_LEN)
    }
}

const ROLE: &str = "server";

/// The server side of one handshake.
pub struct ServerHandshake {
    state: State,
}

impl core::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("state", &self.state.name())
            .finish()
    }
}

enum State {
    ExpectClientHello(Arc<ServerConfig>),
    ExpectClientCert(Box<ExpectClientCert>),
    ExpectClientFinish(Box<ExpectClientFinish>),
    Complete,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::ExpectClientHello(_) => "ExpectClientHello",
            Self::ExpectClientCert(_) => "ExpectClientCert",
            Self::ExpectClientFinish(_) => "ExpectClientFinish",
            Self::Complete => "Complete",
            Self::Failed => "Failed",
        }
    }
}

impl ServerHandshake {
    /// A server handshake waiting for a ClientHello.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            state: State::ExpectClientHello(config),
        }
    }

    /// Handles one record's worth of handshake messages that arrived at
    /// protection `level`. Returns what the driver must do, in order.
    ///
    /// After an error the handshake is failed for good; the driver sends the
    /// error's alert.
    pub fn handle(
        &mut self,
        level: Level,
        payload: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Action>, Error> {
        let state = core::mem::replace(&mut self.state, State::Failed);
        let mut actions = Vec::new();
        let next = match state {
            State::ExpectClientHello(config) => {
                check_level(level, Level::Plaintext, HandshakeType::CLIENT_HELLO)?;
                handle_client_hello(config, payload, rng, &mut actions)?
            }
            State::ExpectClientCert(s) => {
                check_level(level, Level::Handshake, HandshakeType::CLIENT_CERT_SEND)?;
                s.handle(payload, now, rng, &mut actions)?
            }
            State::ExpectClientFinish(s) => {
                check_level(level, Level::Handshake, HandshakeType::KEY_EXCHANGE_2)?;
                s.handle(payload, &mut actions)?
            }
            State::Complete | State::Failed => {
                return Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "no handshake message",
                    got: payload
                        .first()
                        .map_or(HandshakeType(0), |t| HandshakeType(*t)),
                }
                .into())
            }
        };
        self.state = next;
        Ok(actions)
    }

    /// Whether the handshake has completed (ClientAuth verified, ServerAuth and
    /// SecureAck sent).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// The route name the client asked for, once the ClientHello is in.
    pub fn route(&self) -> Option<&RouteName> {
        match &self.state {
            State::ExpectClientCert(s) => s.route.as_ref(),
            State::ExpectClientFinish(s) => s.route.as_ref(),
            _ => None,
        }
    }
}

fn handle_client_hello(
    config: Arc<ServerConfig>,
    payload: &[u8],
    rng: &mut dyn CryptoRngCore,
    actions: &mut Vec<Action>,
) -> Result<State, Error> {
    let provider = config.provider;
    // The ClientHello (and a CookieEcho) read the same in both versions.
    let mut flight = FlightReader::new(payload, ProtocolVersion::V1);
    // After a cookie retry (SPEC §4.5) the ClientHello comes behind a
    // CookieEcho. The driver checked the cookie before the handshake
    // started; here it is bound into the transcript.
    let retry = match flight.peek() {
        Some(HandshakeType::COOKIE_ECHO) => {
            let (msg, _) = flight.expect(HandshakeType::COOKIE_ECHO)?;
            Some(payload!(msg, CookieEcho))
        }
        _ => None,
    };
    let (msg, raw1) = flight.expect(HandshakeType::CLIENT_HELLO)?;
    flight.finish(HandshakeType::CLIENT_HELLO)?;
    let ch = payload!(msg, ClientHello);
    // Every ClientHello carries version 1's number; a client offers version
    // 2 among its suites (SPEC §16.1).
    if ch.version != ProtocolVersion::V1 {
        return Err(PeerIncompatible::Version(ch.version).into());
    }
    let version = config.choose_version(&ch.suites)?;
    let suite =
        config
            .choose_suite(&ch.suites)
            .ok_or_else(|| PeerIncompatible::NoCommonCipher {
                offered: ch.suites.clone(),
                enabled: config.suites.clone(),
            })?;
    provider
        .kem
        .check_encapsulation_key(&ch.mlkem)
        .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
    let mut transcript = Transcript::new(provider);
    transcript.add(raw1);
    log_step(
        ROLE,
        Some(version),
        HandshakeType::CLIENT_HELLO,
        &format!(
            "received: offered {:?}, route {:?}; version {version} chosen",
            ch.suites, ch.route
        ),
    );
    if let Some(cookie) = &retry {
        // The HelloRetry as it was sent: the cookie is all it holds.
        transcript.add(&crate::cookie::retry_message(cookie));
        log_step(
            ROLE,
            Some(version),
            HandshakeType::COOKIE_ECHO,
            "received: the cookie of our HelloRetry, bound into the transcript",
        );
    }

    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    let random = Random::from(random);
    let (kx, x25519) = provider.kx.generate(rng);
    let dh = kx
        .agree(&ch.x25519)
        .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
    let keylog = KeyLogger::new(config.key_log.clone(), *ch.random.as_bytes());
    let mut plain = Vec::new();
    let (secrets, mode) = if version == ProtocolVersion::V2 {
        // Version 2: encapsulate to the client's key now, so the handshake
        // secret is hybrid from flight 2 on.
        let (mlkem_ct, ss2) = provider
            .kem
            .encapsulate(&ch.mlkem, rng)
            .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
        let hello = ServerHelloV2 {
            random,
            x25519,
            mlkem_ct,
            suite,
        };
        let range = push_message(&mut plain, &HandshakeMessage::ServerHelloV2(hello));
        transcript.add(&plain[range]);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::SERVER_HELLO,
            &format!("sent: cipher {suite}, ML-KEM-768 ciphertext to the client's key"),
        );
        let th2 = transcript.current();
        let (secrets, kc1_key) =
            HandshakeSecrets::derive_v2(provider, &dh, &ss2, &th2, &keylog).map_err(internal)?;
        (secrets, Mode::V2 { kc1_key })
    } else {
        let (kem, mlkem) = provider.kem.generate(rng);
        let hello = ServerHello {
            version: ProtocolVersion::V1,
            random,
            x25519,
            mlkem,
            suite,
        };
        let range = push_message(&mut plain, &HandshakeMessage::ServerHello(hello));
        transcript.add(&plain[range]);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::SERVER_HELLO,
            &format!("sent: cipher {suite}"),
        );
        let th2 = transcript.current();
        let secrets =
            HandshakeSecrets::derive_v1(provider, &dh, &th2, &keylog).map_err(internal)?;
        let mode = Mode::V1 {
            kem,
            client_kem_key: ch.mlkem,
        };
        (secrets, mode)
    };
    actions.push(Action::Send {
        level: Level::Plaintext,
        messages: Zeroizing::new(plain),
    });
    actions.push(Action::SetWriteKey {
        level: Level::Handshake,
        suite,
        chain0: secrets.s_hs_traffic.clone(),
    });
    actions.push(Action::SetReadKey {
        level: Level::Handshake,
        suite,
        chain0: secrets.c_hs_traffic.clone(),
    });

    let mut sealed = Vec::new();
    let chain = to_wire(config.credential.chain())?;
    let range = push_message(&mut sealed, &HandshakeMessage::ServerCertSend(chain));
    transcript.add(&sealed[range]);
    log_step(ROLE, Some(version), HandshakeType::SERVER_CERT_SEND, "sent");
    let ca_names = config
        .verifier
        .ca_names()
        .iter()
        .filter_map(|n| DistinguishedName::new(n.clone()).ok())
        .take(sc_wire::messages::MAX_CA_NAMES)
        .collect();
    let streams = config.streams && ch.suites.contains(&sc_wire::CipherSuite::STREAMS);
    let rekey = config.rekey && ch.suites.contains(&sc_wire::CipherSuite::REKEY);
    let request = ClientCertRequest {
        anonymous_allowed: config.verifier.anonymous_allowed(),
        streams,
        rekey,
        ca_names,
    };
    let request = match mode {
        Mode::V1 { .. } => HandshakeMessage::ClientCertRequest(request),
        Mode::V2 { .. } => {
            // SPEC §16.2: the server proves it holds its certificate's key
            // before the client sends anything of its own.
            let th3 = transcript.current();
            let signature = config
                .credential
                .sign(&signed_content(context::v2::CLIENT_CERT_REQUEST, &th3));
            HandshakeMessage::ClientCertRequestV2(ClientCertRequestV2 {
                request,
                signature: signature.into(),
            })
        }
    };
    let range = push_message(&mut sealed, &request);
    transcript.add(&sealed[range]);
    log_step(
        ROLE,
        Some(version),
        HandshakeType::CLIENT_CERT_REQUEST,
        if version == ProtocolVersion::V2 {
            "sent: signed over transcript through step 3"
        } else {
            "sent"
        },
    );
    actions.push(Action::Send {
        level: Level::Handshake,
        messages: Zeroizing::new(sealed),
    });

    Ok(State::ExpectClientCert(Box::new(ExpectClientCert {
        keylog,
        config,
        route: ch.route,
        streams,
        rekey,
        mode,
        suite,
        hs: secrets.hs,
        kc2_key: secrets.kc2_key,
        transcript,
    })))
}

/// What the server keeps after the ServerHello that differs between the
/// versions.
enum Mode {
    /// Version 1: our step-2 decapsulation key (step 8 comes to it); step 7
    /// encapsulates to the client's step-1 key; step 9 is a signature.
    V1 {
        kem: Box<dyn KemSecret>,
        client_kem_key: MlKemEncapsulationKey,
    },
    /// Version 2: step 2 used the client's key; step 7 sends a fresh key of
    /// ours, step 9 is a MAC under `kc1_key`.
    V2 { kc1_key: Secret },
}

impl Mode {
    fn version(&self) -> ProtocolVersion {
        match self {
            Self::V1 { .. } => ProtocolVersion::V1,
            Self::V2 { .. } => ProtocolVersion::V2,
        }
    }
}

struct ExpectClientCert {
    keylog: KeyLogger,
    config: Arc<ServerConfig>,
    route: Option<RouteName>,
    /// Whether the session multiplexes streams (offered and enabled).
    streams: bool,
    /// Whether the session re-keys (offered and enabled).
    rekey: bool,
    mode: Mode,
    suite: CipherSuite,
    hs: Secret,
    kc2_key: Secret,
    transcript: Transcript,
}

impl ExpectClientCert {
    fn handle(
        mut self,
        payload: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
        actions: &mut Vec<Action>,
    ) -> Result<State, Error> {
        let provider = self.config.provider;
        let version = self.mode.version();
        let mut flight = FlightReader::new(payload, version);
        let (msg, raw5) = flight.expect(HandshakeType::CLIENT_CERT_SEND)?;
        flight.finish(HandshakeType::CLIENT_CERT_SEND)?;
        let send = payload!(msg, ClientCertSend);
        let chain = to_der(&send.chain);
        let client = match send.kind {
            ClientCertKind::ANONYMOUS => {
                let leaf = chain
                    .first()
                    .ok_or(PeerMisbehaved::CertificateKindMismatch)?;
                self.config.verifier.verify_anonymous(leaf, now)?
            }
            _ => self.config.verifier.verify_client(&chain, now)?,
        };
        self.transcript.add(raw5);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::CLIENT_CERT_SEND,
            &format!("verified: {}", client.identity),
        );

        let mut code = [0u8; 64];
        rng.fill_bytes(&mut code);
        let code = SeedCodeSecret::new(code);
        let mut order_seed = [0u8; 32];
        rng.fill_bytes(&mut order_seed);
        let order_seed = OrderSeed::new(order_seed);
        let order = StepOrder::from_seed(provider, &order_seed).map_err(internal)?;
        let client_cert_hash = provider.hash.hash(send.chain.leaf().as_der());
        let seed = SeedCode {
            code: code.clone(),
            order_seed,
            client_cert_hash,
        };
        // The flight holds the seed code: one zeroizing buffer of its exact
        // final size, so no reallocation leaves a copy behind unwiped.
        let flight_len = seed_flight_len(version);
        let mut out = Zeroizing::new(Vec::with_capacity(flight_len));
        let range = push_message(&mut out, &HandshakeMessage::SeedCode(seed));
        self.transcript.add(&out[range]);
        log_step(ROLE, Some(version), HandshakeType::SEED_CODE, "sent");
        tracing::debug!(target: "sc_handshake", role = ROLE, order = %order, "order of steps 7-10: {order}");
        let th6 = self.transcript.current();

        // Our two messages, in the permuted relative order; steps 7–10 depend
        // only on state through step 6, so nothing waits for the client.
        let content9 = signed_content(Contexts::of(version).key_confirm_1, &th6);
        let (kem, step7, encoded7, encoded9, said7, said9) = match self.mode {
            Mode::V1 {
                kem,
                client_kem_key,
            } => {
                let (ct7, ss7) = provider
                    .kem
                    .encapsulate(&client_kem_key, rng)
                    .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
                let sig9 = self.config.credential.sign(&content9);
                (
                    kem,
                    Step7::Encapsulated { ss7 },
                    HandshakeMessage::KeyExchange1(ct7).encoded(),
                    HandshakeMessage::KeyConfirm1(sig9.into()).encoded(),
                    "sent: ML-KEM-768 ciphertext to the client's key",
                    "sent: signature over transcript through step 6",
                )
            }
            Mode::V2 { kc1_key } => {
                // A fresh key for the application secret, made only now that
                // the client has shown its certificate.
                let (kem, ek7) = provider.kem.generate(rng);
                let mac9 = provider.hash.hmac(kc1_key.expose(), &[&content9]);
                (
                    kem,
                    Step7::KeySent,
                    HandshakeMessage::KeyExchange1V2(ek7).encoded(),
                    HandshakeMessage::KeyConfirm1V2(mac9.into()).encoded(),
                    "sent: a fresh ML-KEM-768 encapsulation key",
                    "sent: MAC over transcript through step 6",
                )
            }
        };
        for typ in order.sent_by(true) {
            if typ == HandshakeType::KEY_EXCHANGE_1 {
                out.extend_from_slice(&encoded7);
                log_step(ROLE, Some(version), typ, said7);
            } else {
                out.extend_from_slice(&encoded9);
                log_step(ROLE, Some(version), typ, said9);
            }
        }
        debug_assert_eq!(out.len(), flight_len, "the flight's size is fixed");
        actions.push(Action::Send {
            level: Level::Handshake,
            messages: out,
        });
        Ok(State::ExpectClientFinish(Box::new(ExpectClientFinish {
            keylog: self.keylog,
            config: self.config,
            route: self.route,
            streams: self.streams,
            rekey: self.rekey,
            kem,
            step7,
            suite: self.suite,
            hs: self.hs,
            kc2_key: self.kc2_key,
            client,
            order,
            code,
            encoded7,
            encoded9,
            th6,
            transcript: self.transcript,
        })))
    }
}

/// What step 7 left the server with, by version.
enum Step7 {
    /// Version 1: the secret of the ciphertext it sent.
    Encapsulated { ss7: Secret },
    /// Version 2: it sent a key; its secret half is the `kem` of
    /// [`ExpectClientFinish`].
    KeySent,
}

struct ExpectClientFinish {
    keylog: KeyLogger,
    config: Arc<ServerConfig>,
    route: Option<RouteName>,
    /// Whether the session multiplexes streams (offered and enabled).
    streams: bool,
    /// Whether the session re-keys (offered and enabled).
    rekey: bool,
    /// The decapsulation key step 8 comes to: version 1's of step 2,
    /// version 2's of step 7.
    kem: Box<dyn KemSecret>,
    step7: Step7,
    suite: CipherSuite,
    hs: Secret,
    kc2_key: Secret,
    client: VerifiedPeer,
    order: StepOrder,
    code: SeedCodeSecret,
    encoded7: Vec<u8>,
    encoded9: Vec<u8>,
    th6: [u8; 32],
    transcript: Transcript,
}

/// Proof that the client's ClientAuth signature verified; only
/// [`ExpectClientFinish::verify_client_auth`] makes one.
struct ClientAuthVerified(());

impl ExpectClientFinish {
    fn version(&self) -> ProtocolVersion {
        match self.step7 {
            Step7::Encapsulated { .. } => ProtocolVersion::V1,
            Step7::KeySent => ProtocolVersion::V2,
        }
    }

    fn verify_client_auth(
        &self,
        sig: &sc_wire::Signature,
        th10: &[u8; 32],
    ) -> Result<ClientAuthVerified, Error> {
        let content = signed_content(Contexts::of(self.version()).client_auth, th10);
        self.config
            .provider
            .signature
            .verify(&self.client.public_key, &content, sig)
            .map_err(|_| PeerMisbehaved::ClientAuthInvalid)?;
        Ok(ClientAuthVerified(()))
    }

    fn handle(mut self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let provider = self.config.provider;
        let version = self.version();
        let contexts = Contexts::of(version);
        let mut flight = FlightReader::new(payload, version);
        let mut ss8 = None;
        let mut encoded8: &[u8] = &[];
        let mut encoded10: &[u8] = &[];
        for typ in self.order.sent_by(false) {
            let (msg, raw) = flight.expect(typ)?;
            match msg {
                HandshakeMessage::KeyExchange2(ct) => {
                    ss8 = Some(self.kem.decapsulate(&ct).map_err(internal)?);
                    encoded8 = raw;
                    log_step(
                        ROLE,
                        Some(version),
                        typ,
                        "received: ML-KEM-768 ciphertext decapsulated",
                    );
                }
                HandshakeMessage::KeyConfirm2(mac) => {
                    provider
                        .hash
                        .hmac_verify(
                            self.kc2_key.expose(),
                            &[&signed_content(contexts.key_confirm_2, &self.th6)],
                            mac.as_bytes(),
                        )
                        .map_err(|_| PeerMisbehaved::KeyConfirm2Invalid)?;
                    encoded10 = raw;
                    log_step(
                        ROLE,
                        Some(version),
                        typ,
                        "verified: client MAC over transcript through step 6",
                    );
                }
                other => {
                    return Err(PeerMisbehaved::UnexpectedMessage {
                        expected: typ.name().unwrap_or("?"),
                        got: other.typ(),
                    }
                    .into())
                }
            }
        }
        let Some(ss8) = ss8 else {
            return Err(PeerMisbehaved::MissingMessage {
                expected: "KeyExchange2",
            }
            .into());
        };

        for typ in self.order.steps() {
            let raw: &[u8] = match typ {
                HandshakeType::KEY_EXCHANGE_1 => &self.encoded7,
                HandshakeType::KEY_EXCHANGE_2 => encoded8,
                HandshakeType::KEY_CONFIRM_1 => &self.encoded9,
                _ => encoded10,
            };
            self.transcript.add(raw);
        }
        let th10 = self.transcript.current();

        let (msg, raw11) = flight.expect(HandshakeType::CLIENT_AUTH)?;
        flight.finish(HandshakeType::CLIENT_AUTH)?;
        let sig = payload!(msg, ClientAuth);
        let ClientAuthVerified(()) = self.verify_client_auth(&sig, &th10)?;
        self.transcript.add(raw11);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::CLIENT_AUTH,
            "verified: client signature over transcript through step 10",
        );
        let th11 = self.transcript.current();

        let kem_secrets = match &self.step7 {
            Step7::Encapsulated { ss7 } => KemSecrets::V1 { ss7, ss8: &ss8 },
            Step7::KeySent => KemSecrets::V2 { ss8: &ss8 },
        };
        let fin = FinalSecrets::derive(
            provider,
            &self.hs,
            kem_secrets,
            self.suite,
            self.code.expose(),
            &th11,
            self.rekey,
            &self.keylog,
        )
        .map_err(internal)?;
        actions.push(Action::SetReadKey {
            level: Level::Application,
            suite: self.suite,
            chain0: fin.c_chain0,
        });

        let sig = self
            .config
            .credential
            .sign(&signed_content(contexts.server_auth, &th11));
        let mut out = Vec::new();
        let range = push_message(&mut out, &HandshakeMessage::ServerAuth(sig.into()));
        self.transcript.add(&out[range]);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::SERVER_AUTH,
            "sent: signature over transcript through step 11",
        );
        actions.push(Action::Send {
            level: Level::Handshake,
            messages: Zeroizing::new(out),
        });
        let th12 = self.transcript.current();

        actions.push(Action::SetWriteKey {
            level: Level::Application,
            suite: self.suite,
            chain0: fin.s_chain0,
        });
        let ack = provider.hash.hmac(
            fin.ack_key.expose(),
            &[&signed_content(contexts.secure_ack, &th12)],
        );
        let mut out = Vec::new();
        push_message(&mut out, &HandshakeMessage::SecureAck(ack.into()));
        log_step(
            ROLE,
            Some(version),
            HandshakeType::SECURE_ACK,
            "sent under the final record keys",
        );
        actions.push(Action::Send {
            level: Level::Application,
            messages: Zeroizing::new(out),
        });
        if let Some(epoch0) = fin.epoch0 {
            actions.push(Action::KeepForRekey(Box::new(RekeyKeys {
                epoch0,
                identity: Arc::clone(&self.config.credential),
                peer_key: self.client.public_key,
            })));
        }
        actions.push(Action::Complete(Box::new(HandshakeSummary {
            version,
            suite: self.suite,
            order: self.order,
            peer: self.client.identity,
            route: self.route,
            session_hash: th12,
            streams: self.streams,
            rekey: self.rekey,
        })));
        // hs, ss7, ss8, the seed code and the KEM secret are dropped (and zeroized) here.
        Ok(State::Complete)
    }
}
