//! A client's chain, as a server checks it: `ClientCertVerifier` and
//! `WebPkiClientVerifier`, the chain checks and then the `ClientPolicy`
//! allow-list; and anonymous clients, whose self-signed certificate is checked
//! as itself.

use std::fmt;
use std::time::Duration;

use der::Decode;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use webpki::EndEntityCert;
use x509_cert::name::Name;

use super::anchors::TrustAnchors;
use super::chain::{map_webpki_error, verified_peer, within_skew, ChainPolicy, CLIENT_AUTH};
use crate::cert::{common_name, ParsedCert};
use crate::error::{CertError, PkiError};
use crate::identity::{
    AllowEntry, AllowedName, KeyPin, NameAt, NameKind, PeerIdentity, VerifiedPeer,
};
use crate::issue::{ANONYMOUS_LIFETIME_SECS, VALIDITY_BACKDATE_SECS};

/// The longest `notAfter - notBefore` accepted for an anonymous certificate:
/// [`ANONYMOUS_LIFETIME_SECS`] plus the [`VALIDITY_BACKDATE_SECS`] back-dating
/// that [`anonymous_credential`](crate::anonymous_credential) applies (35 minutes).
pub const ANONYMOUS_MAX_LIFETIME_SECS: u64 = ANONYMOUS_LIFETIME_SECS + VALIDITY_BACKDATE_SECS;

/// Verifies the certificate chain a client presents.
pub trait ClientCertVerifier: Send + Sync + fmt::Debug {
    /// Whether clients without a certificate may present an anonymous one.
    fn anonymous_allowed(&self) -> bool;

    /// DER-encoded subject Names of the accepted CAs (sent to the client in step 4).
    fn ca_names(&self) -> &[Vec<u8>];

    /// Verifies `chain` (leaf first) for EKU clientAuth at `now`.
    fn verify_client(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError>;

    /// A self-signed anonymous certificate: checked only as itself
    /// (self-signature, lifetime at most [`ANONYMOUS_MAX_LIFETIME_SECS`], EKU
    /// clientAuth, not a CA, validity at `now`). Error
    /// [`CertError::AnonymousNotAllowed`] when the verifier does not allow
    /// anonymous clients.
    fn verify_anonymous(
        &self,
        cert: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError>;
}

/// Which clients with a valid certificate chain a server admits.
///
/// * An empty policy (the default) admits every client whose chain verifies.
/// * Otherwise a client is admitted if one of its names matches an entry of
///   `allow_names` **or** its key's pin is in `allow_pins`; else
///   verification fails with
///   [`CertError::NotAuthorised`](crate::CertError::NotAuthorised).
///
/// Each entry of `allow_names` is an [`AllowEntry`] in its text form:
/// `dns:NAME` (a DNS SAN, ASCII case-insensitively), `uri:URI` (a URI SAN,
/// byte for byte), `ip:ADDRESS` (an IP SAN), `cn:NAME` (the subject common
/// name, byte for byte), each optionally tied to a trust anchor with
/// `@ANCHOR` (the anchor's subject CN); `anonymous`; or a bare `NAME`,
/// which matches a DNS, URI or IP SAN as above and the common name only of
/// a certificate that has none of those SANs. Wildcards are not expanded.
/// An entry that does not parse matches nothing ([`ClientPolicy::entries`]
/// finds them, for a start-up check).
///
/// Anonymous clients are not subject to this policy: they are admitted or
/// refused by [`WebPkiClientVerifier::allow_anonymous`](crate::WebPkiClientVerifier::allow_anonymous)
/// alone. Their names are self-asserted, so never matched, and their key is
/// fresh for every connection, so a pin could never name it in advance. The
/// entry `anonymous` lets a server's configuration say that it means to
/// admit them besides the listed clients (see [`ClientPolicy::names_anonymous`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientPolicy {
    /// Allow-list entries ([`AllowEntry`] text: `dns:app-1`, `cn:app-1@Root
    /// CA`, `anonymous`, or an untyped `app-1`).
    pub allow_names: Vec<String>,
    /// Client keys to admit, whatever names their certificates carry.
    pub allow_pins: Vec<KeyPin>,
}

impl ClientPolicy {
    /// Whether the policy admits every client with a valid chain.
    pub fn is_empty(&self) -> bool {
        self.allow_names.is_empty() && self.allow_pins.is_empty()
    }

