//! `kolla certs`: a private certificate authority, a server certificate
//! per node for its engine's `--tlsverify`, and a client certificate that
//! kolla presents, so an operator turns TLS on without openssl recipes.
//!
//! The layout under the certificate folder:
//! - `ca.pem`, `ca-key.pem`: the authority (made once, kept after);
//! - `cert.pem`, `key.pem`: kolla's client certificate (what the
//!   inventory's `tls:` names, with `ca.pem`);
//! - `nodes/<node>/{ca.pem, server-cert.pem, server-key.pem}`: what each
//!   node's dockerd needs.
//!
//! Every file is written 0600 and every folder 0700: they are keys or sit
//! beside them. Existing files are kept unless renewal is asked for; a node
//! certificate whose names no longer match the node's is reissued.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Certificate { what: String, message: String },
    #[error(
        "{path} exists but {other} does not: restore it, or move both away to make a new authority (every node and client certificate then changes)"
    )]
    HalfAuthority { path: PathBuf, other: PathBuf },
}

/// A node to certify, and the names its engine is reached by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNames {
    pub node: String,
    /// Host names and addresses (the engine's URL host, the node's
    /// address, its name).
    pub hosts: Vec<String>,
}

/// What `issue` did, file by file.
#[derive(Debug, Default)]
pub struct Issued {
    pub written: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

/// The folder's files for one node.
pub fn node_dir(dir: &Path, node: &str) -> PathBuf {
    dir.join("nodes").join(node)
}

/// Make what is missing (or everything but the authority, with `renew`)
/// under `dir`, valid for `days`.
pub fn issue(
    dir: &Path,
    nodes: &[NodeNames],
    days: u32,
    renew: bool,
) -> Result<Issued, CertsError> {
    let mut issued = Issued::default();
    make_dir(dir)?;
    let (issuer, ca_pem) = authority(dir, days, &mut issued)?;

    let client = (dir.join("cert.pem"), dir.join("key.pem"));
    if renew || !client.0.exists() || !client.1.exists() {
        let mut params = leaf_params("kolla client", &[], days)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        write_leaf(&params, &issuer, &client, &mut issued)?;
    } else {
        issued.kept.extend([client.0, client.1]);
    }

    for node in nodes {
        let folder = node_dir(dir, &node.node);
        make_dir(&folder)?;
        write_file(&folder.join("ca.pem"), ca_pem.as_bytes(), &mut issued)?;
        let files = (
            folder.join("server-cert.pem"),
            folder.join("server-key.pem"),
        );
        let names_file = folder.join("names");
        let names = node.hosts.join("\n");
        let same_names = std::fs::read_to_string(&names_file).is_ok_and(|n| n == names);
        if !renew && same_names && files.0.exists() && files.1.exists() {
            issued.kept.extend([files.0, files.1]);
            continue;
        }
        let mut params = leaf_params(&node.node, &node.hosts, days)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        write_leaf(&params, &issuer, &files, &mut issued)?;
        write_file(&names_file, names.as_bytes(), &mut issued)?;
    }
    Ok(issued)
}

/// The authority in `dir`, made if absent, and its certificate's PEM.
fn authority(
    dir: &Path,
    days: u32,
    issued: &mut Issued,
) -> Result<(Issuer<'static, KeyPair>, String), CertsError> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca-key.pem");
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| bad(&key_path, e))?;
            let issuer = Issuer::from_ca_cert_pem(&pem, key).map_err(|e| bad(&cert_path, e))?;
            issued.kept.extend([cert_path, key_path]);
            Ok((issuer, pem))
        }
        (true, false) => Err(CertsError::HalfAuthority {
            path: cert_path,
            other: key_path,
        }),
        (false, true) => Err(CertsError::HalfAuthority {
            path: key_path,
            other: cert_path,
        }),
        (false, false) => {
            let mut params = leaf_params("kolla CA", &[], days)?;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().map_err(|e| bad(&key_path, e))?;
            let cert = params.self_signed(&key).map_err(|e| bad(&cert_path, e))?;
            let pem = cert.pem();
            write_file(&key_path, key.serialize_pem().as_bytes(), issued)?;
            write_file(&cert_path, pem.as_bytes(), issued)?;
            Ok((Issuer::new(params, key), pem))
        }
    }
}

