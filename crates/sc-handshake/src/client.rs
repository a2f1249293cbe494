//! The client's state machine: one struct per state, named after what it
//! waits for, each consumed by the message that moves it on.

use std::sync::Arc;

use rand_core::CryptoRngCore;
use sc_pki::{anonymous_credential, Credential, ServerName, UnixTime, VerifiedPeer};
use sc_wire::messages::{HANDSHAKE_HEADER_LEN, MLKEM768_CT_LEN};
use sc_wire::{
    ClientCertKind, ClientCertRequest, ClientCertSend, ClientHello, Codec, HandshakeMessage,
    HandshakeType, MlKemEncapsulationKey, ProtocolVersion, Random, RouteName,
};

use zeroize::Zeroizing;

use crate::config::{ClientConfig, ClientIdentity};
use crate::crypto::{KemSecret, KxSecret, Secret};
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

const ROLE: &str = "client";

/// The client side of one handshake.
pub struct ClientHandshake {
    state: State,
}

impl core::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("state", &self.state.name())
            .finish()
    }
}

enum State {
    ExpectServerHello(Box<ExpectServerHello>),
    ExpectServerCert(Box<ExpectServerCert>),
    ExpectSeedCode(Box<ExpectSeedCode>),
    ExpectServerAuth(Box<ExpectServerAuth>),
    ExpectSecureAck(Box<ExpectSecureAck>),
    Complete,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::ExpectServerHello(_) => "ExpectServerHello",
            Self::ExpectServerCert(_) => "ExpectServerCert",
            Self::ExpectSeedCode(_) => "ExpectSeedCode",
            Self::ExpectServerAuth(_) => "ExpectServerAuth",
            Self::ExpectSecureAck(_) => "ExpectSecureAck",
            Self::Complete => "Complete",
            Self::Failed => "Failed",
        }
    }
}