    /// The entries of `allow_names`, parsed; the first that does not parse
    /// is the error.
    pub fn entries(&self) -> Result<Vec<AllowEntry>, PkiError> {
        self.allow_names.iter().map(|name| name.parse()).collect()
    }

    /// Whether `allow_names` holds the entry `anonymous`.
    pub fn names_anonymous(&self) -> bool {
        self.parsed()
            .any(|entry| entry.name == AllowedName::Anonymous)
    }

    /// The warnings to give for this policy: one per untyped entry
    /// ([`AllowEntry::untyped_warning`]).
    pub fn warnings(&self) -> Vec<String> {
        self.parsed()
            .filter_map(|entry| entry.untyped_warning())
            .collect()
    }

    /// Whether the policy admits the (CA-issued) peer `identity`, by a pin or
    /// by an entry that is not tied to a trust anchor: an `@ANCHOR` entry
    /// never matches here, since an identity does not tell which anchor its
    /// chain led to ([`WebPkiClientVerifier`] checks those).
    pub fn admits(&self, identity: &PeerIdentity) -> bool {
        if self.is_empty() {
            return true;
        }
        if identity.anonymous {
            return false;
        }
        self.allow_pins.contains(&identity.spki_pin)
            || self
                .parsed()
                .any(|entry| entry.anchor.is_none() && entry.name.matches(identity))
    }

    /// The entries that parse.
    fn parsed(&self) -> impl Iterator<Item = AllowEntry> + '_ {
        self.allow_names.iter().filter_map(|name| name.parse().ok())
    }
}

/// Moves the matched name to the front of its list and records its kind,
/// so that the identity's [`Display`](fmt::Display) shows it, whatever other
/// names the certificate has.
fn put_first(identity: &mut PeerIdentity, at: NameAt) {
    identity.matched = Some(match at {
        NameAt::Dns(i) => {
            identity.dns_names[..=i].rotate_right(1);
            NameKind::Dns
        }
        NameAt::Uri(i) => {
            identity.uris[..=i].rotate_right(1);
            NameKind::Uri
        }
        NameAt::Ip(i) => {
            identity.ip_addrs[..=i].rotate_right(1);
            NameKind::Ip
        }
        NameAt::Cn => NameKind::Cn,
    });
}

/// Verifies client chains with rustls-webpki: path to one of the anchors,
/// validity (within the clock skew), revocation (if CRLs are given), EKU
/// clientAuth (required) and the [`ClientPolicy`]. Anonymous clients are
/// refused unless [`allow_anonymous`](Self::allow_anonymous) is set.
#[derive(Clone, Debug)]
pub struct WebPkiClientVerifier {
    pub(super) chain: ChainPolicy,
    anonymous: bool,
    policy: ClientPolicy,
    /// `policy.allow_names`, parsed (those that parse).
    entries: Vec<AllowEntry>,
}

impl WebPkiClientVerifier {
    /// A verifier trusting `anchors`, refusing anonymous clients, admitting
    /// every client with a valid chain (empty policy), without CRLs, with the
    /// [`DEFAULT_CLOCK_SKEW`](crate::DEFAULT_CLOCK_SKEW).
    pub fn new(anchors: TrustAnchors) -> Self {
        Self {
            chain: ChainPolicy::new(anchors),
            anonymous: false,
            policy: ClientPolicy::default(),
            entries: Vec::new(),
        }
    }

