//! Client and server configuration.
//!
//! The builders force the security decisions in order (rustls's
//! `ConfigBuilder`): first how the peer is verified, then which identity this
//! side presents; tuning (cipher suites, provider) comes after, over
//! hardware-aware defaults.

use std::sync::Arc;

use sc_pki::{ClientCertVerifier, Credential, ServerCertVerifier};
use sc_wire::{CipherSuite, ProtocolVersion};

use crate::crypto::{default_provider, CryptoProvider};
use crate::schedule::KeyLog;

/// A configuration mistake.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No cipher suite left to offer or accept.
    #[error("no cipher suites: enable at least one of ChaCha20-Poly1305 and AES-256-GCM")]
    NoCipherSuites,
    /// A cipher suite the provider does not implement.
    #[error("cipher suite {0} is not available in this crypto provider")]
    UnsupportedSuite(CipherSuite),
    /// A cipher suite listed twice.
    #[error("cipher suite {0} listed twice")]
    DuplicateSuite(CipherSuite),
    /// A protocol version this implementation does not speak.
    #[error("protocol version {0} is not supported (use 1 or 2)")]
    UnsupportedVersion(ProtocolVersion),
    /// A minimum version above the maximum: no version left.
    #[error("min_version {min} is above max_version {max}: no protocol version left")]
    VersionRange {
        /// The minimum asked for.
        min: ProtocolVersion,
        /// The maximum asked for.
        max: ProtocolVersion,
    },
}

/// The protocol versions this implementation speaks, oldest first.
const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V1, ProtocolVersion::V2];

/// Checks a `min..=max` range of protocol versions.
fn check_versions(min: ProtocolVersion, max: ProtocolVersion) -> Result<(), ConfigError> {
    for v in [min, max] {
        if !VERSIONS.contains(&v) {
            return Err(ConfigError::UnsupportedVersion(v));
        }
    }
    if min > max {
        return Err(ConfigError::VersionRange { min, max });
    }
    Ok(())
}

fn check_suites(provider: &CryptoProvider, suites: &[CipherSuite]) -> Result<(), ConfigError> {
    if suites.is_empty() {
        return Err(ConfigError::NoCipherSuites);
    }
    for (i, s) in suites.iter().enumerate() {
        if provider.aead(*s).is_none() {
            return Err(ConfigError::UnsupportedSuite(*s));
        }
        if suites[..i].contains(s) {
            return Err(ConfigError::DuplicateSuite(*s));
        }
    }
    Ok(())
}

/// What a client presents in step 5.
#[derive(Clone, Debug)]
pub enum ClientIdentity {
    /// A CA-issued certificate chain and its key.
    Certified(Arc<Credential>),
    /// A fresh key and 30-minute self-signed certificate for every connection,
    /// accepted only by servers that allow anonymous clients.
    Anonymous,
}

/// Everything a client needs to connect; shared by its connections.
#[derive(Debug)]
pub struct ClientConfig {
    pub(crate) provider: &'static CryptoProvider,
    pub(crate) verifier: Arc<dyn ServerCertVerifier>,
    pub(crate) identity: ClientIdentity,
    pub(crate) suites: Vec<CipherSuite>,
    pub(crate) key_log: Option<Arc<dyn KeyLog>>,
    pub(crate) streams: bool,
    pub(crate) rekey: bool,
    pub(crate) cookie_retry: bool,
    pub(crate) min_version: ProtocolVersion,
    pub(crate) max_version: ProtocolVersion,
}

impl ClientConfig {
    /// Starts building a client configuration.
    pub fn builder() -> ConfigBuilder<WantsVerifier> {
        ConfigBuilder {
            provider: default_provider(),
            state: WantsVerifier(()),
        }
    }

    /// The cipher suites offered, most preferred first.
    pub fn suites(&self) -> &[CipherSuite] {
        &self.suites
    }

    /// Whether the client offers to multiplex streams (SPEC §14).
    pub fn streams(&self) -> bool {
        self.streams
    }

    /// Offers to multiplex streams (off by default): a server that takes it
    /// up makes the session carry many streams instead of one byte stream.
    pub fn with_streams(mut self, on: bool) -> Self {
        self.streams = on;
        self
    }

    /// Whether the client offers in-session re-keying (SPEC §15).
    pub fn rekey(&self) -> bool {
        self.rekey
    }