impl ClientHandshake {
    /// Starts a handshake with the server `server_name` (checked against its
    /// certificate). `route` is sent in plaintext for a relay, like TLS SNI.
    /// The returned actions hold flight 1 (the ClientHello).
    pub fn start(
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        route: Option<RouteName>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(Self, Vec<Action>), Error> {
        let provider = config.provider;
        let mut random = [0u8; 32];
        rng.fill_bytes(&mut random);
        let (kx, x25519) = provider.kx.generate(rng);
        let (kem, mlkem) = provider.kem.generate(rng);
        let hello = ClientHello {
            version: ProtocolVersion::V1,
            random: Random::from(random),
            x25519,
            mlkem,
            suites: offered_suites(&config),
            route: route.clone(),
        };
        let mut flight = Vec::new();
        let range = push_message(&mut flight, &HandshakeMessage::ClientHello(hello));
        let mut transcript = Transcript::new(provider);
        transcript.add(&flight[range.clone()]);
        // Kept for a cookie retry, which repeats it byte for byte.
        let hello = config.cookie_retry.then(|| flight[range].to_vec());
        log_step(
            ROLE,
            None,
            HandshakeType::CLIENT_HELLO,
            &format!(
                "sent: offered {:?}, versions {} to {}, route {:?}",
                config.suites, config.min_version, config.max_version, route
            ),
        );
        let keylog = KeyLogger::new(config.key_log.clone(), random);
        let state = State::ExpectServerHello(Box::new(ExpectServerHello {
            keylog,
            config,
            server_name,
            route,
            kx,
            kem,
            transcript,
            hello,
        }));
        Ok((
            Self { state },
            vec![Action::Send {
                level: Level::Plaintext,
                messages: Zeroizing::new(flight),
            }],
        ))
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
            State::ExpectServerHello(s) => {
                check_level(level, Level::Plaintext, HandshakeType::SERVER_HELLO)?;
                s.handle(payload, &mut actions)?
            }
            State::ExpectServerCert(s) => {
                check_level(level, Level::Handshake, HandshakeType::SERVER_CERT_SEND)?;
                s.handle(payload, now, rng, &mut actions)?
            }
            State::ExpectSeedCode(s) => {
                check_level(level, Level::Handshake, HandshakeType::SEED_CODE)?;
                s.handle(payload, rng, &mut actions)?
            }
            State::ExpectServerAuth(s) => {
                check_level(level, Level::Handshake, HandshakeType::SERVER_AUTH)?;
                s.handle(payload, &mut actions)?
            }
            State::ExpectSecureAck(s) => {
                check_level(level, Level::Application, HandshakeType::SECURE_ACK)?;
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

    /// Whether the handshake has completed (SecureAck verified).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }
}

struct ExpectServerHello {
    keylog: KeyLogger,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    route: Option<RouteName>,
    kx: Box<dyn KxSecret>,
    kem: Box<dyn KemSecret>,
    transcript: Transcript,
    /// The ClientHello message, while a cookie retry may still come (the
    /// capability offered, no retry yet).
    hello: Option<Vec<u8>>,
}

/// What the client keeps after the ServerHello that differs between the
/// versions.
enum Mode {
    /// Version 1: step 7 is a ciphertext to our step-1 key, step 8 is
    /// encapsulated to the server's step-2 key, step 9 is a signature.
    V1 {
        kem: Box<dyn KemSecret>,
        server_kem_key: MlKemEncapsulationKey,
    },
    /// Version 2: our step-1 key was used up by step 2; step 7 is the
    /// server's fresh key, step 8 is encapsulated to it, step 9 is a MAC
    /// under `kc1_key`.
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

impl ExpectServerHello {
    fn handle(mut self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let provider = self.config.provider;
        // A ServerHello names its own version, so the reader's is moot here.
        let mut flight = FlightReader::new(payload, ProtocolVersion::V1);
        if flight.peek() == Some(HandshakeType::HELLO_RETRY) {
            // SPEC §4.5: at most once, and only when offered.
            let Some(hello) = self.hello.take() else {
                return Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "ServerHello",
                    got: HandshakeType::HELLO_RETRY,
                }
                .into());
            };
            let (msg, raw) = flight.expect(HandshakeType::HELLO_RETRY)?;
            flight.finish(HandshakeType::HELLO_RETRY)?;
            let cookie = payload!(msg, HelloRetry);
            self.transcript.add(raw);
            log_step(
                ROLE,
                None,
                HandshakeType::HELLO_RETRY,
                &format!(
                    "received: the server is busy and asks for its {}-byte cookie back",
                    cookie.as_bytes().len()
                ),
            );
            let mut again = Vec::with_capacity(HANDSHAKE_HEADER_LEN + 65 + hello.len());
            push_message(&mut again, &HandshakeMessage::CookieEcho(cookie));
            again.extend_from_slice(&hello);
            log_step(
                ROLE,
                None,
                HandshakeType::COOKIE_ECHO,
                "sent: the cookie, then the same ClientHello",
            );
            actions.push(Action::Send {
                level: Level::Plaintext,
                messages: Zeroizing::new(again),
            });
            return Ok(State::ExpectServerHello(Box::new(self)));
        }
        let (msg, raw) = flight.expect(HandshakeType::SERVER_HELLO)?;
        flight.finish(HandshakeType::SERVER_HELLO)?;
        let (suite, secrets, mode) = match msg {
            HandshakeMessage::ServerHelloV2(sh) => {
                // SPEC §16.1: only a client that offered version 2 runs it.
                if self.config.max_version < ProtocolVersion::V2 {
                    return Err(PeerIncompatible::Version(ProtocolVersion::V2).into());
                }
                self.check_suite(sh.suite)?;
                let dh = self
                    .kx
                    .agree(&sh.x25519)
                    .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
                // Implicit rejection: a wrong ciphertext gives a secret the
                // server does not have, and flight 2 will not open.
                let ss2 = self.kem.decapsulate(&sh.mlkem_ct).map_err(internal)?;
                self.transcript.add(raw);
                log_step(
                    ROLE,
                    Some(ProtocolVersion::V2),
                    HandshakeType::SERVER_HELLO,
                    &format!(
                        "received: version {}, cipher {}, ML-KEM-768 ciphertext decapsulated",
                        ProtocolVersion::V2,
                        sh.suite
                    ),
                );
                let th2 = self.transcript.current();
                let (secrets, kc1_key) =
                    HandshakeSecrets::derive_v2(provider, &dh, &ss2, &th2, &self.keylog)
                        .map_err(internal)?;
                // Our step-1 decapsulation key has done its work: dropped
                // (and zeroized) with `self.kem` below.
                (sh.suite, secrets, Mode::V2 { kc1_key })
            }
            other => {
                let sh = payload!(other, ServerHello);
                if sh.version != ProtocolVersion::V1 {
                    return Err(PeerIncompatible::Version(sh.version).into());
                }
                if self.config.min_version > ProtocolVersion::V1 {
                    return Err(PeerIncompatible::VersionBelowMinimum {
                        peer: ProtocolVersion::V1,
                        min: self.config.min_version,
                    }
                    .into());
                }
                self.check_suite(sh.suite)?;
                // Validated when received, not only when used (FIPS 203 §7.2).
                provider
                    .kem
                    .check_encapsulation_key(&sh.mlkem)
                    .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
                let dh = self
                    .kx
                    .agree(&sh.x25519)
                    .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
                self.transcript.add(raw);
                log_step(
                    ROLE,
                    Some(ProtocolVersion::V1),
                    HandshakeType::SERVER_HELLO,
                    &format!(
                        "received: version {}, cipher {}",
                        ProtocolVersion::V1,
                        sh.suite
                    ),
                );
                let th2 = self.transcript.current();
                let secrets = HandshakeSecrets::derive_v1(provider, &dh, &th2, &self.keylog)
                    .map_err(internal)?;
                let mode = Mode::V1 {
                    kem: self.kem,
                    server_kem_key: sh.mlkem,
                };
                (sh.suite, secrets, mode)
            }
        };
        actions.push(Action::SetReadKey {
            level: Level::Handshake,
            suite,
            chain0: secrets.s_hs_traffic.clone(),
        });
        actions.push(Action::SetWriteKey {
            level: Level::Handshake,
            suite,
            chain0: secrets.c_hs_traffic.clone(),
        });
        Ok(State::ExpectServerCert(Box::new(ExpectServerCert {
            keylog: self.keylog,
            config: self.config,
            server_name: self.server_name,
            route: self.route,
            mode,
            suite,
            hs: secrets.hs,
            kc2_key: secrets.kc2_key,
            transcript: self.transcript,
        })))
    }

    /// The server must choose one of the AEADs we offered.
    fn check_suite(&self, suite: sc_wire::CipherSuite) -> Result<(), Error> {
        if !self.config.suites.contains(&suite) {
            return Err(PeerMisbehaved::SuiteNotOffered(suite).into());
        }
        Ok(())
    }
}

struct ExpectServerCert {
    keylog: KeyLogger,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    route: Option<RouteName>,
    mode: Mode,
    suite: sc_wire::CipherSuite,
    hs: Secret,
    kc2_key: Secret,
    transcript: Transcript,
}

/// Proof that the server's flight 2 checked out: its certificate chain, and
/// in version 2 its signature over the transcript through step 3 (the
/// server holds the key of that chain). Only
/// [`ExpectServerCert::check_server`] makes one, and step 5 is built from
/// one: the client sends its certificate only to a server that proved
/// itself (SPEC §16.2).
struct ServerChecked {
    server: VerifiedPeer,
    server_key: ServerKey,
    request: ClientCertRequest,
}

/// The server's leaf key, parsed (for Ed25519: decompressed) at its first
/// check and kept for the next: a handshake checks it twice (version 2:
/// steps 4 and 12; version 1: steps 9 and 12).
struct ServerKey {
    bytes: [u8; 32],
    prepared: Option<Box<dyn crate::crypto::PreparedKey>>,
}

impl ServerKey {
    fn new(server: &VerifiedPeer) -> Self {
        Self {
            bytes: server.public_key,
            prepared: None,
        }
    }

    fn verify(
        &mut self,
        provider: &crate::CryptoProvider,
        msg: &[u8],
        sig: &sc_wire::Signature,
    ) -> Result<(), crate::crypto::CryptoError> {
        let key = match &mut self.prepared {
            Some(key) => key,
            none => none.insert(provider.signature.prepare(&self.bytes)?),
        };
        key.verify(msg, sig)
    }
}

impl ExpectServerCert {
    /// Checks steps 3 and 4 and absorbs them into the transcript.
    fn check_server(&mut self, payload: &[u8], now: UnixTime) -> Result<ServerChecked, Error> {
        let version = self.mode.version();
        let mut flight = FlightReader::new(payload, version);
        let (msg, raw3) = flight.expect(HandshakeType::SERVER_CERT_SEND)?;
        let chain = payload!(msg, ServerCertSend);
        let (msg4, raw4) = flight.expect(HandshakeType::CLIENT_CERT_REQUEST)?;
        flight.finish(HandshakeType::CLIENT_CERT_REQUEST)?;

        let server = self
            .config
            .verifier
            .verify_server(&to_der(&chain), &self.server_name, now)?;
        let mut server_key = ServerKey::new(&server);
        self.transcript.add(raw3);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::SERVER_CERT_SEND,
            &format!("verified: {}", server.identity),
        );
        let (request, proven) = match msg4 {
            HandshakeMessage::ClientCertRequestV2(signed) => {
                // SPEC §16.2: the server signs th_3 with the key of the chain
                // just verified.
                let th3 = self.transcript.current();
                let content = signed_content(context::v2::CLIENT_CERT_REQUEST, &th3);
                server_key
                    .verify(self.config.provider, &content, &signed.signature)
                    .map_err(|_| PeerMisbehaved::ClientCertRequestInvalid)?;
                (
                    signed.request,
                    "verified: server signature over transcript through step 3; ",
                )
            }
            other => (payload!(other, ClientCertRequest), "received: "),
        };
        self.transcript.add(raw4);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::CLIENT_CERT_REQUEST,
            &format!(
                "{proven}{} CA name(s), anonymous {}, streams {}, re-keying {}",
                request.ca_names.len(),
                if request.anonymous_allowed {
                    "allowed"
                } else {
                    "not allowed"
                },
                if request.streams { "on" } else { "off" },
                if request.rekey { "on" } else { "off" }
            ),
        );
        Ok(ServerChecked {
            server,
            server_key,
            request,
        })
    }

