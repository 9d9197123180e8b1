//! The OTLP exporter settings of one signal, from the `OTEL_EXPORTER_OTLP_*` variables as the
//! OpenTelemetry specification defines them: a per-signal variable (`..._TRACES_ENDPOINT`) wins
//! over the generic one; the generic endpoint gets `/v1/<signal>` appended for HTTP, the per-signal
//! endpoint is used as is. Batching comes from `OTEL_BSP_*`.
//!
//! A bad value gives one warning naming the variable and the default is used; an endpoint that is
//! not a URL disables the exporter. Header values are never shown (they carry credentials).

use crate::config::{parse_bool, parse_otel_pairs};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OtlpSettings {
    pub protocol: Protocol,
    /// The full URL: for HTTP with the signal path, for gRPC the server's origin.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub gzip: bool,
    pub timeout: Duration,
    /// PEM files, each with the variable that named it (for warnings).
    pub certificate: Option<(String, String)>,
    pub client_key: Option<(String, String)>,
    pub client_certificate: Option<(String, String)>,
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch: usize,
    /// How long the first span of a batch waits for company (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings read from `OTEL_EXPORTER_OTLP_<SETTING>` and `OTEL_EXPORTER_OTLP_<SIGNAL>_<SETTING>`.
pub const SETTINGS: &[&str] = &["PROTOCOL", "INSECURE", "ENDPOINT", "HEADERS", "COMPRESSION", "TIMEOUT", "CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"];
/// The batching variables, which have no per-signal form.
pub const BSP_VARIABLES: &[&str] = &["OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY"];

/// Every variable `resolve` reads for `signal`.
pub fn variables(signal: &str) -> Vec<String> {
    let otlp = SETTINGS.iter().flat_map(|setting| [format!("OTEL_EXPORTER_OTLP_{setting}"), format!("OTEL_EXPORTER_OTLP_{signal}_{setting}")]);
    otlp.chain(BSP_VARIABLES.iter().map(|name| name.to_string())).collect()
}

/// Reads one signal's variables with the per-signal one first, remembering which was used.
struct Variables<'a> {
    env: &'a HashMap<String, String>,
    signal: &'a str,
}

impl Variables<'_> {
    /// The per-signal variable, else the generic one: its name and trimmed value, if not empty.
    fn get(&self, setting: &str) -> Option<(String, &str)> {
        let specific = format!("OTEL_EXPORTER_OTLP_{}_{setting}", self.signal);
        let generic = format!("OTEL_EXPORTER_OTLP_{setting}");
        [specific, generic].into_iter().find_map(|name| {
            let (_, value) = self.plain(&name)?;
            Some((name, value))
        })
    }

    /// A variable that has no per-signal form (`OTEL_BSP_*`).
    fn plain<'n>(&self, name: &'n str) -> Option<(&'n str, &str)> {
        let value = self.env.get(name)?.trim();
        (!value.is_empty()).then_some((name, value))
    }
}

/// `signal` is `TRACES`, `METRICS` or `LOGS`. `None` when the endpoint is unusable.
pub fn resolve(env: &HashMap<String, String>, signal: &str, warnings: &mut Vec<String>) -> Option<OtlpSettings> {
    let vars = Variables { env, signal };
    let protocol = match vars.get("PROTOCOL") {
        None => Protocol::HttpProtobuf,
        Some((_, "grpc")) => Protocol::Grpc,
        Some((_, "http/protobuf")) => Protocol::HttpProtobuf,
        Some((name, other)) => {
            warnings.push(format!("invalid value {other:?} for {name}: expected grpc or http/protobuf (http/json is not supported); using http/protobuf"));
            Protocol::HttpProtobuf
        }
    };
    let insecure = match vars.get("INSECURE") {
        None => false,
        Some((name, raw)) => parse_bool(raw).unwrap_or_else(|| {
            warnings.push(format!("invalid value {raw:?} for {name}: expected true or false; ignored"));
            false
        }),
    };
    let endpoint = endpoint(&vars, protocol, insecure, warnings)?;
    let mut headers = Vec::new();
    for name in ["OTEL_EXPORTER_OTLP_HEADERS".to_owned(), format!("OTEL_EXPORTER_OTLP_{signal}_HEADERS")] {
        let Some(raw) = env.get(&name) else { continue };
        for (index, (key, value)) in parse_otel_pairs(raw, &name, warnings).into_iter().enumerate() {
            if !valid_header(&key, &value) {
                warnings.push(format!("{name}: ignored entry {} (not a valid HTTP header)", index + 1));
                continue;
            }
            // The per-signal variable comes second and replaces what the generic one set.
            headers.retain(|(k, _): &(String, String)| !k.eq_ignore_ascii_case(&key));
            headers.push((key.to_ascii_lowercase(), value));
        }
    }
    let gzip = match vars.get("COMPRESSION") {
        None | Some((_, "none")) => false,
        Some((_, "gzip")) => true,
        Some((name, other)) => {
            warnings.push(format!("invalid value {other:?} for {name}: expected gzip or none; sending uncompressed"));
            false
        }
    };
    let timeout = millis(vars.get("TIMEOUT").as_ref().map(|(name, v)| (name.as_str(), *v)), DEFAULT_TIMEOUT, warnings);
    let export_timeout = millis(vars.plain("OTEL_BSP_EXPORT_TIMEOUT"), Duration::from_secs(30), warnings);
    let path = |setting: &str| vars.get(setting).map(|(name, v)| (name, v.to_owned()));
    Some(OtlpSettings {
        protocol,
        endpoint,
        headers,
        gzip,
        timeout: timeout.min(export_timeout),
        certificate: path("CERTIFICATE"),
        client_key: path("CLIENT_KEY"),
        client_certificate: path("CLIENT_CERTIFICATE"),
        max_batch: count(vars.plain("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), 512, warnings),
        schedule_delay: millis(vars.plain("OTEL_BSP_SCHEDULE_DELAY"), Duration::from_secs(5), warnings),
    })
}

fn endpoint(vars: &Variables<'_>, protocol: Protocol, insecure: bool, warnings: &mut Vec<String>) -> Option<String> {
    let signal = vars.signal;
    let signal_path = format!("v1/{}", signal.to_ascii_lowercase());
    let Some((name, raw)) = vars.get("ENDPOINT") else {
        return Some(match protocol {
            Protocol::Grpc => "http://localhost:4317".to_owned(),
            Protocol::HttpProtobuf => format!("http://localhost:4318/{signal_path}"),
        });
    };
    // Only the generic endpoint is a base the signal's path is appended to.
    let as_is = name != "OTEL_EXPORTER_OTLP_ENDPOINT";
    // gRPC endpoints may omit the scheme; OTEL_EXPORTER_OTLP_INSECURE then chooses plaintext.
    let url = match (protocol, raw.contains("://")) {
        (Protocol::Grpc, false) => format!("{}://{raw}", if insecure { "http" } else { "https" }),
        _ => raw.to_owned(),
    };
    if let Err(why) = check_url(&url) {
        let message = format!("invalid value {raw:?} for {name}: {why}; OTLP {} export is off", signal.to_ascii_lowercase());
        warnings.push(crate::diag::redacted(message, &url));
        return None;
    }
    Some(match (protocol, as_is) {
        (Protocol::HttpProtobuf, false) => format!("{}/{signal_path}", url.trim_end_matches('/')),
        _ => url,
    })
}

/// An http(s) URL with a host and, if given, a numeric port.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or("expected an http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, p)| (h, p.strip_prefix(':'))).ok_or("unclosed IPv6 address")?,
        None => host_port.split_once(':').map_or((host_port, None), |(h, p)| (h, Some(p))),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("the URL has no host");
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("the port is not a number from 0 to 65535");
    }
    Ok(())
}