    /// Whether to accept anonymous clients (off by default).
    ///
    /// Anonymous clients are admitted by this switch alone: the
    /// [`ClientPolicy`] applies to CA-issued client certificates only (an
    /// anonymous client's names are self-asserted and its key is fresh for
    /// every connection).
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.anonymous = yes;
        self
    }

    /// Also checks revocation against `crls`; see
    /// [`WebPkiServerVerifier::with_crls`](crate::WebPkiServerVerifier::with_crls).
    pub fn with_crls(
        mut self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, PkiError> {
        self.chain.add_crls(crls)?;
        Ok(self)
    }

    /// Sets the clock-skew allowance; see
    /// [`WebPkiServerVerifier::with_clock_skew`](crate::WebPkiServerVerifier::with_clock_skew).
    /// It applies to anonymous certificates too.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.chain.clock_skew = skew;
        self
    }

    /// Replaces the signature cache with an empty one of at most `capacity`
    /// entries (0 remembers nothing); see
    /// [`WebPkiServerVerifier::with_signature_cache`](crate::WebPkiServerVerifier::with_signature_cache).
    /// Anonymous certificates are never cached (their key is new for every
    /// connection).
    pub fn with_signature_cache(mut self, capacity: usize) -> Self {
        self.chain.set_cache_capacity(capacity);
        self
    }

    /// Sets (replaces) which clients are admitted; see [`ClientPolicy`].
    /// A client with a valid chain that the policy does not admit fails with
    /// [`CertError::NotAuthorised`]. An entry that does not parse, or whose
    /// `@ANCHOR` names none of the anchors, admits nobody: check them first
    /// with [`ClientPolicy::entries`] and [`anchor_names`](Self::anchor_names).
    pub fn with_policy(mut self, policy: ClientPolicy) -> Self {
        self.entries = policy
            .allow_names
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        self.policy = policy;
        self
    }

    /// The subject common name of each trust anchor, in order (`None` for an
    /// anchor without one): what an allow-list entry's `@ANCHOR` names.
    pub fn anchor_names(&self) -> Vec<Option<String>> {
        self.chain
            .anchors
            .subject_names()
            .iter()
            .map(|der| Name::from_der(der).ok().and_then(|name| common_name(&name)))
            .collect()
    }

    /// Whether `chain` (already verified against every anchor) leads to an
    /// anchor whose subject common name is `anchor`: verified again with only
    /// those anchors.
    fn leads_to(&self, chain: &[CertificateDer<'_>], now: UnixTime, anchor: &str) -> bool {
        let names = self.anchor_names();
        let mut tied = self.chain.clone();
        // `subject_names()` and `anchors` are in the same order (both made by
        // `TrustAnchors::from_der`).
        let mut index = 0;
        tied.anchors.anchors.retain(|_| {
            let keep = names.get(index).and_then(Option::as_deref) == Some(anchor);
            index += 1;
            keep
        });
        !tied.anchors.anchors.is_empty() && tied.verify(chain, now, CLIENT_AUTH, None).is_ok()
    }

    /// The policy's verdict on a verified `peer`: the name it matched (moved
    /// first, see [`put_first`]), or `NotAuthorised`.
    fn admit(
        &self,
        mut peer: VerifiedPeer,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        if self.policy.is_empty() {
            return Ok(peer);
        }
        for entry in &self.entries {
            let Some(at) = entry.name.find(&peer.identity) else {
                continue;
            };
            let admitted = match &entry.anchor {
                None => true,
                Some(anchor) => self.leads_to(chain, now, anchor),
            };
            if admitted {
                put_first(&mut peer.identity, at);
                return Ok(peer);
            }
        }
        if self.policy.allow_pins.contains(&peer.identity.spki_pin) {
            return Ok(peer);
        }
        Err(CertError::NotAuthorised(format!(
            "client '{}' is not in the allow-list",
            peer.identity
        )))
    }

    /// The identity policy.
    pub fn policy(&self) -> &ClientPolicy {
        &self.policy
    }

    /// The clock-skew allowance.
    pub fn clock_skew(&self) -> Duration {
        self.chain.clock_skew
    }

    /// The number of CRLs checked.
    pub fn crl_count(&self) -> usize {
        self.chain.crls.len()
    }
}

impl ClientCertVerifier for WebPkiClientVerifier {
    fn anonymous_allowed(&self) -> bool {
        self.anonymous
    }

    fn ca_names(&self) -> &[Vec<u8>] {
        self.chain.anchors.subject_names()
    }

    fn verify_client(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        let peer = self.chain.verify(chain, now, CLIENT_AUTH, None)?;
        self.admit(peer, chain, now)
    }

