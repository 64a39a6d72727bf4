//! TLS to PostgreSQL: what a URL's `sslmode` and `sslrootcert` ask for,
//! and the rustls connector that does it. Only `pg` uses it.
//!
//! `sslmode=require` (or libpq's `verify-full`, which means the same here)
//! encrypts the connection and checks the server's certificate and host
//! name, against Mozilla's roots (compiled in) or, when the URL names one,
//! only the CA certificates of the PEM file `sslrootcert`. sessiond never
//! encrypts without checking: libpq's `require` without a CA file does, and
//! lets a machine on the path pose as the database. Without `sslmode`, or with
//! `disable` or `prefer`, it connects without TLS, as before. `verify-ca`
//! (a certificate checked without its host name) is refused rather than
//! made stricter behind the user's back.
//!
//! **Invariant:** the URL the driver parses never carries `sslrootcert`
//! (the driver refuses parameters it does not know), and the connector is
//! chosen once per URL, when the connection settings are read.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// How a connection talks to the server.
pub(super) enum Tls {
    /// No TLS (`sslmode` absent, `disable` or `prefer`).
    Off,
    /// TLS with the server's certificate and host name checked.
    Verified(tokio_postgres_rustls::MakeRustlsConnect),
}

/// The URL for the driver (without sessiond's own `sslrootcert`, and with
/// `verify-full` read as `require`) and the TLS it asks for. The error
/// names the parameter, or the CA file and what is wrong with it; never
/// the URL, which may hold a password.
pub(super) fn from_url(text: &str) -> Result<(String, Tls), String> {
    let mut url = url::Url::parse(text).map_err(|error| error.to_string())?;
    let mut mode = None;
    let mut root_file = None;
    let mut kept = Vec::new();
    for (name, value) in url.query_pairs() {
        match &*name {
            "sslmode" => mode = Some(value.into_owned()),
            "sslrootcert" => root_file = Some(value.into_owned()),
            _ => kept.push((name.into_owned(), value.into_owned())),
        }
    }
    let verified = match mode.as_deref() {
        None | Some("disable" | "prefer") => false,
        Some("require" | "verify-full") => true,
        Some("verify-ca") => {
            return Err(String::from(
                "sslmode=verify-ca is not supported: use sslmode=verify-full (or require), \
                 which checks the certificate and the host name",
            ));
        }
        Some(other) => {
            return Err(format!(
                "invalid sslmode `{other}`: expected disable, prefer, require or verify-full"
            ));
        }
    };
    if root_file.is_some() && !verified {
        return Err(String::from("sslrootcert is given but sslmode is not require"));
    }
    if verified {
        kept.push((String::from("sslmode"), String::from("require")));
    } else if let Some(mode) = mode {
        kept.push((String::from("sslmode"), mode));
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let tls = if verified { Tls::Verified(connector(root_file.as_deref())?) } else { Tls::Off };
    Ok((url.into(), tls))
}

/// A rustls connector that trusts the CA certificates of `root_file`, or
/// Mozilla's roots when there is none.
fn connector(root_file: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    match root_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|error| format!("sslrootcert `{path}`: {error}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| format!("sslrootcert `{path}`: {error}"))?;
            if certificates.is_empty() {
                return Err(format!("sslrootcert `{path}`: no PEM certificate in the file"));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|error| format!("sslrootcert `{path}`: {error}"))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_require_and_verify_full_turn_tls_on_and_sslrootcert_never_reaches_the_driver() {
        let (url, tls) = from_url("postgres://u:p@db:5432/s?sslmode=verify-full").unwrap();
        assert_eq!(url, "postgres://u:p@db:5432/s?sslmode=require");
        assert!(matches!(tls, Tls::Verified(_)));
        let (url, tls) = from_url("postgres://u@db/s?application_name=x").unwrap();
        assert_eq!(url, "postgres://u@db/s?application_name=x");
        assert!(matches!(tls, Tls::Off));
        let (url, tls) = from_url("postgres://u@db/s?sslmode=prefer").unwrap();
        assert_eq!(url, "postgres://u@db/s?sslmode=prefer");
        assert!(matches!(tls, Tls::Off));
        let missing = from_url("postgres://u@db/s?sslmode=require&sslrootcert=/nonexistent/ca.pem");
        let error = missing.err().unwrap();
        assert!(error.starts_with("sslrootcert `/nonexistent/ca.pem`: "), "{error}");
        assert!(from_url("postgres://u@db/s?sslmode=verify-ca").is_err());
        assert!(from_url("postgres://u@db/s?sslmode=allow").is_err());
        assert!(from_url("postgres://u@db/s?sslrootcert=/ca.pem").is_err());
    }
}
