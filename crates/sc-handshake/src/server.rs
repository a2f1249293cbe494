//! The server's state machine: one struct per state, named after what it
//! waits for, each consumed by the flight that moves it on.

use std::sync::Arc;

use rand_core::CryptoRngCore;
use sc_pki::{UnixTime, VerifiedPeer};
use sc_wire::{
    CipherSuite, ClientCertKind, ClientCertRequest, Codec, DistinguishedName, HandshakeMessage,
    HandshakeType, MlKemEncapsulationKey, OrderSeed, ProtocolVersion, Random, RouteName, SeedCode,
    SeedCodeSecret, ServerHello,
};

use sc_wire::messages::{
    CERT_HASH_LEN, HANDSHAKE_HEADER_LEN, MLKEM768_CT_LEN, ORDER_SEED_LEN, SEED_CODE_LEN,
    SIGNATURE_LEN,
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
    context, signed_content, FinalSecrets, HandshakeSecrets, KeyLogger, Transcript,
};
use crate::{Action, HandshakeSummary, Level, RekeyKeys};

/// The server's step-6 flight: SeedCode, KeyExchange1 and KeyConfirm1, each
/// with its 4-byte header. Its size is fixed, so the buffer holding the seed
/// code is allocated once, at this size.
const SEED_FLIGHT_LEN: usize =
    (HANDSHAKE_HEADER_LEN + SEED_CODE_LEN + ORDER_SEED_LEN + CERT_HASH_LEN)
        + (HANDSHAKE_HEADER_LEN + MLKEM768_CT_LEN)
        + (HANDSHAKE_HEADER_LEN + SIGNATURE_LEN);

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
    let mut flight = FlightReader::new(payload);
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
    if ch.version != ProtocolVersion::V1 {
        return Err(PeerIncompatible::Version(ch.version).into());
    }
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
        HandshakeType::CLIENT_HELLO,
        &format!("received: offered {:?}, route {:?}", ch.suites, ch.route),
    );
    if let Some(cookie) = &retry {
        // The HelloRetry as it was sent: the cookie is all it holds.
        transcript.add(&crate::cookie::retry_message(cookie));
        log_step(
            ROLE,
            HandshakeType::COOKIE_ECHO,
            "received: the cookie of our HelloRetry, bound into the transcript",
        );
    }

    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    let (kx, x25519) = provider.kx.generate(rng);
    let (kem, mlkem) = provider.kem.generate(rng);
    let dh = kx
        .agree(&ch.x25519)
        .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
    let hello = ServerHello {
        version: ProtocolVersion::V1,
        random: Random::from(random),
        x25519,
        mlkem,
        suite,
    };
    let mut plain = Vec::new();
    let range = push_message(&mut plain, &HandshakeMessage::ServerHello(hello));
    transcript.add(&plain[range]);
    log_step(
        ROLE,
        HandshakeType::SERVER_HELLO,
        &format!("sent: cipher {suite}"),
    );
    actions.push(Action::Send {
        level: Level::Plaintext,
        messages: Zeroizing::new(plain),
    });

    let th2 = transcript.current();
    let keylog = KeyLogger::new(config.key_log.clone(), *ch.random.as_bytes());
    let secrets = HandshakeSecrets::derive(provider, &dh, &th2, &keylog).map_err(internal)?;
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
    log_step(ROLE, HandshakeType::SERVER_CERT_SEND, "sent");
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
    let range = push_message(&mut sealed, &HandshakeMessage::ClientCertRequest(request));
    transcript.add(&sealed[range]);
    log_step(ROLE, HandshakeType::CLIENT_CERT_REQUEST, "sent");
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
        client_kem_key: ch.mlkem,
        kem,
        suite,
        hs: secrets.hs,
        kc2_key: secrets.kc2_key,
        transcript,
    })))
}

struct ExpectClientCert {
    keylog: KeyLogger,
    config: Arc<ServerConfig>,
    route: Option<RouteName>,
    /// Whether the session multiplexes streams (offered and enabled).
    streams: bool,
    /// Whether the session re-keys (offered and enabled).
    rekey: bool,
    client_kem_key: MlKemEncapsulationKey,
    kem: Box<dyn KemSecret>,
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
        let mut flight = FlightReader::new(payload);
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
        let mut out = Zeroizing::new(Vec::with_capacity(SEED_FLIGHT_LEN));
        let range = push_message(&mut out, &HandshakeMessage::SeedCode(seed));
        self.transcript.add(&out[range]);
        log_step(ROLE, HandshakeType::SEED_CODE, "sent");
        tracing::debug!(target: "sc_handshake", role = ROLE, order = %order, "order of steps 7-10: {order}");
        let th6 = self.transcript.current();

