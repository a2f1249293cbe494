//! `sc-ca`: run a small Ed25519 certificate authority for Sovereign-Chain.

#![forbid(unsafe_code)]

mod commands;
mod dir;
mod fsutil;
mod pass;
mod time;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run a small Ed25519 certificate authority for Sovereign-Chain.
///
/// A CA lives in one directory: the root certificate to distribute (ca.pem),
/// the CA keys, an index of everything issued, the issued certificates and
/// keys, and the CRL. Everything but the *.key files can be backed up and
/// version-controlled.
///
/// A typical session:
///
///   sc-ca init --dir ca --name "Example CA" --intermediate
///   sc-ca issue server db.internal --dir ca
///   sc-ca issue client app-1 --dir ca
///   sc-ca list --dir ca
///   sc-ca revoke --dir ca --cert ca/app-1.pem --reason key-compromise
///   sc-ca verify --ca ca/ca.pem --crl ca/crl.pem --purpose client ca/app-1.pem
///
/// Keys that never travel: the host makes its key and a request, the CA
/// signs the request (with the names of its own command line), and only
/// public files move:
///
///   db.internal$ sc-ca request db.internal --out tls
///   (copy tls/db.internal.csr to the CA)
///   ca$ sc-ca issue server db.internal --dir ca --csr db.internal.csr
///   (copy ca/db.internal.pem and ca/ca.pem back to the host)
#[derive(Debug, Parser)]
#[command(name = "sc-ca", version, verbatim_doc_comment, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a CA in DIR: a root, and with --intermediate an intermediate
    /// that does the day-to-day signing (the root key can then go offline).
    Init(InitArgs),
    /// Issue a server or client certificate: writes DIR/NAME.pem (the
    /// certificate and its intermediate, ready to present) and DIR/NAME.key;
    /// with --csr FILE, for the key of a request (see `sc-ca request`) and no
    /// key file.
    Issue {
        #[command(subcommand)]
        kind: IssueKind,
    },
    /// On the host that will use the certificate: make its key (DIR/NAME.key,
    /// mode 0600) and a certification request (DIR/NAME.csr) to send to the
    /// CA, which signs it with `sc-ca issue server|client NAME --csr FILE`.
    Request(RequestArgs),
    /// Issue a new certificate for NAME with the same names and key,
    /// replacing DIR/NAME.pem (with --rekey, a new key in DIR/NAME.key). A
    /// key made on its host (`--csr`) stays there: the new certificate is
    /// for the key of DIR/NAME.pem. The old certificate stays valid until
    /// it expires unless you revoke it.
    Renew(RenewArgs),
    /// Revoke a certificate and publish a new CRL (DIR/crl.pem).
    Revoke(RevokeArgs),
    /// Write a new signed CRL to DIR/crl.pem.
    Crl(CrlArgs),
    /// List every certificate the CA issued: serial, name, kind, expiry, status.
    List(DirArg),
    /// Show what a PEM file holds: certificates, a CRL or a key.
    Inspect {
        /// The PEM file.
        file: PathBuf,
    },
    /// Check a certificate chain: prints OK and exits 0, or prints the reason
    /// and exits 1.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct DirArg {
    /// The CA directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct PassArgs {
    /// Read the CA key's passphrase from the first line of FILE (else the
    /// SC_CA_PASSPHRASE environment variable, else a prompt on the terminal).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The directory to create the CA in (created if missing; must be empty).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The CA's name (its certificate's common name).
    #[arg(long, default_value = "Sovereign-Chain CA")]
    name: String,
    /// Also create an intermediate CA that signs certificates and CRLs.
    #[arg(long)]
    intermediate: bool,
    /// Days the root is valid (the intermediate: at most 1825).
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Encrypt the CA keys with a passphrase.
    #[arg(long)]
    encrypt: bool,
    #[command(flatten)]
    pass: PassArgs,
}

#[derive(Debug, Subcommand)]
enum IssueKind {
    /// A server certificate (EKU serverAuth). Without --dns or --ip, NAME is
    /// its DNS name.
    #[command(after_help = ISSUE_SERVER_EXAMPLES)]
    Server {
        /// The certificate's name (file DIR/NAME.pem).
        name: String,
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A DNS name clients will dial (repeatable; `*.example.com` allowed).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// An IP address clients will dial (repeatable).
        #[arg(long = "ip", value_name = "IP")]
        ip: Vec<IpAddr>,
        #[command(flatten)]
        common: IssueCommon,
    },
    /// A client certificate (EKU clientAuth), named NAME.
    #[command(after_help = ISSUE_CLIENT_EXAMPLES)]
    Client {
        /// The client's name (file DIR/NAME.pem).
        name: String,
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A URI naming the client, e.g. spiffe://example/app-1 (repeatable).
        #[arg(long = "uri", value_name = "URI")]
        uri: Vec<String>,
        #[command(flatten)]
        common: IssueCommon,
    },
}

