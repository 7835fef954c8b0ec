//! Mutual TLS for QUIC: rustls configurations that accept only peers whose certificate is
//! signed by the cluster CA, for node endpoints and for clients.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::wire::certs::{self, Pem};
use crate::wire::role::Role;

/// The ALPN protocol both ends must speak.
pub const ALPN: &[u8] = b"kvctl/1";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("bad PEM in {what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
    #[error(
        "{}: peers would refuse this certificate ({reason}); make a new one with `kvctl cert` \
         (for a local cluster: `kvctl cluster up` with a new home)",
        path.display()
    )]
    Unusable { path: PathBuf, reason: String },
}

/// A party's certificate and key, and the CA it trusts.
pub struct Identity {
    cert: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
        }
    }
}

impl Identity {
    pub fn new(own: &Pem, ca_cert_pem: &str) -> Result<Identity, TlsError> {
        let pem_err = |what| {
            move |e: rustls::pki_types::pem::Error| TlsError::Pem {
                what,
                reason: e.to_string(),
            }
        };
        let cert = CertificateDer::pem_slice_iter(own.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("certificate"))?;
        if cert.is_empty() {
            return Err(TlsError::Pem {
                what: "certificate",
                reason: "no certificate found".into(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_slice(own.key.as_bytes()).map_err(pem_err("private key"))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_cert_pem.as_bytes()) {
            roots.add(ca.map_err(pem_err("CA certificate"))?)?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem {
                what: "CA certificate",
                reason: "no certificate found".into(),
            });
        }
        Ok(Identity {
            cert,
            key,
            roots: Arc::new(roots),
        })
    }

    /// Checks the own certificate (read from `path`) as a peer would now: signed by the trusted
    /// CA, within its validity, fit for client authentication (nodes call each other too). A
    /// node or client whose certificate has expired says so at once, instead of failing every
    /// handshake.
    pub fn check_valid_now(&self, path: &Path) -> Result<(), TlsError> {
        self.client_verifier()?
            .verify_client_cert(&self.cert[0], &self.cert[1..], UnixTime::now())
            .map(|_| ())
            .map_err(|e| TlsError::Unusable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Accepts client certificates signed by the trusted CA, valid now, fit for client
    /// authentication: how a node checks whoever connects to it.
    fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        Ok(WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider()).build()?)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Who is at the other end of an accepted connection, as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A node certificate: the id it was made for.
    Node { id: String },
    /// A client certificate (or anything that is not a node's), and the role it gives.
    Client { role: Role },
}

impl Peer {
    /// The least a peer can be: a client of the least role. What a certificate that cannot be
    /// read is taken for.
    const LEAST: Peer = Peer::Client { role: Role::App };

    pub fn node_id(&self) -> Option<&str> {
        match self {
            Peer::Node { id } => Some(id),
            Peer::Client { .. } => None,
        }
    }
}

/// The peer of a connection. The handshake already proved the certificate comes from the
/// cluster CA; its parsed extended key usage and common name say whether it is a node's, and
/// which ([`certs::node_id_of`]); a client's subject says its role ([`certs::role_of`]).
pub fn peer(conn: &quinn::Connection) -> Peer {
    let Some(identity) = conn.peer_identity() else {
        return Peer::LEAST;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return Peer::LEAST;
    };
    let Some(leaf) = chain.first() else {
        return Peer::LEAST;
    };
    match certs::node_id_of(leaf.as_ref()) {
        Ok(Some(id)) => Peer::Node { id },
        Ok(None) => match certs::role_of(leaf.as_ref()) {
            Ok(role) => Peer::Client { role },
            Err(_) => Peer::LEAST,
        },
        Err(_) => Peer::LEAST,
    }
}

/// A node's server side: presents its certificate, requires a client certificate from the CA.
pub fn server_config(
    id: &Identity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(id.client_verifier()?)
        .with_single_cert(id.cert.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// The client side (of clients, and of nodes calling nodes): presents its certificate, trusts
/// only the cluster CA.
pub fn client_config(
    id: &Identity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(id.roots.clone())
        .with_client_auth_cert(id.cert.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}
