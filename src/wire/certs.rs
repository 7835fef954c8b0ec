//! Certificates: the cluster CA, node and client certificates (rcgen), as PEM files.
//!
//! Every node certificate names [`NODE_SERVER_NAME`] among its subject alternative names, so a
//! client verifies any node of the cluster by that name plus the cluster CA, whatever address it
//! dialled. Node certificates are valid for both server and client authentication (nodes call
//! each other); client certificates only for client authentication.
//!
//! A client certificate carries its holder's [`Role`] in its subject, as an organizational
//! unit `kvctl-role:<role>` ([`ROLE_UNIT_PREFIX`], read back by [`role_of`]).
//!
//! Every certificate has a [`Validity`]: by default the CA for [`CA_LIFETIME_DAYS`], node and
//! client certificates for [`CERT_LIFETIME_DAYS`] (CockroachDB's defaults). A peer whose
//! certificate has expired, or is not valid yet, is refused at the handshake.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;

use crate::wire::role::Role;

/// The DNS name every node certificate carries and every client verifies.
pub const NODE_SERVER_NAME: &str = "kvctl-node";
/// A node certificate's common name is this followed by the node's id: the CA vouches for the
/// id, so gossip can hold a node to speaking for itself only.
pub const NODE_COMMON_NAME_PREFIX: &str = "kvctl node ";
/// The longest node id (a rule of the model: actor names hold node ids).
pub use crate::model::actor_name::NODE_ID_BYTES_MAX;
const CA_COMMON_NAME: &str = "kvctl cluster CA";
/// A client certificate's role is an organizational unit of its subject: this followed by the
/// role's name (`kvctl-role:app`). A subject attribute rather than a private extension: the CA
/// signs it all the same, `openssl x509 -noout -subject` shows it to an operator, rcgen writes
/// it and x509-parser reads it without an object identifier of our own, and a certificate
/// without it (made before roles) is still an ordinary one.
pub const ROLE_UNIT_PREFIX: &str = "kvctl-role:";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; refusing to overwrite it (remove it first)", path.display())]
    Exists { path: PathBuf },
    #[error("bad node id: {0}")]
    BadNodeId(String),
    #[error("{}: not a certificate ({reason})", path.display())]
    Parse { path: PathBuf, reason: String },
}

/// Checks a node id: 1 to [`NODE_ID_BYTES_MAX`] bytes of letters, digits, `-`, `_` and `.`.
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > NODE_ID_BYTES_MAX {
        return Err(format!(
            "{id:?} must be 1 to {NODE_ID_BYTES_MAX} bytes long"
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{id:?} holds {c:?}; use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// What a certificate (DER) says about its holder, parsed with x509-parser: the node id if it
/// is a node certificate (the serverAuth extended key usage, which the CA gives only to nodes,
/// and the common name `kvctl node <id>`), `None` for a client certificate.
pub fn node_id_of(der: &[u8]) -> Result<Option<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let server_auth = cert
        .extended_key_usage()
        .map_err(|e| e.to_string())?
        .is_some_and(|eku| eku.value.server_auth);
    if !server_auth {
        return Ok(None);
    }
    let id = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .and_then(|cn| cn.strip_prefix(NODE_COMMON_NAME_PREFIX))
        .filter(|id| check_node_id(id).is_ok());
    Ok(id.map(str::to_string))
}

/// The role a client certificate (DER) gives its holder, from its `kvctl-role:<role>`
/// organizational units. A certificate without one was made before roles and reads as
/// [`Role::Admin`], so that it keeps doing what it did. A role this build does not know (from a
/// newer release) reads as [`Role::App`], the least: an unknown role is never trusted with
/// more; so does a certificate that names several roles, as the least of them.
pub fn role_of(der: &[u8]) -> Result<Role, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let roles = cert
        .subject()
        .iter_organizational_unit()
        .filter_map(|unit| unit.as_str().ok())
        .filter_map(|unit| unit.strip_prefix(ROLE_UNIT_PREFIX))
        .map(|name| name.parse::<Role>().unwrap_or(Role::App));
    Ok(roles.min().unwrap_or(Role::Admin))
}

/// The node id the node certificate `<dir>/<stem>.pem` was made for.
pub fn read_node_id(dir: &Path, stem: &str) -> Result<String, CertError> {
    let (path, _) = paths(dir, stem);
    let pem = read_cert(dir, stem)?;
    let parse = |reason: String| CertError::Parse {
        path: path.clone(),
        reason,
    };
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| parse(e.to_string()))?;
    node_id_of(der.as_ref()).map_err(parse)?.ok_or_else(|| {
        parse(format!(
            "it is not a kvctl node certificate (serverAuth usage and the common name \
             '{NODE_COMMON_NAME_PREFIX}<id>'); make one with `kvctl cert node`"
        ))
    })
}