    fn handle(
        mut self,
        payload: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
        actions: &mut Vec<Action>,
    ) -> Result<State, Error> {
        let version = self.mode.version();
        let ServerChecked {
            server,
            server_key,
            request,
        } = self.check_server(payload, now)?;

        if (request.streams && !self.config.streams) || (request.rekey && !self.config.rekey) {
            // Only a client that offered a capability may be told it has it.
            return Err(PeerMisbehaved::UnofferedCapability.into());
        }

        let credential = match &self.config.identity {
            ClientIdentity::Certified(c) => Arc::clone(c),
            ClientIdentity::Anonymous => {
                if !request.anonymous_allowed {
                    return Err(PeerIncompatible::AnonymousNotAllowed.into());
                }
                Arc::new(
                    anonymous_credential(rng, now)
                        .map_err(|e| Error::Local(format!("anonymous certificate: {e}")))?,
                )
            }
        };
        let kind = if credential.is_anonymous() {
            ClientCertKind::ANONYMOUS
        } else {
            ClientCertKind::CERTIFIED
        };
        let send = ClientCertSend {
            kind,
            chain: to_wire(credential.chain())?,
        };
        let mut out = Vec::new();
        let range = push_message(&mut out, &HandshakeMessage::ClientCertSend(send));
        self.transcript.add(&out[range]);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::CLIENT_CERT_SEND,
            &format!("sent ({kind})"),
        );
        actions.push(Action::Send {
            level: Level::Handshake,
            messages: Zeroizing::new(out),
        });

