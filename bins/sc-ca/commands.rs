//! The commands. Each prints what it did, one fact per line, and ends with
//! the one error that stopped it, if any.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use rand_core::OsRng;
use sc_pki::{
    cert_info, cert_to_pem, issue_intermediate, issue_leaf, issue_root, CertError, CertInfo,
    CertRequest, CertificateDer, ClientCertVerifier, ClientPolicy, Issuer, KeyPair, LeafSpec,
    PemContents, RequestError, RevokedEntry, ServerCertVerifier, ServerName, TrustAnchors,
    UnixTime, Usage, Validity, WebPkiClientVerifier, WebPkiServerVerifier,
};

use crate::dir::{
    check_name, hex, CaDir, Entry, Index, Kind, Signer, Status, CRL, INDEX, INTER_CERT, INTER_KEY,
    ROOT_CERT, ROOT_KEY,
};
use crate::fsutil::{create_dir, read_text, write_atomic, KEY_MODE, PUBLIC_MODE};
use crate::pass::Passphrase;
use crate::time::{self, date, expiry, minute, rfc3339, unix, DAY};
use crate::{
    Command, CrlArgs, InitArgs, IssueKind, Purpose, RenewArgs, RequestArgs, RevokeArgs, VerifyArgs,
};
use sovereign_chain::cli::CliError;

/// Longest an intermediate is valid, in days.
const MAX_INTERMEDIATE_DAYS: u32 = 1825;

pub(crate) fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Init(a) => init(a),
        Command::Issue { kind } => issue(kind),
        Command::Renew(a) => renew(a),
        Command::Revoke(a) => revoke(a),
        Command::Request(a) => request(a),
        Command::Crl(a) => crl(a),
        Command::List(a) => list(&a.dir),
        Command::Inspect { file } => inspect(&file),
        Command::Verify(a) => verify(a),
    }
}

fn write_key(ca: &CaDir, file: &str, key: &KeyPair, pass: Option<&[u8]>) -> Result<(), CliError> {
    let pem = match pass {
        Some(p) => key.to_encrypted_pkcs8_pem(p, &mut OsRng)?,
        None => key.to_pkcs8_pem()?,
    };
    write_atomic(&ca.path(file), pem.as_bytes(), KEY_MODE)
}