    /// Offers in-session re-keying (off by default): with a server that
    /// takes it up, either side can replace the session's keys with keys
    /// from fresh X25519 and ML-KEM-768 secrets, signed by both identity
    /// keys, so a stolen session state stops working.
    pub fn with_rekey(mut self, on: bool) -> Self {
        self.rekey = on;
        self
    }

    /// Whether the client offers to answer a cookie retry (SPEC §4.5).
    pub fn cookie_retry(&self) -> bool {
        self.cookie_retry
    }

    /// Offers to answer a server's cookie retry (on by default): a server
    /// under load then asks for a cookie back before its expensive work,
    /// which costs one more round trip, instead of refusing the client.
    /// Off, the ClientHello is as without the capability (the v1 test
    /// vectors are recorded so).
    pub fn with_cookie_retry(mut self, on: bool) -> Self {
        self.cookie_retry = on;
        self
    }

    /// The oldest protocol version the client accepts (default: version 2).
    pub fn min_version(&self) -> ProtocolVersion {
        self.min_version
    }

    /// Accepts servers that speak `version` or later (SPEC §16.1). The
    /// default, version 2, refuses a server that answers version 1 with
    /// `protocol version`: a version 1 handshake sends the client's
    /// certificate before the server has proved it holds its key, and an
    /// active attacker can answer a version 1 ServerHello itself, so a
    /// client that accepts version 1 gives its identity to anyone on the
    /// path (SPEC §16.1, `formal/neg/p1-client-identity-fallback-v2.pv`).
    /// Version 1 lets this client talk to version 1 servers. Fails for a
    /// version this implementation does not speak or one above
    /// [`ClientConfig::max_version`].
    pub fn with_min_version(mut self, version: ProtocolVersion) -> Result<Self, ConfigError> {
        check_versions(version, self.max_version)?;
        self.min_version = version;
        Ok(self)
    }

    /// The newest protocol version the client offers (default: version 2).
    pub fn max_version(&self) -> ProtocolVersion {
        self.max_version
    }

    /// Offers protocol versions up to `version`: version 2 (the default)
    /// adds the capability `0xfe04` to the ClientHello; version 1 leaves it
    /// out, so the client is a version 1 client (as the v1 test vectors
    /// are recorded), and lowers [`ClientConfig::min_version`] to 1 if it
    /// was above. Fails for a version this implementation does not speak.
    pub fn with_max_version(mut self, version: ProtocolVersion) -> Result<Self, ConfigError> {
        let min = self.min_version.min(version);
        check_versions(min, version)?;
        self.min_version = min;
        self.max_version = version;
        Ok(self)
    }

    /// The crypto provider.
    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }
}

/// Builds a [`ClientConfig`] or a [`ServerConfig`] in the order the security
/// decisions must be taken; `S` is how far the builder has got.
#[derive(Debug)]
pub struct ConfigBuilder<S> {
    provider: &'static CryptoProvider,
    state: S,
}

/// Builder state: the peer verifier comes next.
#[derive(Debug)]
pub struct WantsVerifier(());

/// Builder state: a client's identity comes next.
#[derive(Debug)]
pub struct WantsClientIdentity {
    verifier: Arc<dyn ServerCertVerifier>,
}

/// Builder state: a complete client configuration; `build` or tune.
#[derive(Debug)]
pub struct ClientReady {
    verifier: Arc<dyn ServerCertVerifier>,
    identity: ClientIdentity,
    key_log: Option<Arc<dyn KeyLog>>,
}

/// Builder state: a server's credential comes next.
#[derive(Debug)]
pub struct WantsServerCredential {
    verifier: Arc<dyn ClientCertVerifier>,
}

/// Builder state: a complete server configuration; `build` or tune.
#[derive(Debug)]
pub struct ServerReady {
    verifier: Arc<dyn ClientCertVerifier>,
    credential: Arc<Credential>,
    key_log: Option<Arc<dyn KeyLog>>,
}

impl ConfigBuilder<WantsVerifier> {
    /// Uses another crypto provider.
    pub fn with_provider(mut self, provider: &'static CryptoProvider) -> Self {
        self.provider = provider;
        self
    }