        let leaf_hash = self
            .config
            .provider
            .hash
            .hash(credential.chain().first().map_or(&[][..], |c| c.as_ref()));
        Ok(State::ExpectSeedCode(Box::new(ExpectSeedCode {
            keylog: self.keylog,
            config: self.config,
            route: self.route,
            streams: request.streams,
            rekey: request.rekey,
            mode: self.mode,
            suite: self.suite,
            hs: self.hs,
            kc2_key: self.kc2_key,
            server,
            server_key,
            credential,
            leaf_hash,
            transcript: self.transcript,
        })))
    }
}

struct ExpectSeedCode {
    keylog: KeyLogger,
    config: Arc<ClientConfig>,
    route: Option<RouteName>,
    /// Whether the session multiplexes streams (the server's answer in step 4).
    streams: bool,
    /// Whether the session re-keys (the server's answer in step 4).
    rekey: bool,
    mode: Mode,
    suite: sc_wire::CipherSuite,
    hs: Secret,
    kc2_key: Secret,
    server: VerifiedPeer,
    server_key: ServerKey,
    credential: Arc<Credential>,
    leaf_hash: [u8; 32],
    transcript: Transcript,
}

/// Proof that the server's KeyConfirm1 verified (version 1: its signature;
/// version 2: its MAC); only [`ExpectSeedCode::verify_key_confirm1`] makes
/// one.
struct KeyConfirm1Verified(());