fn write_chain(ca: &CaDir, file: &str, chain: &[CertificateDer<'_>]) -> Result<(), CliError> {
    let mut pem = String::new();
    for c in chain {
        pem.push_str(&cert_to_pem(c)?);
    }
    write_atomic(&ca.path(file), pem.as_bytes(), PUBLIC_MODE)
}

fn entry_for(
    name: &str,
    kind: Kind,
    cert: &CertificateDer<'_>,
    now: UnixTime,
) -> Result<Entry, CliError> {
    let info = cert_info(cert, now)?;
    Ok(Entry {
        serial: info.serial_hex.clone(),
        name: name.to_owned(),
        kind,
        not_before: rfc3339(info.not_before),
        not_after: rfc3339(info.not_after),
        status: Status::Valid,
        revoked_at: None,
        reason: None,
        dns: info.dns_names.clone(),
        ips: info.ip_addrs.iter().map(|ip| ip.to_string()).collect(),
        uris: info.uris.clone(),
    })
}

fn init(a: InitArgs) -> Result<(), CliError> {
    let dir = &a.dir;
    if dir.join(INDEX).exists() {
        return Err(
            CliError::new(format!("a CA already exists in {}", dir.display()))
                .hint("use another --dir, or remove that directory first"),
        );
    }
    if dir.exists() {
        let busy = std::fs::read_dir(dir)
            .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), &e))?
            .filter_map(Result::ok)
            .any(|e| e.file_name() != ".lock");
        if busy {
            let half = dir.join(ROOT_CERT).exists();
            return Err(CliError::new(format!(
                "{} is not empty{}",
                dir.display(),
                if half {
                    " (it holds a half-written CA: no index.toml)"
                } else {
                    ""
                }
            ))
            .hint("sc-ca init needs a new or empty directory"));
        }
    }
    if a.name.trim().is_empty() {
        return Err(CliError::usage("the CA name is empty").hint("give one with --name"));
    }
    create_dir(dir)?;
    let now = time::now();
    let mut ca = CaDir::create(dir, Index::new(&a.name, now, a.intermediate))?;
    let pass = Passphrase::new(a.pass.passphrase_file);
    let secret = if a.encrypt {
        Some(pass.get("new passphrase for the CA keys", true)?)
    } else {
        None
    };
    let secret = secret.as_ref().map(|s| s.as_bytes());

    let root_key = KeyPair::generate(&mut OsRng);
    let root = issue_root(
        &root_key,
        &a.name,
        Validity::days_from(now, a.days),
        &mut OsRng,
    )?;
    write_key(&ca, ROOT_KEY, &root_key, secret)?;
    write_chain(&ca, ROOT_CERT, std::slice::from_ref(&root))?;
    let root_info = cert_info(&root, now)?;
    let enc = if a.encrypt {
        "encrypted"
    } else {
        "not encrypted"
    };
    let mut out = format!("created CA \"{}\" in {}\n", a.name, dir.display());
    let _ = writeln!(
        out,
        "  {:<26} root certificate, valid until {}: distribute it as the trust anchor",
        ca.path(ROOT_CERT).display(),
        date(root_info.not_after)
    );

    if a.intermediate {
        let inter_key = KeyPair::generate(&mut OsRng);
        let days = a.days.min(MAX_INTERMEDIATE_DAYS);
        let issuer = Issuer {
            cert: &root,
            key: &root_key,
        };
        let inter = issue_intermediate(
            &issuer,
            &inter_key.public_key(),
            &format!("{} Intermediate", a.name),
            Validity::days_from(now, days),
            &mut OsRng,
        )?;
        write_key(&ca, INTER_KEY, &inter_key, secret)?;
        write_chain(&ca, INTER_CERT, std::slice::from_ref(&inter))?;
        ca.index
            .certs
            .push(entry_for("intermediate", Kind::Intermediate, &inter, now)?);
        let _ = writeln!(out, "  {:<26} root key (mode 0600, {enc}): only needed to make a new intermediate; keep it offline", ca.path(ROOT_KEY).display());
        let _ = writeln!(
            out,
            "  {:<26} intermediate, valid until {}: signs certificates and CRLs",
            ca.path(INTER_CERT).display(),
            date(cert_info(&inter, now)?.not_after)
        );
        let _ = writeln!(
            out,
            "  {:<26} intermediate key (mode 0600, {enc})",
            ca.path(INTER_KEY).display()
        );
    } else {
        let _ = writeln!(
            out,
            "  {:<26} root key (mode 0600, {enc}): signs certificates and CRLs",
            ca.path(ROOT_KEY).display()
        );
    }
    // The index last: its presence marks a complete CA.
    ca.save()?;
    let _ = writeln!(
        out,
        "  {:<26} the CA's state (no keys): back it up with the certificates",
        ca.path(INDEX).display()
    );
    let _ = write!(out, "next: sc-ca issue server NAME --dir {}", dir.display());
    println!("{out}");
    Ok(())
}

fn leaf_validity(signer: &Signer, now: UnixTime, days: u32) -> Result<Validity, CliError> {
    let v = Validity::days_from(now, days);
    if v.not_after.as_secs() > signer.not_after.as_secs() {
        let left = signer.not_after.as_secs().saturating_sub(now.as_secs()) / DAY;
        return Err(CliError::new(format!(
            "{days} days would outlive the CA, which expires on {}",
            date(signer.not_after)
        ))
        .hint(format!("use --days {left} or less")));
    }
    Ok(Validity {
        not_before: unix(v.not_before.as_secs().max(signer.not_before.as_secs())),
        not_after: v.not_after,
    })
}

