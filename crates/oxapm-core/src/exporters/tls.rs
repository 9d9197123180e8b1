//! TLS material for the exporters, read once when an exporter starts: the CAs to trust (the
//! system's bundle, or a given CA file instead) and, for mutual TLS, a client certificate and key.
//! A file that cannot be used is named in one warning: a bad CA file falls back to the system
//! bundle, a bad client identity means connecting without one. Both rustls-based clients (ureq
//! for HTTP, tonic for gRPC) are configured from the same PEM.

use crate::diag;
use std::sync::Arc;
use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// Where Linux distributions keep their CA bundle (`SSL_CERT_FILE` first).
const SYSTEM_BUNDLES: &[&str] = &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

pub struct Identity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

pub struct TlsMaterial {
    pub verify: bool,
    /// PEM of the trusted CAs; `None` only where no system bundle exists (then the built-in roots).
    pub roots_pem: Option<Vec<u8>>,
    pub identity: Option<Identity>,
}

/// The CAs of `ca_file` (the option or variable naming it, and its path), else the system's.
pub fn trust(ca_file: Option<(&str, &str)>) -> Option<Vec<u8>> {
    ca_file
        .and_then(|(ca_setting, path)| match read_pem(path, has_certificate) {
            Ok(pem) => Some(pem),
            Err(why) => {
                diag::warn(&format!("{ca_setting} {path:?} cannot be used ({why}); trusting the system's CAs instead"));
                None
            }
        })
        .or_else(system_bundle)
}

/// A client certificate and its key for mutual TLS; both or neither must be given.
pub fn identity(cert: Option<(&str, &str)>, key: Option<(&str, &str)>) -> Option<Identity> {
    match (cert, key) {
        (None, None) => None,
        (Some((setting, _)), None) | (None, Some((setting, _))) => {
            diag::warn(&format!("{setting} is set but not its counterpart (a client certificate needs its key); connecting without a client certificate"));
            None
        }
        (Some((cert_setting, cert_path)), Some((key_setting, key_path))) => {
            let read = |setting: &str, path: &str, check: fn(&[u8]) -> bool| {
                read_pem(path, check)
                    .map_err(|why| diag::warn(&format!("{setting} {path:?} cannot be used ({why}); connecting without a client certificate")))
                    .ok()
            };
            let cert_pem = read(cert_setting, cert_path, has_certificate)?;
            let key_pem = read(key_setting, key_path, has_private_key)?;
            Some(Identity { cert_pem, key_pem })
        }
    }
}

impl TlsMaterial {
    /// For ureq (HTTP exporters).
    pub fn ureq_config(&self) -> TlsConfig {
        let mut builder = TlsConfig::builder();
        if !self.verify {
            return builder.disable_verification(true).build();
        }
        let roots = self.roots_pem.as_deref().map(certificates).filter(|c| !c.is_empty());
        builder = builder.root_certs(roots.map(|c| RootCerts::Specific(Arc::new(c))).unwrap_or(RootCerts::WebPki));
        if let Some(identity) = &self.identity {
            let key = PrivateKey::from_pem(&identity.key_pem).ok();
            builder = builder.client_cert(key.map(|key| ClientCert::new_with_certs(&certificates(&identity.cert_pem), key)));
        }
        builder.build()
    }
}

fn read_pem(path: &str, check: fn(&[u8]) -> bool) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    if check(&pem) {
        Ok(pem)
    } else {
        Err("not the expected PEM content".to_owned())
    }
}

fn certificates(pem: &[u8]) -> Vec<Certificate<'static>> {
    parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect()
}

fn has_certificate(pem: &[u8]) -> bool {
    !certificates(pem).is_empty()
}

fn has_private_key(pem: &[u8]) -> bool {
    PrivateKey::from_pem(pem).is_ok()
}

fn system_bundle() -> Option<Vec<u8>> {
    let from_env = std::env::var("SSL_CERT_FILE").ok();
    from_env.iter().map(String::as_str).chain(SYSTEM_BUNDLES.iter().copied()).find_map(|path| read_pem(path, has_certificate).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_bundle_is_found_here() {
        assert!(system_bundle().is_some_and(|pem| certificates(&pem).len() > 10));
    }

    #[test]
    fn unusable_files_fall_back() {
        let dir = std::env::temp_dir().join(format!("oxapm-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not-a-cert.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_pem = not_pem.to_str().unwrap();
        assert!(read_pem(not_pem, has_certificate).is_err());
        assert_eq!(trust(Some(("server_ca_cert_file", "/nonexistent/ca.pem"))), system_bundle());
        assert!(identity(Some(("CERT", not_pem)), Some(("KEY", not_pem))).is_none());
        assert!(identity(Some(("CERT", not_pem)), None).is_none());
        let material = TlsMaterial { verify: false, roots_pem: None, identity: None };
        assert!(material.ureq_config().disable_verification());
    }
}