/// What step 7 gave the client.
enum Step7 {
    /// Version 1: the shared secret of the server's ciphertext.
    Secret(Secret),
    /// Version 2: the server's encapsulation key, checked.
    Key(MlKemEncapsulationKey),
}

impl ExpectSeedCode {
    fn verify_key_confirm1(
        &mut self,
        msg: &HandshakeMessage,
        th6: &[u8; 32],
    ) -> Result<KeyConfirm1Verified, Error> {
        let provider = self.config.provider;
        let content = signed_content(Contexts::of(self.mode.version()).key_confirm_1, th6);
        let verified = match (msg, &self.mode) {
            (HandshakeMessage::KeyConfirm1(sig), Mode::V1 { .. }) => {
                self.server_key.verify(provider, &content, sig)
            }
            (HandshakeMessage::KeyConfirm1V2(mac), Mode::V2 { kc1_key }) => provider
                .hash
                .hmac_verify(kc1_key.expose(), &[&content], mac.as_bytes()),
            (other, _) => {
                return Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "KeyConfirm1",
                    got: other.typ(),
                }
                .into())
            }
        };
        verified.map_err(|_| PeerMisbehaved::KeyConfirm1Invalid)?;
        Ok(KeyConfirm1Verified(()))
    }

    fn handle(
        mut self,
        payload: &[u8],
        rng: &mut dyn CryptoRngCore,
        actions: &mut Vec<Action>,
    ) -> Result<State, Error> {
        let provider = self.config.provider;
        let version = self.mode.version();
        let contexts = Contexts::of(version);
        let mut flight = FlightReader::new(payload, version);
        let (msg, raw6) = flight.expect(HandshakeType::SEED_CODE)?;
        let seed = payload!(msg, SeedCode);
        if seed.client_cert_hash != self.leaf_hash {
            return Err(PeerMisbehaved::CertificateBindingMismatch.into());
        }
        self.transcript.add(raw6);
        let th6 = self.transcript.current();
        let order = StepOrder::from_seed(provider, &seed.order_seed).map_err(internal)?;
        log_step(ROLE, Some(version), HandshakeType::SEED_CODE, "received");
        tracing::debug!(target: "sc_handshake", role = ROLE, order = %order, "order of steps 7-10: {order}");

        // The server's two messages, in their permuted relative order.
        let [first, second] = order.sent_by(true);
        let mut raw_server: Vec<(HandshakeType, &[u8])> = Vec::with_capacity(2);
        let mut step7 = None;
        let mut kc1 = None;
        for typ in [first, second] {
            let (msg, raw) = flight.expect(typ)?;
            match (msg, &self.mode) {
                (HandshakeMessage::KeyExchange1(ct), Mode::V1 { kem, .. }) => {
                    step7 = Some(Step7::Secret(kem.decapsulate(&ct).map_err(internal)?));
                    log_step(
                        ROLE,
                        Some(version),
                        typ,
                        "received: ML-KEM-768 ciphertext decapsulated",
                    );
                }
                (HandshakeMessage::KeyExchange1V2(ek), Mode::V2 { .. }) => {
                    // Validated when received (FIPS 203 §7.2).
                    provider
                        .kem
                        .check_encapsulation_key(&ek)
                        .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
                    step7 = Some(Step7::Key(ek));
                    log_step(
                        ROLE,
                        Some(version),
                        typ,
                        "received: the server's ML-KEM-768 encapsulation key, checked",
                    );
                }
                (
                    msg @ (HandshakeMessage::KeyConfirm1(_) | HandshakeMessage::KeyConfirm1V2(_)),
                    _,
                ) => {
                    kc1 = Some(self.verify_key_confirm1(&msg, &th6)?);
                    log_step(
                        ROLE,
                        Some(version),
                        typ,
                        if version == ProtocolVersion::V2 {
                            "verified: server MAC over transcript through step 6"
                        } else {
                            "verified: server signature over transcript through step 6"
                        },
                    );
                }
                (other, _) => {
                    return Err(PeerMisbehaved::UnexpectedMessage {
                        expected: typ.name().unwrap_or("?"),
                        got: other.typ(),
                    }
                    .into())
                }
            }
            raw_server.push((typ, raw));
        }
        flight.finish(second)?;
        let (Some(step7), Some(KeyConfirm1Verified(()))) = (step7, kc1) else {
            return Err(PeerMisbehaved::MissingMessage {
                expected: "KeyExchange1/KeyConfirm1",
            }
            .into());
        };

        // Our two messages. Step 8 encapsulates to the server's key: version
        // 1's from step 2, version 2's from step 7.
        let server_ek = match (&step7, &self.mode) {
            (Step7::Key(ek), _) => ek,
            (Step7::Secret(_), Mode::V1 { server_kem_key, .. }) => server_kem_key,
            (Step7::Secret(_), Mode::V2 { .. }) => {
                return Err(Error::Local("version 2 without step 7's key".into()))
            }
        };
        let (ct8, ss8) = provider
            .kem
            .encapsulate(server_ek, rng)
            .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
        debug_assert_eq!(ct8.as_bytes().len(), MLKEM768_CT_LEN);
        let kc2 = provider.hash.hmac(
            self.kc2_key.expose(),
            &[&signed_content(contexts.key_confirm_2, &th6)],
        );
        let encoded8 = HandshakeMessage::KeyExchange2(ct8).encoded();
        let encoded10 = HandshakeMessage::KeyConfirm2(kc2.into()).encoded();

        // Absorb steps 7–10 in the permuted order.
        for typ in order.steps() {
            let raw: &[u8] = match typ {
                HandshakeType::KEY_EXCHANGE_2 => &encoded8,
                HandshakeType::KEY_CONFIRM_2 => &encoded10,
                _ => raw_server
                    .iter()
                    .find(|(t, _)| *t == typ)
                    .map_or(&[][..], |(_, r)| r),
            };
            self.transcript.add(raw);
        }
        let th10 = self.transcript.current();

        let mut out = Vec::new();
        for typ in order.sent_by(false) {
            if typ == HandshakeType::KEY_EXCHANGE_2 {
                out.extend_from_slice(&encoded8);
                log_step(
                    ROLE,
                    Some(version),
                    typ,
                    "sent: ML-KEM-768 ciphertext to the server's key",
                );
            } else {
                out.extend_from_slice(&encoded10);
                log_step(
                    ROLE,
                    Some(version),
                    typ,
                    "sent: MAC over transcript through step 6",
                );
            }
        }
        let sig = self
            .credential
            .sign(&signed_content(contexts.client_auth, &th10));
        let range = push_message(&mut out, &HandshakeMessage::ClientAuth(sig.into()));
        self.transcript.add(&out[range]);
        log_step(
            ROLE,
            Some(version),
            HandshakeType::CLIENT_AUTH,
            "sent: signature over transcript through step 10",
        );
        let th11 = self.transcript.current();

        let kem_secrets = match &step7 {
            Step7::Secret(ss7) => KemSecrets::V1 { ss7, ss8: &ss8 },
            Step7::Key(_) => KemSecrets::V2 { ss8: &ss8 },
        };
        let fin = FinalSecrets::derive(
            provider,
            &self.hs,
            kem_secrets,
            self.suite,
            seed.code.expose(),
            &th11,
            self.rekey,
            &self.keylog,
        )
        .map_err(internal)?;
        drop(seed.code);
        let rekey = fin.epoch0.map(|epoch0| {
            Box::new(RekeyKeys {
                epoch0,
                identity: Arc::clone(&self.credential),
                peer_key: self.server.public_key,
            })
        });
        actions.push(Action::Send {
            level: Level::Handshake,
            messages: Zeroizing::new(out),
        });
        actions.push(Action::SetWriteKey {
            level: Level::Application,
            suite: self.suite,
            chain0: fin.c_chain0,
        });
        // self.hs, ss7, ss8, kc1_key and the KEM secret are dropped (and
        // zeroized) here.
        Ok(State::ExpectServerAuth(Box::new(ExpectServerAuth {
            config: self.config,
            route: self.route,
            streams: self.streams,
            rekey,
            version,
            suite: self.suite,
            server: self.server,
            server_key: self.server_key,
            order,
            s_chain0: fin.s_chain0,
            ack_key: fin.ack_key,
            transcript: self.transcript,
            th11,
        })))
    }
}