    /// Client: how the server's certificate is verified.
    pub fn with_server_verifier(
        self,
        verifier: Arc<dyn ServerCertVerifier>,
    ) -> ConfigBuilder<WantsClientIdentity> {
        ConfigBuilder {
            provider: self.provider,
            state: WantsClientIdentity { verifier },
        }
    }

    /// Server: how client certificates are verified (and whether anonymous
    /// clients are allowed).
    pub fn with_client_verifier(
        self,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> ConfigBuilder<WantsServerCredential> {
        ConfigBuilder {
            provider: self.provider,
            state: WantsServerCredential { verifier },
        }
    }
}

impl ConfigBuilder<WantsClientIdentity> {
    /// Presents a CA-issued certificate chain.
    pub fn with_credential(self, credential: Arc<Credential>) -> ConfigBuilder<ClientReady> {
        self.with_identity(ClientIdentity::Certified(credential))
    }

    /// Presents a fresh anonymous certificate on every connection.
    pub fn with_anonymous_identity(self) -> ConfigBuilder<ClientReady> {
        self.with_identity(ClientIdentity::Anonymous)
    }

    /// Presents `identity`.
    pub fn with_identity(self, identity: ClientIdentity) -> ConfigBuilder<ClientReady> {
        ConfigBuilder {
            provider: self.provider,
            state: ClientReady {
                verifier: self.state.verifier,
                identity,
                key_log: None,
            },
        }
    }
}

impl ConfigBuilder<ClientReady> {
    /// **Dangerous**: hands every session secret to `log`, so anyone who sees
    /// its output can decrypt the sessions. For debugging and test vectors.
    pub fn dangerous_key_log(mut self, log: Arc<dyn KeyLog>) -> Self {
        self.state.key_log = Some(log);
        self
    }

    /// Builds with the provider's hardware-aware suite preference.
    pub fn build(self) -> ClientConfig {
        let suites = self.provider.default_suites();
        self.finish(suites)
    }

    /// Builds offering exactly `suites`, in this order of preference.
    pub fn build_with_suites(self, suites: &[CipherSuite]) -> Result<ClientConfig, ConfigError> {
        check_suites(self.provider, suites)?;
        Ok(self.finish(suites.to_vec()))
    }

    fn finish(self, suites: Vec<CipherSuite>) -> ClientConfig {
        ClientConfig {
            provider: self.provider,
            verifier: self.state.verifier,
            identity: self.state.identity,
            suites,
            key_log: self.state.key_log,
            streams: false,
            rekey: false,
            cookie_retry: true,
            min_version: ProtocolVersion::V2,
            max_version: ProtocolVersion::V2,
        }
    }
}

/// Everything a server needs to accept; shared by its connections.
#[derive(Debug)]
pub struct ServerConfig {
    pub(crate) provider: &'static CryptoProvider,
    pub(crate) verifier: Arc<dyn ClientCertVerifier>,
    pub(crate) credential: Arc<Credential>,
    pub(crate) suites: Vec<CipherSuite>,
    pub(crate) key_log: Option<Arc<dyn KeyLog>>,
    pub(crate) streams: bool,
    pub(crate) rekey: bool,
    pub(crate) min_version: ProtocolVersion,
    pub(crate) max_version: ProtocolVersion,
}

impl ServerConfig {
    /// Starts building a server configuration.
    pub fn builder() -> ConfigBuilder<WantsVerifier> {
        ClientConfig::builder()
    }

    /// The cipher suites accepted, most preferred first.
    pub fn suites(&self) -> &[CipherSuite] {
        &self.suites
    }

    /// Whether the server multiplexes streams for clients that offer it.
    pub fn streams(&self) -> bool {
        self.streams
    }

    /// Multiplexes streams for clients that offer it (off by default);
    /// other clients keep one byte stream per session.
    pub fn with_streams(mut self, on: bool) -> Self {
        self.streams = on;
        self
    }

    /// Whether the server re-keys sessions with clients that offer it.
    pub fn rekey(&self) -> bool {
        self.rekey
    }

    /// Takes up in-session re-keying with clients that offer it (off by
    /// default; SPEC §15); other clients keep their handshake keys.
    pub fn with_rekey(mut self, on: bool) -> Self {
        self.rekey = on;
        self
    }

