//! PEM text: certificates and private keys, read with `rustls-pki-types` (the parser that
//! `rustls-pemfile` wrapped; that crate is unmaintained), with the error texts it gave.

use std::io;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate of a PEM text, in order. Text around the sections and sections of other
/// kinds are skipped; a malformed section is an error.
pub fn certs(pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem).map(|cert| cert.map_err(invalid)).collect()
}

/// The first private key of a PEM text (PKCS#8, PKCS#1 or SEC1); none when there is none or
/// a section before it is malformed.
pub fn private_key(pem: &[u8]) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).ok()
}

/// `rustls-pemfile`'s wording of each error (the byte strings as text, not as numbers).
fn invalid(error: pem::Error) -> io::Error {
    let text = match error {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!("section end {:?} missing", String::from_utf8_lossy(&end_marker))
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("illegal section start: {:?}", String::from_utf8_lossy(&line))
        }
        pem::Error::Base64Decode(text) => text,
        pem::Error::Io(error) => return error,
        other => other.to_string(),
    };
    io::Error::new(io::ErrorKind::InvalidData, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(label: &str, body: &str) -> String {
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    #[test]
    fn reads_certificates_in_order_and_skips_the_rest() {
        // "MIIB" and "MIIC" are base64 of three bytes each: the parser does not read DER.
        let text = format!(
            "subject=CN=leaf\n{}{}{}",
            section("PRIVATE KEY", "AAAA"),
            section("CERTIFICATE", "MIIB"),
            section("CERTIFICATE", "MIIC")
        );
        let read = certs(text.as_bytes()).unwrap();
        assert_eq!(
            read.iter().map(|c| c.as_ref().to_vec()).collect::<Vec<_>>(),
            [[0x30, 0x82, 0x01], [0x30, 0x82, 0x02]]
        );
        assert!(certs(b"no PEM here").unwrap().is_empty());
    }

    #[test]
    fn reads_the_first_key_of_any_kind() {
        let cert = section("CERTIFICATE", "MIIB");
        for (label, pkcs8, pkcs1, sec1) in [
            ("PRIVATE KEY", true, false, false),
            ("RSA PRIVATE KEY", false, true, false),
            ("EC PRIVATE KEY", false, false, true),
        ] {
            let key = private_key(format!("{cert}{}", section(label, "AAAA")).as_bytes()).unwrap();
            assert_eq!(matches!(key, PrivateKeyDer::Pkcs8(_)), pkcs8, "{label}");
            assert_eq!(matches!(key, PrivateKeyDer::Pkcs1(_)), pkcs1, "{label}");
            assert_eq!(matches!(key, PrivateKeyDer::Sec1(_)), sec1, "{label}");
        }
        assert!(private_key(cert.as_bytes()).is_none());
        assert!(private_key(
            format!("{}{}", section("CERTIFICATE", "!!!!"), section("PRIVATE KEY", "AAAA")).as_bytes()
        )
        .is_none());
    }

    #[test]
    fn errors_read_as_rustls_pemfile_wrote_them() {
        let error = |text: &str| certs(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(error("-----BEGIN CERTIFICATE-----\nMIIB\n"), r#"section end "CERTIFICATE" missing"#);
        assert_eq!(error("-----BEGIN CERTIFICATE\nMIIB\n"), r#"illegal section start: "-----BEGIN CERTIFICATE""#);
        assert!(!error(&section("CERTIFICATE", "!!!!")).is_empty());
        assert_eq!(certs(section("CERTIFICATE", "!!!!").as_bytes()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