/// Default lifetime of a cluster CA: ten years.
pub const CA_LIFETIME_DAYS: u32 = 3650;
/// Default lifetime of node and client certificates: five years.
pub const CERT_LIFETIME_DAYS: u32 = 1825;
/// Certificates are valid from this long before they are made, so that a peer whose clock is a
/// little behind accepts them at once.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(3600);

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Valid from now (less an hour, for clocks a little behind) for `days` days.
    pub fn days(days: u32) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - CLOCK_SKEW_ALLOWANCE,
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }

    fn apply(&self, params: &mut CertificateParams) {
        params.not_before = self.not_before.into();
        params.not_after = self.not_after.into();
    }
}

/// A certificate and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// The CA's parameters. They are rebuilt the same way to sign with a stored CA key, so that
/// issued certificates name the CA as their issuer.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A new cluster CA, valid for `validity`.
pub fn new_ca(validity: Validity) -> Result<Pem, CertError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params();
    validity.apply(&mut params);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Issues a certificate for `common_name` (and the subject alternative `names`), signed by
/// `ca`: for a node (`server`) or a client; a client's `role` goes into its subject.
fn issue(
    ca: &Pem,
    common_name: &str,
    names: &[String],
    server: bool,
    role: Option<Role>,
    validity: Validity,
) -> Result<Pem, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params = CertificateParams::new(names.to_vec())?;
    validity.apply(&mut params);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(role) = role {
        dn.push(
            DnType::OrganizationalUnitName,
            format!("{ROLE_UNIT_PREFIX}{role}"),
        );
    }
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = if server {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A node certificate for `node_id`, valid for [`NODE_SERVER_NAME`], `localhost`, 127.0.0.1
/// and the extra host names or addresses given, during `validity`.
pub fn new_node(
    ca: &Pem,
    node_id: &str,
    hosts: &[String],
    validity: Validity,
) -> Result<Pem, CertError> {
    let mut names = vec![
        NODE_SERVER_NAME.to_string(),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    names.extend(hosts.iter().cloned());
    names.dedup();
    check_node_id(node_id).map_err(CertError::BadNodeId)?;
    issue(
        ca,
        &format!("{NODE_COMMON_NAME_PREFIX}{node_id}"),
        &names,
        true,
        None,
        validity,
    )
}

/// A client certificate for `role`, valid during `validity`.
pub fn new_client(ca: &Pem, name: &str, role: Role, validity: Validity) -> Result<Pem, CertError> {
    let common_name = format!("kvctl client {name}");
    issue(ca, &common_name, &[], false, Some(role), validity)
}

/// Where a certificate set lives in a directory: `<stem>.pem` and `<stem>.key`.
pub fn paths(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    )
}

/// Writes `pem` as `<dir>/<stem>.pem` and `<dir>/<stem>.key` (the key readable by the owner
/// only). Refuses to overwrite existing files.
pub fn write(dir: &Path, stem: &str, pem: &Pem) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        action: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let (cert_path, key_path) = paths(dir, stem);
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(CertError::Exists { path: path.clone() });
        }
    }
    write_file(&cert_path, pem.cert.as_bytes(), 0o644)?;
    write_file(&key_path, pem.key.as_bytes(), 0o600)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CertError::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)
}

/// Reads only the certificate `<dir>/<stem>.pem` (a CA certificate, without its key).
pub fn read_cert(dir: &Path, stem: &str) -> Result<String, CertError> {
    let (cert_path, _) = paths(dir, stem);
    fs::read_to_string(&cert_path).map_err(|source| CertError::Io {
        action: "reading",
        path: cert_path,
        source,
    })
}

/// Reads `<dir>/<stem>.pem` and `<dir>/<stem>.key`.
pub fn read(dir: &Path, stem: &str) -> Result<Pem, CertError> {
    let (cert_path, key_path) = paths(dir, stem);
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| CertError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })
    };
    Ok(Pem {
        cert: read(&cert_path)?,
        key: read(&key_path)?,
    })
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;

    use super::*;

    fn must_der(pem: &Pem) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.cert.as_bytes())
            .expect("rcgen writes a PEM certificate")
            .to_vec()
    }

    /// A client certificate reads back with the role it was made for, and is no node's.
    #[test]
    fn client_certificates_carry_their_role() {
        let ca = new_ca(Validity::days(1)).unwrap();
        for role in Role::ALL {
            let der = must_der(&new_client(&ca, "c", role, Validity::days(1)).unwrap());
            assert_eq!(role_of(&der), Ok(role));
            assert_eq!(node_id_of(&der), Ok(None));
        }
    }

    /// A client certificate made before roles (no role in its subject) reads as admin; one
    /// naming a role this build does not know reads as app, the least.
    #[test]
    fn certificates_without_a_known_role() {
        let ca = new_ca(Validity::days(1)).unwrap();
        let old = issue(&ca, "kvctl client cli", &[], false, None, Validity::days(1)).unwrap();
        assert_eq!(role_of(&must_der(&old)), Ok(Role::Admin));

        let mut params = CertificateParams::new(Vec::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kvctl client future");
        dn.push(
            DnType::OrganizationalUnitName,
            format!("{ROLE_UNIT_PREFIX}operator"),
        );
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        let future = params.self_signed(&key).unwrap();
        assert_eq!(role_of(future.der()), Ok(Role::App));
    }
}