struct ExpectServerAuth {
    config: Arc<ClientConfig>,
    route: Option<RouteName>,
    /// Whether the session multiplexes streams (the server's answer in step 4).
    streams: bool,
    /// What re-keying keeps, when the session re-keys.
    rekey: Option<Box<RekeyKeys>>,
    version: ProtocolVersion,
    suite: sc_wire::CipherSuite,
    server: VerifiedPeer,
    server_key: ServerKey,
    order: StepOrder,
    s_chain0: Secret,
    ack_key: Secret,
    transcript: Transcript,
    th11: [u8; 32],
}

impl ExpectServerAuth {
    fn handle(mut self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let mut flight = FlightReader::new(payload, self.version);
        let (msg, raw) = flight.expect(HandshakeType::SERVER_AUTH)?;
        flight.finish(HandshakeType::SERVER_AUTH)?;
        let sig = payload!(msg, ServerAuth);
        let content = signed_content(Contexts::of(self.version).server_auth, &self.th11);
        self.server_key
            .verify(self.config.provider, &content, &sig)
            .map_err(|_| PeerMisbehaved::ServerAuthInvalid)?;
        self.transcript.add(raw);
        log_step(
            ROLE,
            Some(self.version),
            HandshakeType::SERVER_AUTH,
            "verified: server signature over transcript through step 11",
        );
        actions.push(Action::SetReadKey {
            level: Level::Application,
            suite: self.suite,
            chain0: self.s_chain0,
        });
        Ok(State::ExpectSecureAck(Box::new(ExpectSecureAck {
            config: self.config,
            route: self.route,
            streams: self.streams,
            rekey: self.rekey,
            version: self.version,
            suite: self.suite,
            server: self.server,
            order: self.order,
            ack_key: self.ack_key,
            th12: self.transcript.current(),
        })))
    }
}