    fn verify_anonymous(
        &self,
        cert: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<VerifiedPeer, CertError> {
        if !self.anonymous {
            return Err(CertError::AnonymousNotAllowed);
        }
        verify_anonymous_cert(cert, now, self.chain.clock_skew)
    }
}

/// Checks an anonymous certificate as itself: it must be self-issued and
/// self-signed, not a CA, valid at `now` (within `skew`) with EKU clientAuth,
/// and live no longer than [`ANONYMOUS_MAX_LIFETIME_SECS`].
fn verify_anonymous_cert(
    cert: &CertificateDer<'_>,
    now: UnixTime,
    skew: Duration,
) -> Result<VerifiedPeer, CertError> {
    let info = ParsedCert::parse(cert)?;
    if !info.is_self_issued() {
        return Err(CertError::InvalidAnonymous(
            "certificate is not self-signed (issuer differs from subject)".into(),
        ));
    }
    // The certificate is its own (only) trust anchor: webpki then checks the
    // self-signature, validity at `now`, basicConstraints and EKU.
    let anchor = webpki::anchor_from_trusted_cert(cert).map_err(map_webpki_error)?;
    let ee = EndEntityCert::try_from(cert).map_err(map_webpki_error)?;
    let anchors = [anchor];
    within_skew(now, skew, |time| {
        CLIENT_AUTH.verify(&ee, &info, &anchors, &[], time, None)
    })?;
    let (not_before, not_after) = info.validity_secs();
    let lifetime = not_after.saturating_sub(not_before);
    if lifetime > ANONYMOUS_MAX_LIFETIME_SECS {
        return Err(CertError::InvalidAnonymous(format!(
            "lifetime of {lifetime} s exceeds the {ANONYMOUS_MAX_LIFETIME_SECS} s allowed"
        )));
    }
    Ok(verified_peer(info, true))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::test_util::{chain_of, now, rng, Ca};
    use crate::{LeafSpec, TrustAnchors};

    fn verifier(roots: &[&Ca], names: &[&str]) -> WebPkiClientVerifier {
        let certs: Vec<_> = roots.iter().map(|ca| ca.cert.clone()).collect();
        WebPkiClientVerifier::new(TrustAnchors::from_der(&certs).expect("anchors")).with_policy(
            ClientPolicy {
                allow_names: names.iter().map(|n| n.to_string()).collect(),
                allow_pins: Vec::new(),
            },
        )
    }

    fn refused(result: Result<VerifiedPeer, CertError>) -> bool {
        matches!(result, Err(CertError::NotAuthorised(_)))
    }

    /// A CA-issued identity with these names (and no others).
    fn identity(cn: Option<&str>, dns: &[&str], uris: &[&str], ips: &[&str]) -> PeerIdentity {
        PeerIdentity {
            common_name: cn.map(str::to_owned),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ip_addrs: ips.iter().map(|s| s.parse().expect("ip")).collect(),
            uris: uris.iter().map(|s| s.to_string()).collect(),
            fingerprint: [7; 32],
            spki_pin: KeyPin::of_key(&[1; 32]),
            anonymous: false,
            matched: None,
        }
    }

    #[test]
    fn a_common_name_counts_only_when_typed_if_the_certificate_has_alt_names() {
        let mut rng = rng(140);
        let root = Ca::root("Test Root", &mut rng);
        // Any CA of the bundle can put CN=app-1 on a certificate for another name.
        let impostor = root.leaf(
            &LeafSpec {
                common_name: "app-1".into(),
                dns_names: vec!["other".into()],
                ..LeafSpec::client("x")
            },
            &mut rng,
        );
        for names in [&["app-1"][..], &["dns:app-1"], &["uri:app-1"]] {
            assert!(
                refused(verifier(&[&root], names).verify_client(impostor.chain(), now())),
                "{names:?}"
            );
        }
        let peer = verifier(&[&root], &["cn:app-1"])
            .verify_client(impostor.chain(), now())
            .expect("cn: names the common name");
        assert_eq!(peer.identity.common_name.as_deref(), Some("app-1"));
        // Untyped, the common name still counts for a certificate without
        // DNS, URI or IP names.
        let untyped: AllowedName = AllowedName::Untyped("app-1".into());
        assert!(untyped.matches(&identity(Some("app-1"), &[], &[], &[])));
        assert!(!untyped.matches(&identity(Some("app-1"), &[], &["spiffe://x"], &[])));
        assert!(!untyped.matches(&identity(Some("app-1"), &[], &[], &["10.0.0.1"])));
        assert!(AllowedName::Cn("app-1".into()).matches(&identity(
            Some("app-1"),
            &["other"],
            &[],
            &[]
        )));
        // The policy without a verifier judges the same way.
        let policy = |name: &str| ClientPolicy {
            allow_names: vec![name.into()],
            allow_pins: Vec::new(),
        };
        let id = identity(Some("app-1"), &["other"], &[], &[]);
        assert!(!policy("app-1").admits(&id));
        assert!(!policy("dns:app-1").admits(&id));
        assert!(policy("cn:app-1").admits(&id));
        assert!(policy("OTHER").admits(&id));
    }

    #[test]
    fn ip_uri_and_dns_entries_match_only_their_own_type() {
        let mut rng = rng(141);
        let root = Ca::root("Test Root", &mut rng);
        let ip = root.leaf(&LeafSpec::client("10.0.0.7"), &mut rng);
        let uri = root.leaf(&LeafSpec::client("spiffe://sc/client/bob"), &mut rng);
        let dns = root.leaf(&LeafSpec::client("alice.clients"), &mut rng);
        let check = |names: &[&str], client: &crate::Credential, ok: bool| {
            let got = verifier(&[&root], names).verify_client(client.chain(), now());
            assert_eq!(got.is_ok(), ok, "{names:?}: {got:?}");
            if !ok {
                assert!(refused(got));
            }
        };
        check(&["ip:10.0.0.7"], &ip, true);
        check(&["10.0.0.7"], &ip, true);
        check(&["ip:10.0.0.8"], &ip, false);
        check(&["dns:10.0.0.7"], &ip, false);
        check(&["uri:10.0.0.7"], &ip, false);
        check(&["cn:10.0.0.7"], &ip, true);
        check(&["uri:spiffe://sc/client/bob"], &uri, true);
        check(&["uri:SPIFFE://sc/client/bob"], &uri, false);
        check(&["dns:spiffe://sc/client/bob"], &uri, false);
        check(&["dns:ALICE.clients"], &dns, true);
        check(&["uri:alice.clients"], &dns, false);
        check(&["ip:10.0.0.7", "dns:alice.clients"], &dns, true);
        // IPv6, written either way.
        let v6 = root.leaf(&LeafSpec::client("fd00::7"), &mut rng);
        check(&["ip:fd00:0:0:0:0:0:0:7"], &v6, true);
        check(&["ip:fd00::8"], &v6, false);
    }

    #[test]
    fn entries_tied_to_an_anchor_need_a_chain_to_that_anchor() {
        let mut rng = rng(142);
        let a = Ca::root("Root A", &mut rng);
        let b = Ca::root("Root B", &mut rng);
        let a_issuing = a.intermediate("Issuing A", &mut rng);
        let from_b = b.leaf(&LeafSpec::client("app-1"), &mut rng);
        let via_a = a_issuing.leaf(&LeafSpec::client("app-1"), &mut rng);
        let via_a = chain_of(&via_a, &[&a_issuing.cert]);
        assert_eq!(
            verifier(&[&a, &b], &[]).anchor_names(),
            vec![Some("Root A".to_owned()), Some("Root B".to_owned())]
        );
        for (names, b_ok, a_ok) in [
            (&["app-1@Root A"][..], false, true),
            (&["dns:app-1@Root A"], false, true),
            (&["dns:app-1@Root B"], true, false),
            (&["dns:app-1@*"], true, true),
            (&["dns:app-1"], true, true),
            // The anchor is named by its subject CN, not an intermediate's.
            (&["dns:app-1@Issuing A"], false, false),
            (&["dns:app-1@root a"], false, false),
            (&["dns:app-1@Root C"], false, false),
            (&["dns:app-1@Root B", "cn:app-1@Root A"], true, true),
        ] {
            let v = verifier(&[&a, &b], names);
            assert_eq!(
                v.verify_client(from_b.chain(), now()).is_ok(),
                b_ok,
                "{names:?} (Root B)"
            );
            assert_eq!(
                v.verify_client(&via_a, now()).is_ok(),
                a_ok,
                "{names:?} (Root A)"
            );
        }
        // Without the verifier the anchor is unknown: a tied entry admits nobody.
        let policy = ClientPolicy {
            allow_names: vec!["dns:app-1@Root B".into()],
            allow_pins: Vec::new(),
        };
        let peer = verifier(&[&a, &b], &[])
            .verify_client(from_b.chain(), now())
            .expect("valid");
        assert!(!policy.admits(&peer.identity));
        // Two anchors of one name (a roll-over): either.
        let b2 = Ca::root("Root B", &mut rng);
        let from_b2 = b2.leaf(&LeafSpec::client("app-1"), &mut rng);
        let v = verifier(&[&a, &b, &b2], &["dns:app-1@Root B"]);
        assert!(v.verify_client(from_b.chain(), now()).is_ok());
        assert!(v.verify_client(from_b2.chain(), now()).is_ok());
        assert!(refused(v.verify_client(&via_a, now())));
    }

    #[test]
    fn the_identity_shows_the_name_that_was_matched() {
        let mut rng = rng(143);
        let root = Ca::root("Test Root", &mut rng);
        let two = root.leaf(
            &LeafSpec {
                dns_names: vec!["a.clients".into(), "b.clients".into()],
                uris: vec!["spiffe://sc/b".into()],
                ..LeafSpec::client("x")
            },
            &mut rng,
        );
        let shown = |names: &[&str]| {
            verifier(&[&root], names)
                .verify_client(two.chain(), now())
                .expect("admitted")
                .identity
                .to_string()
        };
        assert_eq!(shown(&[]), "dns:a.clients");
        assert_eq!(shown(&["dns:a.clients"]), "dns:a.clients");
        assert_eq!(shown(&["dns:b.clients"]), "dns:b.clients");
        assert_eq!(shown(&["nobody", "B.clients"]), "dns:b.clients");
        // A matched name of a type that is not the certificate's first one
        // is what the backend is told, not the first DNS name.
        assert_eq!(shown(&["uri:spiffe://sc/b"]), "uri:spiffe://sc/b");
        assert_eq!(shown(&["cn:x"]), "cn:x");
        let err = verifier(&[&root], &["dns:c.clients"])
            .verify_client(two.chain(), now())
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "peer is not authorised: client 'dns:a.clients' is not in the allow-list"
        );
    }