    /// The oldest protocol version the server accepts (default: version 1).
    pub fn min_version(&self) -> ProtocolVersion {
        self.min_version
    }

    /// Accepts only clients that speak `version` or later (SPEC §16.1):
    /// with version 2, a client that does not offer it is refused with a
    /// plaintext `protocol version` alert. Fails for a version this
    /// implementation does not speak or one above
    /// [`ServerConfig::max_version`].
    pub fn with_min_version(mut self, version: ProtocolVersion) -> Result<Self, ConfigError> {
        check_versions(version, self.max_version)?;
        self.min_version = version;
        Ok(self)
    }

    /// The newest protocol version the server answers (default: version 2).
    pub fn max_version(&self) -> ProtocolVersion {
        self.max_version
    }

    /// Answers protocol versions up to `version`: with version 1, the
    /// server ignores a client's offer of version 2, as a server built
    /// before it does. Fails for a version this implementation does not
    /// speak or one below [`ServerConfig::min_version`].
    pub fn with_max_version(mut self, version: ProtocolVersion) -> Result<Self, ConfigError> {
        check_versions(self.min_version, version)?;
        self.max_version = version;
        Ok(self)
    }

    /// The version to run with a client whose ClientHello offers `suites`:
    /// version 2 if the client offers it and this server answers it, else
    /// version 1 — unless that is below `min_version`.
    pub(crate) fn choose_version(
        &self,
        suites: &[CipherSuite],
    ) -> Result<ProtocolVersion, crate::PeerIncompatible> {
        let version = if self.max_version >= ProtocolVersion::V2
            && suites.contains(&CipherSuite::VERSION_2)
        {
            ProtocolVersion::V2
        } else {
            ProtocolVersion::V1
        };
        if version < self.min_version {
            return Err(crate::PeerIncompatible::VersionBelowMinimum {
                peer: version,
                min: self.min_version,
            });
        }
        Ok(version)
    }

    /// The crypto provider.
    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }

    /// The certificate chain and key the server presents.
    pub fn credential(&self) -> &Arc<Credential> {
        &self.credential
    }

    /// Picks the suite for a client's offer: the server's most preferred suite
    /// that the client offers, except that a client which puts
    /// ChaCha20-Poly1305 first (a client without AES hardware) gets it if this
    /// server enables it — BoringSSL's and rustls's rule.
    pub fn choose_suite(&self, offered: &[CipherSuite]) -> Option<CipherSuite> {
        if offered.first() == Some(&CipherSuite::CHACHA20_POLY1305)
            && self.suites.contains(&CipherSuite::CHACHA20_POLY1305)
        {
            return Some(CipherSuite::CHACHA20_POLY1305);
        }
        self.suites.iter().copied().find(|s| offered.contains(s))
    }
}

impl ConfigBuilder<WantsServerCredential> {
    /// The server's certificate chain and key.
    pub fn with_credential(self, credential: Arc<Credential>) -> ConfigBuilder<ServerReady> {
        ConfigBuilder {
            provider: self.provider,
            state: ServerReady {
                verifier: self.state.verifier,
                credential,
                key_log: None,
            },
        }
    }
}

impl ConfigBuilder<ServerReady> {
    /// **Dangerous**: hands every session secret to `log`, so anyone who sees
    /// its output can decrypt the sessions. For debugging and test vectors.
    pub fn dangerous_key_log(mut self, log: Arc<dyn KeyLog>) -> Self {
        self.state.key_log = Some(log);
        self
    }

    /// Builds with the provider's hardware-aware suite preference.
    pub fn build(self) -> ServerConfig {
        let suites = self.provider.default_suites();
        self.finish(suites)
    }

    /// Builds accepting exactly `suites`, in this order of preference.
    pub fn build_with_suites(self, suites: &[CipherSuite]) -> Result<ServerConfig, ConfigError> {
        check_suites(self.provider, suites)?;
        Ok(self.finish(suites.to_vec()))
    }

    fn finish(self, suites: Vec<CipherSuite>) -> ServerConfig {
        ServerConfig {
            provider: self.provider,
            verifier: self.state.verifier,
            credential: self.state.credential,
            suites,
            key_log: self.state.key_log,
            streams: false,
            rekey: false,
            min_version: ProtocolVersion::V1,
            max_version: ProtocolVersion::V2,
        }
    }
}
