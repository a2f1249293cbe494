//! The client's state machine: one struct per state, named after what it
//! waits for, each consumed by the message that moves it on.

use std::sync::Arc;

use rand_core::CryptoRngCore;
use sc_pki::{anonymous_credential, Credential, ServerName, UnixTime, VerifiedPeer};
use sc_wire::messages::{HANDSHAKE_HEADER_LEN, MLKEM768_CT_LEN};
use sc_wire::{
    ClientCertKind, ClientCertSend, ClientHello, Codec, HandshakeMessage, HandshakeType,
    MlKemEncapsulationKey, ProtocolVersion, Random, RouteName, Signature,
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
    context, signed_content, FinalSecrets, HandshakeSecrets, KeyLogger, Transcript,
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
            HandshakeType::CLIENT_HELLO,
            &format!("sent: offered {:?}, route {:?}", config.suites, route),
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

impl ExpectServerHello {
    fn handle(mut self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let provider = self.config.provider;
        let mut flight = FlightReader::new(payload);
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
        let sh = payload!(msg, ServerHello);
        if sh.version != ProtocolVersion::V1 {
            return Err(PeerIncompatible::Version(sh.version).into());
        }
        if !self.config.suites.contains(&sh.suite) {
            return Err(PeerMisbehaved::SuiteNotOffered(sh.suite).into());
        }
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
            HandshakeType::SERVER_HELLO,
            &format!("received: cipher {}", sh.suite),
        );
        let th2 = self.transcript.current();
        let secrets =
            HandshakeSecrets::derive(provider, &dh, &th2, &self.keylog).map_err(internal)?;
        actions.push(Action::SetReadKey {
            level: Level::Handshake,
            suite: sh.suite,
            chain0: secrets.s_hs_traffic.clone(),
        });
        actions.push(Action::SetWriteKey {
            level: Level::Handshake,
            suite: sh.suite,
            chain0: secrets.c_hs_traffic.clone(),
        });
        Ok(State::ExpectServerCert(Box::new(ExpectServerCert {
            keylog: self.keylog,
            config: self.config,
            server_name: self.server_name,
            route: self.route,
            kem: self.kem,
            server_kem_key: sh.mlkem,
            suite: sh.suite,
            hs: secrets.hs,
            kc2_key: secrets.kc2_key,
            transcript: self.transcript,
        })))
    }
}

struct ExpectServerCert {
    keylog: KeyLogger,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    route: Option<RouteName>,
    kem: Box<dyn KemSecret>,
    server_kem_key: MlKemEncapsulationKey,
    suite: sc_wire::CipherSuite,
    hs: Secret,
    kc2_key: Secret,
    transcript: Transcript,
}

