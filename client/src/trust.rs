//! Trust on first use, done once and confirmed: fetch the certificate chain a server
//! presents (without trusting it), show its SHA-256 fingerprint, and pin the confirmed
//! certificate. Every later connection trusts that anchor only ([`crate::ClientBuilder::pin_pem`]).

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// `AB:CD:…` SHA-256 fingerprint of a DER certificate (as `arca serve`, browsers and
/// `openssl x509 -fingerprint -sha256` show it).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Whether two fingerprints are the same (case, `:` and spaces ignored).
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_uppercase();
    let (a, b) = (norm(a), norm(b));
    a.len() == 64 && a == b
}

/// PEM of a DER certificate.
pub fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Accepts any certificate and records nothing: used only to read the chain once, so that
/// its fingerprint can be confirmed before anything is trusted. The handshake signature
/// is still checked, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `(host, port)` of an `https://` URL.
fn host_port(server: &str) -> Result<(String, u16)> {
    let rest = server
        .strip_prefix("https://")
        .ok_or_else(|| Error::Invalid(format!("{server}: only https:// servers present a certificate")))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| Error::Invalid(format!("{server}: bad IPv6 address")))?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| Error::Invalid(format!("{server}: bad port")))?,
        None => 443,
    };
    if host.is_empty() {
        return Err(Error::Invalid(format!("{server}: no host")));
    }
    Ok((host, port))
}

/// The certificate chain (DER, leaf first) that the server at `server` presents, read
/// without trusting it.
pub async fn fetch_chain(server: &str) -> Result<Vec<Vec<u8>>> {
    let server = server.to_owned();
    tokio::task::spawn_blocking(move || fetch_chain_blocking(&server))
        .await
        .map_err(|e| Error::Invalid(format!("certificate fetch: {e}")))?
}

fn fetch_chain_blocking(server: &str) -> Result<Vec<Vec<u8>>> {
    let (host, port) = host_port(server)?;
    let io = |e: std::io::Error| Error::io(format!("cannot reach {host}:{port}"), e);
    let tls = |e: rustls::Error| Error::Invalid(format!("TLS handshake with {host}:{port}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| Error::Invalid(format!("{host}: {e}")))?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(tls)?;
    let address = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| Error::Invalid(format!("{host}: no address")))?;
    let mut socket = TcpStream::connect_timeout(&address, Duration::from_secs(15)).map_err(io)?;
    socket.set_read_timeout(Some(Duration::from_secs(15))).map_err(io)?;
    socket.set_write_timeout(Some(Duration::from_secs(15))).map_err(io)?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).map_err(io)?;
    }
    let chain: Vec<Vec<u8>> =
        connection.peer_certificates().unwrap_or_default().iter().map(|c| c.as_ref().to_vec()).collect();
    connection.send_close_notify();
    let _ = connection.write_tls(&mut socket);
    let _ = socket.flush();
    if chain.is_empty() {
        return Err(Error::Invalid(format!("{host}:{port} presented no certificate")));
    }
    Ok(chain)
}

/// The certificate to pin from a presented chain: the last one the server sends (its CA
/// when it sends one, else its own self-signed certificate).
pub fn anchor_of(chain: &[Vec<u8>]) -> Option<&[u8]> {
    chain.last().map(Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_fingerprints() {
        assert_eq!(host_port("https://127.0.0.1:8443").ok(), Some(("127.0.0.1".into(), 8443)));
        assert_eq!(host_port("https://[::1]:9443/x").ok(), Some(("::1".into(), 9443)));
        assert_eq!(host_port("https://arca.example").ok(), Some(("arca.example".into(), 443)));
        assert!(host_port("http://127.0.0.1:80").is_err());
        let f = fingerprint(b"x");
        assert!(same_fingerprint(&f, &f.replace(':', "").to_lowercase()));
        assert!(!same_fingerprint(&f, &fingerprint(b"y")));
        assert!(!same_fingerprint("", ""));
        assert!(to_pem(b"abc").starts_with("-----BEGIN CERTIFICATE-----\nYWJj\n"));
    }
}