fn issue(kind: IssueKind) -> Result<(), CliError> {
    let (name, dir, spec, common, k) = match kind {
        IssueKind::Server {
            name,
            dir,
            dns,
            ip,
            common,
        } => {
            let mut spec = LeafSpec {
                common_name: name.clone(),
                dns_names: dns,
                ip_addrs: ip,
                uris: Vec::new(),
                usage: Usage::Server,
            };
            if spec.dns_names.is_empty() && spec.ip_addrs.is_empty() {
                match name.parse::<IpAddr>() {
                    Ok(ip) => spec.ip_addrs.push(ip),
                    Err(_) => spec.dns_names.push(name.clone()),
                }
            }
            (name, dir, spec, common, Kind::Server)
        }
        IssueKind::Client {
            name,
            dir,
            uri,
            common,
        } => {
            let mut spec = LeafSpec::client(&name);
            spec.uris.extend(uri);
            (name, dir, spec, common, Kind::Client)
        }
    };
    check_name(&name)?;
    // A request is read and checked before the CA is opened or its
    // passphrase asked for.
    let request = common.csr.as_deref().map(read_request).transpose()?;
    let mut ca = CaDir::open(&dir)?;
    if let Some(req) = &request {
        refuse_ca_key(&ca, req)?;
    }
    if let Some(e) = ca.index.current(&name) {
        if !common.force {
            return Err(CliError::new(format!(
                "a certificate named '{name}' already exists (serial {}, {})",
                e.serial,
                e.not_after()
                    .map(|t| expiry(t, time::now()))
                    .unwrap_or_default()
            ))
            .hint(format!(
                "renew it with: sc-ca renew {name} --dir {}  (or replace it with --force)",
                dir.display()
            )));
        }
    }
    let now = time::now();
    let pass = Passphrase::new(common.pass.passphrase_file);
    let signer = ca.signer(&pass, now)?;
    // With a request, the key is the requester's and stays with them.
    let (key, public_key) = match &request {
        Some(req) => (None, req.public_key()),
        None => {
            let key = KeyPair::generate(&mut OsRng);
            let public_key = key.public_key();
            (Some(key), public_key)
        }
    };
    let (cert, chain) = sign_leaf(
        &signer,
        &public_key,
        &spec,
        leaf_validity(&signer, now, common.days)?,
    )?;
    if common.force {
        for e in ca
            .index
            .certs
            .iter_mut()
            .filter(|e| e.name == name && e.status == Status::Valid)
        {
            e.status = Status::Superseded;
        }
    }
    let entry = entry_for(&name, k, &cert, now)?;
    if let Some(key) = &key {
        write_key(&ca, &format!("{name}.key"), key, None)?;
    }
    write_chain(&ca, &format!("{name}.pem"), &chain)?;
    ca.index.certs.push(entry.clone());
    ca.save()?;
    match (&request, &common.csr) {
        (Some(req), Some(path)) => {
            if let Some(note) = ignored_names(req, &spec) {
                eprintln!(
                    "note: {}: the request's names ({note}) were ignored: the certificate names {}",
                    path.display(),
                    spec_names(&spec)
                );
            }
            print_issued("issued", &ca, &entry, &cert, now, KeyFile::Elsewhere)
        }
        _ => print_issued("issued", &ca, &entry, &cert, now, KeyFile::New),
    }
}

/// Reads and checks a certification request: one line naming what is wrong
/// with it otherwise.
fn read_request(path: &Path) -> Result<CertRequest, CliError> {
    let bytes = std::fs::read(path).map_err(|e| {
        CliError::io(format!("cannot read the request {}", path.display()), &e)
            .hint("the host makes it with: sc-ca request NAME --out DIR (DIR/NAME.csr)")
    })?;
    CertRequest::from_pem_or_der(&bytes).map_err(|e| {
        let hint = match e {
            RequestError::NotRequest | RequestError::WrongPemLabel(_) => {
                "give the .csr file made by `sc-ca request` or `openssl req -new`"
            }
            RequestError::Malformed(_) | RequestError::BadSignature => {
                "the file is damaged or was changed: ask the host for a new request"
            }
            RequestError::UnsupportedKey(_) | RequestError::UnsupportedSignature(_) => {
                "make an Ed25519 key: sc-ca request NAME --out DIR, or openssl genpkey -algorithm ed25519"
            }
            _ => "ask the host for a new request",
        };
        CliError::new(format!("{}: {e}", path.display())).hint(hint)
    })
}

/// Refuses a request for one of this CA's own keys (the root's or the
/// intermediate's, read from their public certificates).
fn refuse_ca_key(ca: &CaDir, req: &CertRequest) -> Result<(), CliError> {
    let theirs = sc_pki::KeyPin::of_key(&req.public_key());
    for file in [ROOT_CERT, INTER_CERT] {
        if !ca.path(file).exists() {
            continue;
        }
        if sc_pki::KeyPin::of_cert(&ca.read_cert(file)?)? == theirs {
            return Err(CliError::new(format!(
                "the request's key is this CA's own key ({})",
                ca.path(file).display()
            ))
            .hint("a host makes a key of its own: sc-ca request NAME --out DIR on that host"));
        }
    }
    Ok(())
}