impl ExpectServerCert {
    fn handle(
        mut self,
        payload: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
        actions: &mut Vec<Action>,
    ) -> Result<State, Error> {
        let mut flight = FlightReader::new(payload);
        let (msg, raw3) = flight.expect(HandshakeType::SERVER_CERT_SEND)?;
        let chain = payload!(msg, ServerCertSend);
        let (msg, raw4) = flight.expect(HandshakeType::CLIENT_CERT_REQUEST)?;
        let request = payload!(msg, ClientCertRequest);
        flight.finish(HandshakeType::CLIENT_CERT_REQUEST)?;

        let server = self
            .config
            .verifier
            .verify_server(&to_der(&chain), &self.server_name, now)?;
        self.transcript.add(raw3);
        log_step(
            ROLE,
            HandshakeType::SERVER_CERT_SEND,
            &format!("verified: {}", server.identity),
        );
        self.transcript.add(raw4);
        log_step(
            ROLE,
            HandshakeType::CLIENT_CERT_REQUEST,
            &format!(
                "received: {} CA name(s), anonymous {}, streams {}, re-keying {}",
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
            kem: self.kem,
            server_kem_key: self.server_kem_key,
            suite: self.suite,
            hs: self.hs,
            kc2_key: self.kc2_key,
            server,
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
    kem: Box<dyn KemSecret>,
    server_kem_key: MlKemEncapsulationKey,
    suite: sc_wire::CipherSuite,
    hs: Secret,
    kc2_key: Secret,
    server: VerifiedPeer,
    credential: Arc<Credential>,
    leaf_hash: [u8; 32],
    transcript: Transcript,
}

/// Proof that the server's KeyConfirm1 signature verified; only
/// [`ExpectSeedCode::verify_key_confirm1`] makes one.
struct KeyConfirm1Verified(());

impl ExpectSeedCode {
    fn verify_key_confirm1(
        &self,
        sig: &Signature,
        th6: &[u8; 32],
    ) -> Result<KeyConfirm1Verified, Error> {
        let content = signed_content(context::KEY_CONFIRM_1, th6);
        self.config
            .provider
            .signature
            .verify(&self.server.public_key, &content, sig)
            .map_err(|_| PeerMisbehaved::KeyConfirm1Invalid)?;
        Ok(KeyConfirm1Verified(()))
    }

    fn handle(
        mut self,
        payload: &[u8],
        rng: &mut dyn CryptoRngCore,
        actions: &mut Vec<Action>,
    ) -> Result<State, Error> {
        let provider = self.config.provider;
        let mut flight = FlightReader::new(payload);
        let (msg, raw6) = flight.expect(HandshakeType::SEED_CODE)?;
        let seed = payload!(msg, SeedCode);
        if seed.client_cert_hash != self.leaf_hash {
            return Err(PeerMisbehaved::CertificateBindingMismatch.into());
        }
        self.transcript.add(raw6);
        let th6 = self.transcript.current();
        let order = StepOrder::from_seed(provider, &seed.order_seed).map_err(internal)?;
        log_step(ROLE, HandshakeType::SEED_CODE, "received");
        tracing::debug!(target: "sc_handshake", role = ROLE, order = %order, "order of steps 7-10: {order}");

        // The server's two messages, in their permuted relative order.
        let [first, second] = order.sent_by(true);
        let mut raw_server: Vec<(HandshakeType, &[u8])> = Vec::with_capacity(2);
        let mut ss7 = None;
        let mut kc1 = None;
        for typ in [first, second] {
            let (msg, raw) = flight.expect(typ)?;
            match msg {
                HandshakeMessage::KeyExchange1(ct) => {
                    ss7 = Some(self.kem.decapsulate(&ct).map_err(internal)?);
                    log_step(ROLE, typ, "received: ML-KEM-768 ciphertext decapsulated");
                }
                HandshakeMessage::KeyConfirm1(sig) => {
                    kc1 = Some(self.verify_key_confirm1(&sig, &th6)?);
                    log_step(
                        ROLE,
                        typ,
                        "verified: server signature over transcript through step 6",
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
            raw_server.push((typ, raw));
        }
        flight.finish(second)?;
        let (Some(ss7), Some(KeyConfirm1Verified(()))) = (ss7, kc1) else {
            return Err(PeerMisbehaved::MissingMessage {
                expected: "KeyExchange1/KeyConfirm1",
            }
            .into());
        };

        // Our two messages.
        let (ct8, ss8) = provider
            .kem
            .encapsulate(&self.server_kem_key, rng)
            .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
        debug_assert_eq!(ct8.as_bytes().len(), MLKEM768_CT_LEN);
        let kc2 = provider.hash.hmac(
            self.kc2_key.expose(),
            &[&signed_content(context::KEY_CONFIRM_2, &th6)],
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
                log_step(ROLE, typ, "sent: ML-KEM-768 ciphertext to the server's key");
            } else {
                out.extend_from_slice(&encoded10);
                log_step(ROLE, typ, "sent: MAC over transcript through step 6");
            }
        }
        let sig = self
            .credential
            .sign(&signed_content(context::CLIENT_AUTH, &th10));
        let range = push_message(&mut out, &HandshakeMessage::ClientAuth(sig.into()));
        self.transcript.add(&out[range]);
        log_step(
            ROLE,
            HandshakeType::CLIENT_AUTH,
            "sent: signature over transcript through step 10",
        );
        let th11 = self.transcript.current();

        let fin = FinalSecrets::derive(
            provider,
            &self.hs,
            &ss7,
            &ss8,
            ProtocolVersion::V1,
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
        // self.hs, ss7, ss8 and the KEM secret are dropped (and zeroized) here.
        Ok(State::ExpectServerAuth(Box::new(ExpectServerAuth {
            config: self.config,
            route: self.route,
            streams: self.streams,
            rekey,
            suite: self.suite,
            server: self.server,
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
    suite: sc_wire::CipherSuite,
    server: VerifiedPeer,
    order: StepOrder,
    s_chain0: Secret,
    ack_key: Secret,
    transcript: Transcript,
    th11: [u8; 32],
}

impl ExpectServerAuth {
    fn handle(mut self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let mut flight = FlightReader::new(payload);
        let (msg, raw) = flight.expect(HandshakeType::SERVER_AUTH)?;
        flight.finish(HandshakeType::SERVER_AUTH)?;
        let sig = payload!(msg, ServerAuth);
        let content = signed_content(context::SERVER_AUTH, &self.th11);
        self.config
            .provider
            .signature
            .verify(&self.server.public_key, &content, &sig)
            .map_err(|_| PeerMisbehaved::ServerAuthInvalid)?;
        self.transcript.add(raw);
        log_step(
            ROLE,
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
    suite: sc_wire::CipherSuite,
    server: VerifiedPeer,
    order: StepOrder,
    ack_key: Secret,
    th12: [u8; 32],
}

impl ExpectSecureAck {
    fn handle(self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let mut flight = FlightReader::new(payload);
        let (msg, _) = flight.expect(HandshakeType::SECURE_ACK)?;
        flight.finish(HandshakeType::SECURE_ACK)?;
        let mac = payload!(msg, SecureAck);
        self.config
            .provider
            .hash
            .hmac_verify(
                self.ack_key.expose(),
                &[&signed_content(context::SECURE_ACK, &self.th12)],
                mac.as_bytes(),
            )
            .map_err(|_| PeerMisbehaved::SecureAckInvalid)?;
        log_step(
            ROLE,
            HandshakeType::SECURE_ACK,
            "verified under the final record keys",
        );
        let rekey = self.rekey.is_some();
        if let Some(keys) = self.rekey {
            actions.push(Action::KeepForRekey(keys));
        }
        actions.push(Action::Complete(Box::new(HandshakeSummary {
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

/// The suites a ClientHello offers: the AEADs, then the capabilities.
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
    suites
}
