//! The TLS client the providers share: rustls on ring, trusting the public web
//! roots and whatever CA certificates the operator adds (a private relay's).

use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::provider::ProviderError;

/// A connector trusting the web roots plus the certificates in `trusted_pem`.
pub(crate) fn connector(trusted_pem: Option<&[u8]>) -> Result<TlsConnector, ProviderError> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in trusted_pem.map(certificates).transpose()?.unwrap_or_default() {
        roots
            .add(cert)
            .map_err(|e| ProviderError::Rejected(format!("TLS: trusted CA: {e}")))?;
    }
    // The build enables one crypto provider (ring), which rustls then uses.
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file; one at least, or the operator named the wrong file.
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
    match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(ProviderError::Rejected(
            "TLS: the trusted CA file holds no PEM certificate".into(),
        )),
    }
}