    #[test]
    fn identities_say_their_type_so_none_reads_as_another() {
        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        let cases = [
            (
                identity(Some("c"), &["d"], &["u:x"], &["10.0.0.7"]),
                "dns:d",
            ),
            (
                identity(Some("c"), &[], &["anonymous:x"], &["10.0.0.7"]),
                "uri:anonymous:x",
            ),
            (identity(Some("c"), &[], &[], &["10.0.0.7"]), "ip:10.0.0.7"),
            (
                identity(Some("anonymous:0707070707070707"), &[], &[], &[]),
                "cn:anonymous:0707070707070707",
            ),
            (
                identity(Some("sha256:0707070707070707"), &[], &[], &[]),
                "cn:sha256:0707070707070707",
            ),
            (identity(None, &[], &[], &[]), "sha256:0707070707070707"),
            (
                PeerIdentity {
                    anonymous: true,
                    ..identity(None, &[], &[], &[])
                },
                "anonymous:sha256:0707070707070707",
            ),
        ];
        for (id, shown) in cases {
            assert_eq!(id.to_string(), shown);
        }
        assert_eq!(AllowedName::Ip(ip).to_string(), "ip:10.0.0.7");
    }

    #[test]
    fn untyped_entries_are_warned_about_with_their_typed_spelling() {
        let policy = ClientPolicy {
            allow_names: vec![
                "app-1".into(),
                "dns:app-2".into(),
                "10.0.0.7@Root".into(),
                "spiffe://sc/c".into(),
                "cn:Carol".into(),
                "anonymous".into(),
                "ip:bad".into(),
            ],
            allow_pins: Vec::new(),
        };
        assert_eq!(
            policy.warnings(),
            vec![
                "allow-list entry 'app-1' has no type: it matches a DNS, URI or IP name, and the \
                 CN only of a certificate without those; write 'dns:app-1' (or 'cn:app-1' for the CN)"
                    .to_owned(),
                "allow-list entry '10.0.0.7@Root' has no type: it matches a DNS, URI or IP name, \
                 and the CN only of a certificate without those; write 'ip:10.0.0.7@Root' (or \
                 'cn:10.0.0.7@Root' for the CN)"
                    .to_owned(),
                "allow-list entry 'spiffe://sc/c' has no type: it matches a DNS, URI or IP name, \
                 and the CN only of a certificate without those; write 'uri:spiffe://sc/c' (or \
                 'cn:spiffe://sc/c' for the CN)"
                    .to_owned(),
            ]
        );
        assert!(policy.names_anonymous());
        assert!(matches!(
            policy.entries(),
            Err(PkiError::InvalidName { name, .. }) if name == "ip:bad"
        ));
        assert!(!ClientPolicy::default().names_anonymous());
        assert!(ClientPolicy::default().warnings().is_empty());
    }

    #[test]
    fn anonymous_in_the_list_admits_no_certificate() {
        let mut rng = rng(144);
        let root = Ca::root("Test Root", &mut rng);
        let named = root.leaf(&LeafSpec::client("anonymous"), &mut rng);
        let v = verifier(&[&root], &["anonymous"]);
        assert!(refused(v.verify_client(named.chain(), now())));
        assert!(verifier(&[&root], &["dns:anonymous"])
            .verify_client(named.chain(), now())
            .is_ok());
    }
}