        // Our two messages, in the permuted relative order; steps 7–10 depend
        // only on state through step 6, so nothing waits for the client.
        let (ct7, ss7) = provider
            .kem
            .encapsulate(&self.client_kem_key, rng)
            .map_err(|_| PeerMisbehaved::InvalidEncapsulationKey)?;
        let encoded7 = HandshakeMessage::KeyExchange1(ct7).encoded();
        let sig9 = self
            .config
            .credential
            .sign(&signed_content(context::KEY_CONFIRM_1, &th6));
        let encoded9 = HandshakeMessage::KeyConfirm1(sig9.into()).encoded();
        for typ in order.sent_by(true) {
            if typ == HandshakeType::KEY_EXCHANGE_1 {
                out.extend_from_slice(&encoded7);
                log_step(ROLE, typ, "sent: ML-KEM-768 ciphertext to the client's key");
            } else {
                out.extend_from_slice(&encoded9);
                log_step(ROLE, typ, "sent: signature over transcript through step 6");
            }
        }
        debug_assert_eq!(out.len(), SEED_FLIGHT_LEN, "the flight's size is fixed");
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
            kem: self.kem,
            suite: self.suite,
            hs: self.hs,
            kc2_key: self.kc2_key,
            client,
            order,
            code,
            ss7,
            encoded7,
            encoded9,
            th6,
            transcript: self.transcript,
        })))
    }
}

struct ExpectClientFinish {
    keylog: KeyLogger,
    config: Arc<ServerConfig>,
    route: Option<RouteName>,
    /// Whether the session multiplexes streams (offered and enabled).
    streams: bool,
    /// Whether the session re-keys (offered and enabled).
    rekey: bool,
    kem: Box<dyn KemSecret>,
    suite: CipherSuite,
    hs: Secret,
    kc2_key: Secret,
    client: VerifiedPeer,
    order: StepOrder,
    code: SeedCodeSecret,
    ss7: Secret,
    encoded7: Vec<u8>,
    encoded9: Vec<u8>,
    th6: [u8; 32],
    transcript: Transcript,
}

/// Proof that the client's ClientAuth signature verified; only
/// [`ExpectClientFinish::verify_client_auth`] makes one.
struct ClientAuthVerified(());

impl ExpectClientFinish {
    fn verify_client_auth(
        &self,
        sig: &sc_wire::Signature,
        th10: &[u8; 32],
    ) -> Result<ClientAuthVerified, Error> {
        let content = signed_content(context::CLIENT_AUTH, th10);
        self.config
            .provider
            .signature
            .verify(&self.client.public_key, &content, sig)
            .map_err(|_| PeerMisbehaved::ClientAuthInvalid)?;
        Ok(ClientAuthVerified(()))
    }

    fn handle(mut self, payload: &[u8], actions: &mut Vec<Action>) -> Result<State, Error> {
        let provider = self.config.provider;
        let mut flight = FlightReader::new(payload);
        let mut ss8 = None;
        let mut encoded8: &[u8] = &[];
        let mut encoded10: &[u8] = &[];
        for typ in self.order.sent_by(false) {
            let (msg, raw) = flight.expect(typ)?;
            match msg {
                HandshakeMessage::KeyExchange2(ct) => {
                    ss8 = Some(self.kem.decapsulate(&ct).map_err(internal)?);
                    encoded8 = raw;
                    log_step(ROLE, typ, "received: ML-KEM-768 ciphertext decapsulated");
                }
                HandshakeMessage::KeyConfirm2(mac) => {
                    provider
                        .hash
                        .hmac_verify(
                            self.kc2_key.expose(),
                            &[&signed_content(context::KEY_CONFIRM_2, &self.th6)],
                            mac.as_bytes(),
                        )
                        .map_err(|_| PeerMisbehaved::KeyConfirm2Invalid)?;
                    encoded10 = raw;
                    log_step(
                        ROLE,
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
            HandshakeType::CLIENT_AUTH,
            "verified: client signature over transcript through step 10",
        );
        let th11 = self.transcript.current();

        let fin = FinalSecrets::derive(
            provider,
            &self.hs,
            &self.ss7,
            &ss8,
            ProtocolVersion::V1,
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
            .sign(&signed_content(context::SERVER_AUTH, &th11));
        let mut out = Vec::new();
        let range = push_message(&mut out, &HandshakeMessage::ServerAuth(sig.into()));
        self.transcript.add(&out[range]);
        log_step(
            ROLE,
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
            &[&signed_content(context::SECURE_ACK, &th12)],
        );
        let mut out = Vec::new();
        push_message(&mut out, &HandshakeMessage::SecureAck(ack.into()));
        log_step(
            ROLE,
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