/// RFC 9110 token names; values without control characters.
fn valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f)
}

fn millis(raw: Option<(&str, &str)>, default: Duration, warnings: &mut Vec<String>) -> Duration {
    let Some((name, raw)) = raw else { return default };
    match raw.parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => {
            warnings.push(format!("invalid value {raw:?} for {name}: expected milliseconds as a whole number; using {} ms", default.as_millis()));
            default
        }
    }
}

fn count(raw: Option<(&str, &str)>, default: usize, warnings: &mut Vec<String>) -> usize {
    let Some((name, raw)) = raw else { return default };
    match raw.parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            warnings.push(format!("invalid value {raw:?} for {name}: expected a positive whole number; using {default}"));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_read_is_listed() {
        let source = include_str!("settings.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap()];
        for (call, _) in code.match_indices("vars.get(\"").chain(code.match_indices("path(\"")) {
            let rest = &code[call..];
            let name = rest.split('"').nth(1).unwrap();
            assert!(SETTINGS.contains(&name), "OTLP setting {name} is read but not in SETTINGS");
        }
        for (at, _) in code.match_indices("vars.plain(\"") {
            let name = code[at..].split('"').nth(1).unwrap();
            assert!(BSP_VARIABLES.contains(&name), "{name} is read but not in BSP_VARIABLES");
        }
    }

    fn resolve_with(pairs: &[(&str, &str)]) -> (Option<OtlpSettings>, Vec<String>) {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut warnings = Vec::new();
        (resolve(&env, "TRACES", &mut warnings), warnings)
    }

    #[test]
    fn endpoint_rules_of_the_specification() {
        let endpoint = |pairs: &[(&str, &str)]| resolve_with(pairs).0.unwrap().endpoint;
        assert_eq!(endpoint(&[]), "http://localhost:4318/v1/traces");
        assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), "http://localhost:4317");
        assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]), "http://collector:4318/v1/traces");
        assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base/")]), "http://collector:4318/base/v1/traces");
        assert_eq!(
            endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom")]),
            "http://b:2/custom"
        );
        assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]), "https://collector:4317");
        assert_eq!(
            endpoint(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "true")]),
            "http://collector:4317"
        );
        assert_eq!(
            resolve_with(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).0.unwrap().protocol,
            Protocol::Grpc
        );
    }

    #[test]
    fn a_malformed_endpoint_turns_the_exporter_off_with_one_warning() {
        for bad in ["collector:4318", "http://", "http://host:port/", "ftp://x"] {
            let (settings, warnings) = resolve_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", bad)]);
            assert!(settings.is_none(), "{bad}");
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
        }
    }

    #[test]
    fn headers_merge_and_bad_entries_are_named_by_position_only() {
        let (settings, warnings) = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20s3cret,x-team=a,bad%zz=s3cret,sp ace=s3cret"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=b"),
        ]);
        let headers = settings.unwrap().headers;
        assert_eq!(headers, vec![("authorization".to_owned(), "Bearer s3cret".to_owned()), ("x-team".to_owned(), "b".to_owned())]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().all(|w| !w.contains("s3cret")));
    }

    #[test]
    fn bad_values_warn_and_default() {
        let (settings, warnings) = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ]);
        let settings = settings.unwrap();
        assert_eq!((settings.timeout, settings.gzip, settings.protocol, settings.max_batch), (DEFAULT_TIMEOUT, false, Protocol::HttpProtobuf, 512));
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        let (settings, _) =
            resolve_with(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"), ("OTEL_BSP_SCHEDULE_DELAY", "100")]);
        let settings = settings.unwrap();
        assert_eq!((settings.timeout, settings.gzip, settings.schedule_delay), (Duration::from_millis(250), true, Duration::from_millis(100)));
    }
}