#[derive(Debug, Args)]
struct IssueCommon {
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Replace a current certificate of the same name.
    #[arg(long)]
    force: bool,
    /// Certify the key of this PKCS#10 request (PEM or DER; made by `sc-ca
    /// request` or `openssl req -new -key ed25519.key`) instead of making a
    /// key: its signature must verify and its key be Ed25519. The names are
    /// the ones of this command line; names in the request are ignored.
    #[arg(long, value_name = "FILE")]
    csr: Option<PathBuf>,
    #[command(flatten)]
    pass: PassArgs,
}

const ISSUE_SERVER_EXAMPLES: &str = "\
Examples:
  sc-ca issue server db.internal --dir ca --ip 10.0.0.7 --dns db.internal
  sc-ca issue server db.internal --dir ca --csr db.internal.csr
      (the key stays on the host that ran: sc-ca request db.internal --out DIR)";

const ISSUE_CLIENT_EXAMPLES: &str = "\
Examples:
  sc-ca issue client app-1 --dir ca --uri spiffe://example/app-1
  sc-ca issue client app-1 --dir ca --csr app-1.csr
      (the key stays on the host that ran: sc-ca request app-1 --out DIR)";

#[derive(Debug, Args)]
#[command(after_help = "\
Example: keys that never travel
  on the host:  sc-ca request db.internal --out /etc/sovereign-chain
                (writes db.internal.key, mode 0600, and db.internal.csr)
  at the CA:    sc-ca issue server db.internal --dir ca --csr db.internal.csr
                (writes ca/db.internal.pem; the names are the CA's)
  on the host:  sc-server --cert db.internal.pem --key db.internal.key --ca ca.pem ...")]
struct RequestArgs {
    /// The name (file names DIR/NAME.key and DIR/NAME.csr; the requested
    /// common name, and the requested DNS name, IP address or URI without
    /// --dns or --ip).
    name: String,
    /// Where to write the key and the request (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A DNS name to ask for (repeatable). The CA decides what it certifies.
    #[arg(long = "dns", value_name = "NAME")]
    dns: Vec<String>,
    /// An IP address to ask for (repeatable).
    #[arg(long = "ip", value_name = "IP")]
    ip: Vec<IpAddr>,
    /// A URI to ask for, e.g. spiffe://example/app-1 (repeatable).
    #[arg(long = "uri", value_name = "URI")]
    uri: Vec<String>,
    /// Encrypt the key with a passphrase (sc-server and sc-client then need
    /// it: see their --help).
    #[arg(long)]
    encrypt: bool,
    /// With --encrypt: read the passphrase from the first line of FILE (else
    /// the SC_CA_PASSPHRASE environment variable, else a prompt on the
    /// terminal).
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RenewArgs {
    /// The name of the certificate to renew.
    name: String,
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Days the new certificate is valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Make a new key too (else the key is kept: DIR/NAME.key, or, for a
    /// key on its host, the key of the current DIR/NAME.pem).
    #[arg(long)]
    rekey: bool,
    #[command(flatten)]
    pass: PassArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["serial", "cert"])))]
struct RevokeArgs {
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The serial number (hex, as `sc-ca list` shows it).
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    /// The certificate file to revoke.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Why: unspecified, key-compromise, ca-compromise, affiliation-changed,
    /// superseded, cessation-of-operation, privilege-withdrawn.
    #[arg(long, value_name = "REASON")]
    reason: Option<sc_pki::RevocationReason>,
    /// Days the new CRL is valid.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    crl_days: u32,
    #[command(flatten)]
    pass: PassArgs,
}

#[derive(Debug, Args)]
struct CrlArgs {
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Days the CRL is valid (publish a new one before then).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    #[command(flatten)]
    pass: PassArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Purpose {
    Server,
    Client,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The trusted CA certificate(s) (a PEM bundle: several roots allowed).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// A CRL to check revocation against.
    #[arg(long, value_name = "FILE")]
    crl: Option<PathBuf>,
    /// What the certificate must be valid for.
    #[arg(long, value_enum, default_value_t = Purpose::Server)]
    purpose: Purpose,
    /// Server: the name clients dial (DNS name or IP). Client: a name the
    /// certificate must carry.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The leaf's key must have this pin (sha256:HEX, as `sc-ca inspect`
    /// shows it; repeatable: any one matches).
    #[arg(long = "pin", value_name = "PIN")]
    pins: Vec<sc_pki::KeyPin>,
    /// The certificate chain to check (leaf first).
    cert: PathBuf,
}

fn main() -> ExitCode {
    // `--generate-to DIR`: man pages and completions (dist/generate.sh).
    if let Some(code) = sovereign_chain::cli::generate::generate_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    sovereign_chain::cli::finish(commands::run(cli.command).map(|()| ExitCode::SUCCESS))
}