/// The request's names, if it carries any and they differ from `spec`'s.
fn ignored_names(req: &CertRequest, spec: &LeafSpec) -> Option<String> {
    let mut asked: Vec<String> = req
        .common_name()
        .map(|c| format!("CN={c}"))
        .into_iter()
        .collect();
    asked.extend(req.dns_names().iter().map(|d| format!("DNS:{d}")));
    asked.extend(req.ip_addrs().iter().map(|i| format!("IP:{i}")));
    asked.extend(req.uris().iter().map(|u| format!("URI:{u}")));
    if asked.is_empty() {
        return None;
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.dedup();
        v
    };
    let same_sans = sorted(
        req.dns_names()
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
    ) == sorted(
        spec.dns_names
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
    ) && sorted(req.ip_addrs().iter().map(ToString::to_string).collect())
        == sorted(spec.ip_addrs.iter().map(ToString::to_string).collect())
        && sorted(req.uris().to_vec()) == sorted(spec.uris.clone());
    let no_sans = req.dns_names().is_empty() && req.ip_addrs().is_empty() && req.uris().is_empty();
    let same_cn = req.common_name().is_none_or(|c| c == spec.common_name);
    if same_cn && (same_sans || no_sans) {
        None
    } else {
        Some(asked.join(", "))
    }
}

fn spec_names(spec: &LeafSpec) -> String {
    let mut n: Vec<String> = spec.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
    n.extend(spec.ip_addrs.iter().map(|i| format!("IP:{i}")));
    n.extend(spec.uris.iter().map(|u| format!("URI:{u}")));
    n.join(", ")
}

/// `sc-ca request`: the host's key and a request for the CA.
fn request(a: RequestArgs) -> Result<(), CliError> {
    check_name(&a.name)?;
    let mut spec = if a.dns.is_empty() && a.ip.is_empty() {
        LeafSpec::client(&a.name)
    } else {
        LeafSpec {
            common_name: a.name.clone(),
            dns_names: a.dns.clone(),
            ip_addrs: a.ip.clone(),
            uris: Vec::new(),
            usage: Usage::Server,
        }
    };
    spec.uris.extend(a.uri.iter().cloned());
    let key_path = a.out.join(format!("{}.key", a.name));
    let csr_path = a.out.join(format!("{}.csr", a.name));
    for p in [&key_path, &csr_path] {
        if p.exists() {
            return Err(CliError::new(format!("{} already exists", p.display()))
                .hint("keep it, or remove it (and its .key/.csr pair) to make a new key"));
        }
    }
    let key = KeyPair::generate(&mut OsRng);
    let csr = sc_pki::make_request_pem(&key, &spec)?;
    let secret = if a.encrypt {
        let pass = Passphrase::new(a.passphrase_file);
        Some(pass.get(&format!("new passphrase for {}", key_path.display()), true)?)
    } else {
        None
    };
    let pem = match &secret {
        Some(p) => key.to_encrypted_pkcs8_pem(p.as_bytes(), &mut OsRng)?,
        None => key.to_pkcs8_pem()?,
    };
    create_dir(&a.out)?;
    write_atomic(&key_path, pem.as_bytes(), KEY_MODE)?;
    write_atomic(&csr_path, csr.as_bytes(), PUBLIC_MODE)?;
    let enc = if a.encrypt {
        "encrypted"
    } else {
        "not encrypted"
    };
    let mut out = format!(
        "made a key and a request for '{}'
",
        a.name
    );
    let _ = writeln!(
        out,
        "  names    {} (asked for: the CA decides)",
        spec_names(&spec)
    );
    let _ = writeln!(
        out,
        "  {} private key (mode 0600, {enc}): it stays on this host",
        key_path.display()
    );
    let _ = writeln!(out, "  {} request: send it to the CA", csr_path.display());
    let _ = write!(
        out,
        "next, at the CA: sc-ca issue server|client {} --dir CA --csr {}.csr",
        a.name, a.name
    );
    println!("{out}");
    Ok(())
}

fn sign_leaf(
    signer: &Signer,
    public_key: &[u8; 32],
    spec: &LeafSpec,
    validity: Validity,
) -> Result<(CertificateDer<'static>, Vec<CertificateDer<'static>>), CliError> {
    let issuer = Issuer {
        cert: &signer.cert,
        key: &signer.key,
    };
    let cert = issue_leaf(&issuer, public_key, spec, validity, &mut OsRng)?;
    let mut chain = vec![cert.clone()];
    chain.extend(signer.chain_tail.iter().cloned());
    Ok((cert, chain))
}

/// Where the key of an issued certificate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyFile {
    /// Made now, written next to the certificate.
    New,
    /// The one already there, kept.
    Kept,
    /// On the host that made the request: no key file here.
    Elsewhere,
}