/// Parameters with a common name, the given host names and addresses, and
/// a validity from now for `days`.
fn leaf_params(
    common_name: &str,
    hosts: &[String],
    days: u32,
) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "kolla");
    params.distinguished_name = name;
    params.subject_alt_names = hosts
        .iter()
        .map(|host| san(host))
        .collect::<Result<_, _>>()?;
    let now = time::OffsetDateTime::now_utc();
    // A little slack for nodes whose clocks run behind.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    Ok(params)
}

fn san(host: &str) -> Result<SanType, CertsError> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(address));
    }
    let name = host.try_into().map_err(|e| CertsError::Certificate {
        what: format!("host name {host:?}"),
        message: format!("{e}"),
    })?;
    Ok(SanType::DnsName(name))
}

/// A certificate and a fresh key for it, signed by `issuer`.
fn write_leaf(
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    (cert_path, key_path): &(PathBuf, PathBuf),
    issued: &mut Issued,
) -> Result<(), CertsError> {
    let key = KeyPair::generate().map_err(|e| bad(key_path, e))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| bad(cert_path, e))?;
    write_file(key_path, key.serialize_pem().as_bytes(), issued)?;
    write_file(cert_path, cert.pem().as_bytes(), issued)
}

fn bad(path: &Path, error: rcgen::Error) -> CertsError {
    CertsError::Certificate {
        what: path.display().to_string(),
        message: error.to_string(),
    }
}

fn read(path: &Path) -> Result<String, CertsError> {
    std::fs::read_to_string(path).map_err(|source| CertsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn make_dir(dir: &Path) -> Result<(), CertsError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| CertsError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Write `bytes` to `path` (0600 from the start, replaced whole).
fn write_file(path: &Path, bytes: &[u8], issued: &mut Issued) -> Result<(), CertsError> {
    crate::files::write_private(path, bytes).map_err(|source| CertsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    issued.written.push(path.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn node(name: &str, hosts: &[&str]) -> NodeNames {
        NodeNames {
            node: name.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn issues_an_authority_once_and_node_certificates_for_their_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = [
            node("n1", &["10.0.0.11", "n1"]),
            node("n2", &["n2.example"]),
        ];
        let first = issue(dir.path(), &nodes, 30, false).expect("issue");
        for file in &first.written {
            let mode = std::fs::metadata(file).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        let ca = std::fs::read_to_string(dir.path().join("ca.pem")).expect("ca");
        let server = std::fs::read_to_string(node_dir(dir.path(), "n1").join("server-cert.pem"))
            .expect("server cert");
        let (_, parsed) = x509_parser::pem::parse_x509_pem(server.as_bytes()).expect("pem");
        let cert = parsed.parse_x509().expect("x509");
        let sans = cert
            .subject_alternative_name()
            .expect("san extension")
            .expect("sans")
            .value
            .general_names
            .iter()
            .map(|n| format!("{n}"))
            .collect::<Vec<_>>();
        assert!(
            sans.iter().any(|s| s == "IPAddress(0a:00:00:0b)"),
            "{sans:?}"
        );
        assert!(sans.iter().any(|s| s == "DNSName(n1)"), "{sans:?}");

        // Again: the authority and what matches stay; a node whose names
        // changed gets a new certificate.
        let nodes = [node("n1", &["10.0.0.11", "n1"]), node("n2", &["n2.other"])];
        let second = issue(dir.path(), &nodes, 30, false).expect("issue again");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ca.pem")).expect("ca"),
            ca
        );
        assert!(
            second
                .kept
                .contains(&node_dir(dir.path(), "n1").join("server-cert.pem"))
        );
        assert!(
            second
                .written
                .contains(&node_dir(dir.path(), "n2").join("server-cert.pem"))
        );
    }

    #[test]
    fn half_an_authority_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), "x").expect("write");
        let err = issue(dir.path(), &[], 30, false).unwrap_err().to_string();
        assert!(err.contains("ca-key.pem does not"), "{err}");
    }
}
