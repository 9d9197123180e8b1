//! TLS trust for the exporters: the system's CA bundle by default, `server_ca_cert_file` instead
//! when given, or no verification at all with `verify_server_cert=false`. A CA file that cannot be
//! used is named in one warning and the system bundle is used.

use crate::diag;
use std::sync::Arc;
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

/// Where Linux distributions keep their CA bundle (`SSL_CERT_FILE` first).
const SYSTEM_BUNDLES: &[&str] = &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

pub fn tls_config(verify_server_cert: bool, ca_cert_file: Option<&str>) -> TlsConfig {
    if !verify_server_cert {
        diag::warn("verify_server_cert is false: the APM Server's certificate is not checked");
        return TlsConfig::builder().disable_verification(true).build();
    }
    let roots = ca_cert_file
        .and_then(|path| match certificates(path) {
            Ok(certs) => Some(certs),
            Err(why) => {
                diag::warn(&format!("server_ca_cert_file {path:?} cannot be used ({why}); trusting the system's CAs instead"));
                None
            }
        })
        .or_else(system_certificates)
        .map(|certs| RootCerts::Specific(Arc::new(certs)))
        .unwrap_or(RootCerts::WebPki);
    TlsConfig::builder().root_certs(roots).build()
}

fn certificates(path: &str) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs: Vec<_> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err("no PEM certificate in it".to_owned());
    }
    Ok(certs)
}

fn system_certificates() -> Option<Vec<Certificate<'static>>> {
    let from_env = std::env::var("SSL_CERT_FILE").ok();
    from_env.iter().map(String::as_str).chain(SYSTEM_BUNDLES.iter().copied()).find_map(|path| certificates(path).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_bundle_is_found_here() {
        assert!(system_certificates().is_some_and(|certs| certs.len() > 10));
    }

    #[test]
    fn an_unusable_ca_file_falls_back_to_the_system_bundle() {
        let dir = std::env::temp_dir().join(format!("oxapm-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not-a-cert.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        assert!(certificates(not_pem.to_str().unwrap()).is_err());
        assert!(certificates("/nonexistent/ca.pem").is_err());
        assert!(matches!(tls_config(true, Some("/nonexistent/ca.pem")).root_certs(), RootCerts::Specific(_)));
        assert!(tls_config(false, None).disable_verification());
    }
}