fn print_issued(
    verb: &str,
    ca: &CaDir,
    e: &Entry,
    cert: &CertificateDer<'_>,
    now: UnixTime,
    key: KeyFile,
) -> Result<(), CliError> {
    let info = cert_info(cert, now)?;
    let mut out = format!(
        "{verb} {} certificate '{}', serial {}\n",
        e.kind.as_str(),
        e.name,
        e.serial
    );
    let _ = writeln!(out, "  names    {}", names(&info));
    let _ = writeln!(
        out,
        "  valid    {} ({})",
        date(info.not_after),
        expiry(info.not_after, now)
    );
    let _ = writeln!(
        out,
        "  {:<8} certificate and intermediate, ready to present",
        ca.path(&format!("{}.pem", e.name)).display()
    );
    let key_path = ca.path(&format!("{}.key", e.name));
    match key {
        KeyFile::New => {
            let _ = write!(
                out,
                "  {} private key (mode 0600): move it to where it is used",
                key_path.display()
            );
        }
        KeyFile::Kept => {
            let _ = write!(out, "  {} key kept", key_path.display());
        }
        KeyFile::Elsewhere => {
            let _ = write!(
                out,
                "  no key file: the key stays on the host that made the request"
            );
            if key_path.exists() {
                let _ = write!(
                    out,
                    "\n  {} is an older key: it does not belong to this certificate",
                    key_path.display()
                );
            }
        }
    }
    println!("{out}");
    Ok(())
}

fn names(info: &CertInfo) -> String {
    let mut n: Vec<String> = info.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
    n.extend(info.ip_addrs.iter().map(|i| format!("IP:{i}")));
    n.extend(info.uris.iter().map(|u| format!("URI:{u}")));
    if n.is_empty() {
        "(none)".into()
    } else {
        n.join(", ")
    }
}

fn renew(a: RenewArgs) -> Result<(), CliError> {
    check_name(&a.name)?;
    let mut ca = CaDir::open(&a.dir)?;
    let Some(old) = ca.index.current(&a.name).cloned() else {
        return Err(
            CliError::new(format!("no current certificate named '{}'", a.name))
                .hint(format!("see sc-ca list --dir {}", a.dir.display())),
        );
    };
    let now = time::now();
    let pass = Passphrase::new(a.pass.passphrase_file);
    let signer = ca.signer(&pass, now)?;
    let key_file = format!("{}.key", a.name);
    // The key: a new one (--rekey), the one kept here, or, for a key that
    // lives on its host (issued from a request, or moved away), the public
    // key of the current certificate: it never has to travel.
    let (key, public_key) = if a.rekey {
        let key = KeyPair::generate(&mut OsRng);
        let public_key = key.public_key();
        (Some(key), public_key)
    } else if ca.path(&key_file).exists() {
        let key = ca.read_key(&key_file, &pass)?;
        let public_key = key.public_key();
        (Some(key), public_key)
    } else {
        (None, current_public_key(&ca, &a.name, &old.serial, now)?)
    };
    let ips = old
        .ips
        .iter()
        .map(|s| s.parse::<IpAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            CliError::new(format!(
                "the index has an invalid IP address for '{}'",
                a.name
            ))
        })?;
    let spec = LeafSpec {
        common_name: old.name.clone(),
        dns_names: old.dns.clone(),
        ip_addrs: ips,
        uris: old.uris.clone(),
        usage: if old.kind == Kind::Client {
            Usage::Client
        } else {
            Usage::Server
        },
    };
    let (cert, chain) = sign_leaf(
        &signer,
        &public_key,
        &spec,
        leaf_validity(&signer, now, a.days)?,
    )?;
    let entry = entry_for(&a.name, old.kind, &cert, now)?;
    if let Some(e) = ca.index.by_serial_mut(&old.serial) {
        e.status = Status::Superseded;
    }
    if let (true, Some(key)) = (a.rekey, &key) {
        write_key(&ca, &key_file, key, None)?;
    }
    write_chain(&ca, &format!("{}.pem", a.name), &chain)?;
    ca.index.certs.push(entry.clone());
    ca.save()?;
    let key_file = match (a.rekey, &key) {
        (true, _) => KeyFile::New,
        (false, Some(_)) => KeyFile::Kept,
        (false, None) => KeyFile::Elsewhere,
    };
    print_issued("renewed", &ca, &entry, &cert, now, key_file)?;
    println!(
        "  the old certificate (serial {}) stays valid until {} unless revoked",
        old.serial,
        old.not_after.get(..10).unwrap_or("")
    );
    Ok(())
}

