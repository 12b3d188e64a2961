//! TLS for registry connections: rustls with the ring provider (no aws-lc build), the
//! system's CA bundle, and per-registry CAs from `/etc/containers/certs.d/HOST:PORT/*.crt`
//! and `/etc/docker/certs.d/HOST:PORT/*.crt` (client certificates, `*.cert` and `*.key`,
//! are not supported yet). `--tls-verify=false` turns verification off entirely.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tracing::{debug, warn};

/// The system CA bundles tried, first found wins (Debian's is the first).
const SYSTEM_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

/// Where per-registry CA directories are looked for; tests point this elsewhere.
#[derive(Debug, Clone)]
pub struct CertDirs(pub Vec<PathBuf>);

impl Default for CertDirs {
    fn default() -> Self {
        let mut dirs = Vec::new();
        if crate::host::rootless() {
            if let Some(config) = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            {
                dirs.push(config.join("containers/certs.d"));
            }
        }
        dirs.push(PathBuf::from("/etc/containers/certs.d"));
        dirs.push(PathBuf::from("/etc/docker/certs.d"));
        Self(dirs)
    }
}

/// A rustls client configuration for `registry` (`host[:port]`).
pub fn client_config(
    registry: &str,
    verify: bool,
    cert_dirs: &CertDirs,
    extra_ca: &[PathBuf],
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let mut config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        for bundle in SYSTEM_BUNDLES {
            if add_pem(&mut roots, Path::new(bundle)) > 0 {
                break;
            }
        }
        for dir in &cert_dirs.0 {
            let dir = dir.join(registry);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "crt") {
                    let added = add_pem(&mut roots, &path);
                    debug!(?path, added, "registry CA");
                }
            }
        }
        for path in extra_ca {
            add_pem(&mut roots, path);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

fn add_pem(roots: &mut rustls::RootCertStore, path: &Path) -> usize {
    let Ok(iter) = CertificateDer::pem_file_iter(path) else { return 0 };
    let mut added = 0;
    for cert in iter.flatten() {
        if roots.add(cert).is_ok() {
            added += 1;
        } else {
            warn!(?path, "skipping an unusable CA certificate");
        }
    }
    added
}

/// `--tls-verify=false`: accepts any certificate, still checking handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