struct ExpectSecureAck {
    config: Arc<ClientConfig>,
    route: Option<RouteName>,
    /// Whether the session multiplexes streams (the server's answer in step 4).
    streams: bool,
    /// What re-keying keeps, when the session re-keys.
    rekey: Option<Box<RekeyKeys>>,
    version: ProtocolVersion,
    suite: sc_wire::CipherSuite,
    server: VerifiedPeer,
    order: StepOrder,
    ack_key: Secret,
    th12: [u8; 32],
}

impl ExpectSecureAck {
    fn handle(self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let mut flight = FlightReader::new(payload, self.version);
        let (msg, _) = flight.expect(HandshakeType::SECURE_ACK)?;
        flight.finish(HandshakeType::SECURE_ACK)?;
        let mac = payload!(msg, SecureAck);
        self.config
            .provider
            .hash
            .hmac_verify(
                self.ack_key.expose(),
                &[&signed_content(
                    Contexts::of(self.version).secure_ack,
                    &self.th12,
                )],
                mac.as_bytes(),
            )
            .map_err(|_| PeerMisbehaved::SecureAckInvalid)?;
        log_step(
            ROLE,
            Some(self.version),
            HandshakeType::SECURE_ACK,
            "verified under the final record keys",
        );
        let rekey = self.rekey.is_some();
        if let Some(keys) = self.rekey {
            actions.push(Action::KeepForRekey(keys));
        }
        actions.push(Action::Complete(Box::new(HandshakeSummary {
            version: self.version,
            suite: self.suite,
            order: self.order,
            peer: self.server.identity,
            route: self.route,
            session_hash: self.th12,
            streams: self.streams,
            rekey,
        })));
        Ok(State::Complete)
    }
}

/// The suites a ClientHello offers: the AEADs, then the capabilities (the
/// last of which, `0xfe04`, offers version 2).
fn offered_suites(config: &ClientConfig) -> Vec<sc_wire::CipherSuite> {
    let mut suites = config.suites.clone();
    if config.streams {
        suites.push(sc_wire::CipherSuite::STREAMS);
    }
    if config.rekey {
        suites.push(sc_wire::CipherSuite::REKEY);
    }
    if config.cookie_retry {
        suites.push(sc_wire::CipherSuite::COOKIE);
    }
    if config.max_version >= ProtocolVersion::V2 {
        suites.push(sc_wire::CipherSuite::VERSION_2);
    }
    suites
}