/// The Ed25519 public key of NAME's current certificate (DIR/NAME.pem),
/// which must be the one the index names (`serial`).
fn current_public_key(
    ca: &CaDir,
    name: &str,
    serial: &str,
    now: UnixTime,
) -> Result<[u8; 32], CliError> {
    let file = format!("{name}.pem");
    let hint = "renew with --rekey to make a new key here, or have the host make a new \
                request (sc-ca request) and issue it with --csr --force";
    let cert = ca
        .read_cert(&file)
        .map_err(|e| CliError::new(format!("no key to keep: {e}")).hint(hint))?;
    let info = cert_info(&cert, now)?;
    if !info.serial_hex.eq_ignore_ascii_case(serial) {
        return Err(CliError::new(format!(
            "{} is not the current certificate of '{name}' (serial {}, the index says {serial})",
            ca.path(&file).display(),
            info.serial_hex
        ))
        .hint(hint));
    }
    info.public_key.ok_or_else(|| {
        CliError::new(format!(
            "{} holds a {} key, not Ed25519",
            ca.path(&file).display(),
            info.key_type
        ))
        .hint(hint)
    })
}

fn parse_serial(s: &str) -> Result<String, CliError> {
    let clean: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if clean.is_empty() || !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::usage(format!("invalid serial '{s}'"))
            .hint("give it in hex, as sc-ca list shows it"));
    }
    Ok(clean)
}

fn revoke(a: RevokeArgs) -> Result<(), CliError> {
    let mut ca = CaDir::open(&a.dir)?;
    let serial = match (&a.serial, &a.cert) {
        (Some(s), _) => parse_serial(s)?,
        (None, Some(path)) => {
            let certs = sc_pki::certs_from_pem(&read_text(path)?)
                .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
            let leaf = certs
                .first()
                .ok_or_else(|| CliError::new(format!("{} holds no certificate", path.display())))?;
            hex(&sc_pki::cert_serial(leaf)?)
        }
        (None, None) => return Err(CliError::usage("give --serial or --cert")),
    };
    let now = time::now();
    let entry = ca.index.by_serial_mut(&serial).ok_or_else(|| {
        CliError::new(format!(
            "this CA has not issued a certificate with serial {serial}"
        ))
        .hint(format!("see sc-ca list --dir {}", a.dir.display()))
    })?;
    if entry.kind == Kind::Intermediate {
        return Err(CliError::new(
            "revoking the intermediate needs the root to sign a CRL, which sc-ca does not do yet",
        )
        .hint("create a new CA (sc-ca init) and reissue its certificates"));
    }
    if entry.status == Status::Revoked {
        return Err(CliError::new(format!(
            "certificate {serial} ('{}') was already revoked on {}",
            entry.name,
            entry
                .revoked_at
                .as_deref()
                .and_then(|t| t.get(..10))
                .unwrap_or("?")
        )));
    }
    entry.status = Status::Revoked;
    entry.revoked_at = Some(rfc3339(now));
    entry.reason = a.reason.map(|r| r.to_string());
    let name = entry.name.clone();
    let pass = Passphrase::new(a.pass.passphrase_file);
    let (path, number) = write_crl(&mut ca, &pass, now, a.crl_days)?;
    ca.save()?;
    println!(
        "revoked '{name}' (serial {serial}){}\npublished CRL #{number} to {} (valid {} days): give it to servers with --crl",
        a.reason.map(|r| format!(", reason {r}")).unwrap_or_default(),
        path.display(),
        a.crl_days
    );
    Ok(())
}

/// Signs a CRL of every revoked certificate and writes DIR/crl.pem. The
/// caller saves the index (which holds the new CRL number).
fn write_crl(
    ca: &mut CaDir,
    pass: &Passphrase,
    now: UnixTime,
    days: u32,
) -> Result<(std::path::PathBuf, u64), CliError> {
    let signer = ca.signer(pass, now)?;
    let mut revoked = Vec::new();
    for e in ca
        .index
        .certs
        .iter()
        .filter(|e| e.status == Status::Revoked && e.kind != Kind::Intermediate)
    {
        let serial = (0..e.serial.len())
            .step_by(2)
            .map(|i| {
                e.serial
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| {
                CliError::new(format!("the index has an invalid serial '{}'", e.serial))
            })?;
        let revoked_at = e
            .revoked_at
            .as_deref()
            .and_then(time::parse_rfc3339)
            .unwrap_or(now);
        let reason = e
            .reason
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| {
                CliError::new(format!(
                    "the index has an invalid revocation reason for serial {}",
                    e.serial
                ))
            })?;
        revoked.push(RevokedEntry {
            serial,
            revoked_at,
            reason,
        });
    }
    let number = ca.index.crl_number + 1;
    let next = unix(now.as_secs() + u64::from(days) * DAY);
    let issuer = Issuer {
        cert: &signer.cert,
        key: &signer.key,
    };
    let crl = sc_pki::issue_crl(&issuer, &revoked, now, next, number)?;
    let path = ca.path(CRL);
    write_atomic(&path, sc_pki::crl_to_pem(&crl)?.as_bytes(), PUBLIC_MODE)?;
    ca.index.crl_number = number;
    Ok((path, number))
}

fn crl(a: CrlArgs) -> Result<(), CliError> {
    let mut ca = CaDir::open(&a.dir)?;
    let now = time::now();
    let pass = Passphrase::new(a.pass.passphrase_file);
    let (path, number) = write_crl(&mut ca, &pass, now, a.days)?;
    ca.save()?;
    let revoked = ca
        .index
        .certs
        .iter()
        .filter(|e| e.status == Status::Revoked)
        .count();
    println!(
        "published CRL #{number} to {}: {revoked} revoked certificate{}, next update due {}",
        path.display(),
        if revoked == 1 { "" } else { "s" },
        minute(unix(now.as_secs() + u64::from(a.days) * DAY))
    );
    Ok(())
}

fn list(dir: &Path) -> Result<(), CliError> {
    let ca = CaDir::open(dir)?;
    let now = time::now();
    let signer = if ca.index.intermediate {
        "an intermediate signs"
    } else {
        "the root signs"
    };
    let mut out = format!(
        "CA \"{}\" in {} ({signer}; last CRL #{})\n",
        ca.index.name,
        dir.display(),
        ca.index.crl_number
    );
    let _ = writeln!(
        out,
        "{:<32}  {:<20}  {:<12}  {:<10}  STATUS",
        "SERIAL", "NAME", "KIND", "EXPIRES"
    );
    for e in &ca.index.certs {
        let expired = e.not_after().is_some_and(|t| t.as_secs() < now.as_secs());
        let status = match (e.status, expired) {
            (Status::Revoked, _) => format!(
                "revoked {}",
                e.revoked_at
                    .as_deref()
                    .and_then(|t| t.get(..10))
                    .unwrap_or("")
            ),
            (_, true) => "expired".to_owned(),
            (Status::Superseded, false) => "superseded".to_owned(),
            (Status::Valid, false) => "valid".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<32}  {:<20}  {:<12}  {:<10}  {status}",
            e.serial,
            e.name,
            e.kind.as_str(),
            e.not_after.get(..10).unwrap_or("?")
        );
    }
    if ca.index.certs.is_empty() {
        let _ = writeln!(out, "(nothing issued yet)");
    }
    print!("{out}");
    Ok(())
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn inspect(file: &Path) -> Result<(), CliError> {
    let text = read_text(file)?;
    let now = time::now();
    let contents = sc_pki::inspect_pem(&text, now)
        .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
    let mut out = String::new();
    match contents {
        PemContents::Certificates(certs) => {
            let n = certs.len();
            for (i, c) in certs.iter().enumerate() {
                let role = match (i, c.is_ca) {
                    (0, false) => "leaf",
                    (_, true) if c.subject == c.issuer => "root CA",
                    (_, true) => "CA",
                    _ => "certificate",
                };
                let _ = writeln!(out, "certificate {} of {n} ({role})", i + 1);
                let _ = writeln!(out, "  subject      {}", c.subject);
                let _ = writeln!(out, "  issuer       {}", c.issuer);
                let _ = writeln!(out, "  serial       {}", c.serial_hex);
                let _ = writeln!(out, "  names        {}", names(c));
                let ekus = if c.ekus.is_empty() {
                    "(none)".to_owned()
                } else {
                    c.ekus.join(", ")
                };
                let _ = writeln!(out, "  purposes     {ekus}");
                if c.is_ca {
                    let limit = c
                        .path_len
                        .map(|p| format!(", path length {p}"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "  CA           yes{limit}");
                }
                let _ = writeln!(
                    out,
                    "  valid        {} to {} ({})",
                    minute(c.not_before),
                    minute(c.not_after),
                    expiry(c.not_after, now)
                );
                let pin = c.pin.map(|p| format!(", pin {p}")).unwrap_or_default();
                let _ = writeln!(out, "  key          {}{pin}", c.key_type);
                let _ = writeln!(out, "  fingerprint  SHA-256 {}", colon_hex(&c.fingerprint));
            }
        }
        PemContents::Crl(c) => {
            let _ = writeln!(
                out,
                "CRL #{}",
                c.number
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into())
            );
            let _ = writeln!(out, "  issuer       {}", c.issuer);
            let _ = writeln!(out, "  this update  {}", minute(c.this_update));
            match c.next_update {
                Some(t) if t.as_secs() < now.as_secs() => {
                    let _ = writeln!(
                        out,
                        "  next update  {} (overdue: publish a new CRL)",
                        minute(t)
                    );
                }
                Some(t) => {
                    let _ = writeln!(out, "  next update  {}", minute(t));
                }
                None => {}
            }
            let _ = writeln!(out, "  revoked      {}", c.revoked.len());
            for r in &c.revoked {
                let reason = r.reason.map(|x| format!(", {x}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {} on {}{reason}",
                    hex(&r.serial),
                    minute(r.revoked_at)
                );
            }
        }
        PemContents::Key(k) => {
            let _ = writeln!(out, "private key");
            let _ = writeln!(out, "  type         {}", k.key_type);
            let _ = writeln!(
                out,
                "  encrypted    {}",
                if k.encrypted { "yes" } else { "no" }
            );
            if let Some(p) = k.pin {
                let _ = writeln!(out, "  pin          {p}");
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// The leaf's key must match one of `pins` (if any are given).
fn check_pins(pins: &[sc_pki::KeyPin], leaf: &CertificateDer<'_>) -> Result<(), CertError> {
    if pins.is_empty() {
        return Ok(());
    }
    let pin = sc_pki::KeyPin::of_cert(leaf).map_err(|e| CertError::Malformed(e.to_string()))?;
    if pins.contains(&pin) {
        Ok(())
    } else {
        Err(CertError::PinMismatch { presented: pin })
    }
}

fn verify(a: VerifyArgs) -> Result<(), CliError> {
    let now = time::now();
    let anchors = TrustAnchors::from_pem(&read_text(&a.ca)?)
        .map_err(|e| CliError::new(format!("{}: {e}", a.ca.display())))?;
    let crls = match &a.crl {
        Some(p) => sc_pki::crls_from_pem(&read_text(p)?)
            .map_err(|e| CliError::new(format!("{}: {e}", p.display())))?,
        None => Vec::new(),
    };
    let chain = sc_pki::certs_from_pem(&read_text(&a.cert)?)
        .map_err(|e| CliError::new(format!("{}: {e}", a.cert.display())))?;
    if chain.is_empty() {
        return Err(CliError::new(format!(
            "{} holds no certificate",
            a.cert.display()
        )));
    }
    let result: Result<String, CertError> = match a.purpose {
        Purpose::Server => {
            let v = WebPkiServerVerifier::new(anchors)
                .with_crls(crls)?
                .with_pins(a.pins.clone());
            let (name, note) = match &a.name {
                Some(n) => (n.clone(), ""),
                None => {
                    let info = cert_info(&chain[0], now)?;
                    let first = info
                        .dns_names
                        .first()
                        .cloned()
                        .or_else(|| info.ip_addrs.first().map(|i| i.to_string()));
                    (
                        first.unwrap_or_default(),
                        " (name not checked: give --name to check the name clients dial)",
                    )
                }
            };
            let server_name = ServerName::try_from(name.clone()).map_err(|_| {
                CliError::usage(format!("'{name}' is not a DNS name or IP address"))
            })?;
            v.verify_server(&chain, &server_name, now)
                .map(|_| note.to_owned())
        }
        Purpose::Client => {
            // The checks a server's allow-list makes: a name the certificate carries.
            let policy = ClientPolicy {
                allow_names: a.name.iter().cloned().collect(),
                allow_pins: Vec::new(),
            };
            let v = WebPkiClientVerifier::new(anchors)
                .with_crls(crls)?
                .with_policy(policy);
            v.verify_client(&chain, now)
                .and_then(|_| check_pins(&a.pins, &chain[0]))
                .map(|()| String::new())
        }
    };
    match result {
        Ok(note) => {
            println!("OK{note}");
            Ok(())
        }
        Err(e) => Err(CliError::new(e.to_string())),
    }
}
