//! Configuration: every option the agent knows, with its type and default, resolved from the
//! environment (`ELASTIC_APM_*`, then the OpenTelemetry equivalents), the inline config dict and
//! the keyword defaults, in that order of precedence.
//!
//! A value that does not parse gives one warning naming the option and its source, and the next
//! source (in the end the default) is used. Secret values never appear in warnings.

use crate::model::SpanLimits;
use crate::otlp::settings::OtlpSettings;
use crate::sampling::{Sampler, SAMPLER_NAMES};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Str,
    Bool,
    Int,
    /// Elastic service names: `^[a-zA-Z0-9 _-]+$`.
    ServiceName,
    /// A sample rate in [0, 1], rounded to 4 decimal places.
    SampleRate,
    /// Milliseconds; a bare number is taken in the given default unit. Negative only when
    /// `signed` (where a negative value means "never", as `span_stack_trace_min_duration=-1`).
    Duration {
        bare_unit_ms: f64,
        signed: bool,
    },
    /// Bytes; `b`, `kb`, `mb`, `gb` suffixes.
    Size,
    /// Comma-separated.
    List,
    /// Comma-separated `key=value` pairs.
    Map,
    Enum(&'static [&'static str]),
    Url,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Unset,
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    List(Vec<String>),
    Map(Vec<(String, String)>),
}

pub struct OptionSpec {
    pub key: &'static str,
    pub kind: Kind,
    pub default: Option<&'static str>,
    pub secret: bool,
}

const fn opt(key: &'static str, kind: Kind, default: Option<&'static str>) -> OptionSpec {
    OptionSpec { key, kind, default, secret: false }
}

const SECONDS: Kind = Kind::Duration { bare_unit_ms: 1000.0, signed: false };
const MILLIS: Kind = Kind::Duration { bare_unit_ms: 1.0, signed: false };
const SIGNED_MILLIS: Kind = Kind::Duration { bare_unit_ms: 1.0, signed: true };

pub const DEFAULT_SANITIZE_FIELD_NAMES: &str = "password,passwd,pwd,secret,*key,*token*,*session*,*credit*,*card*,*auth*,set-cookie,*principal*";

/// Every option, with its Elastic name (upper case, as in `ELASTIC_APM_<KEY>`).
pub const OPTIONS: &[OptionSpec] = &[
    opt("SERVICE_NAME", Kind::ServiceName, Some("unknown-python-service")),
    opt("SERVICE_VERSION", Kind::Str, None),
    opt("SERVICE_NODE_NAME", Kind::Str, None),
    opt("ENVIRONMENT", Kind::Str, None),
    opt("HOSTNAME", Kind::Str, None),
    opt("GLOBAL_LABELS", Kind::Map, None),
    opt("ENABLED", Kind::Bool, Some("true")),
    opt("RECORDING", Kind::Bool, Some("true")),
    opt("SERVER_URL", Kind::Url, None),
    OptionSpec { key: "SECRET_TOKEN", kind: Kind::Str, default: None, secret: true },
    OptionSpec { key: "API_KEY", kind: Kind::Str, default: None, secret: true },
    opt("SERVER_TIMEOUT", SECONDS, Some("5s")),
    opt("VERIFY_SERVER_CERT", Kind::Bool, Some("true")),
    opt("SERVER_CA_CERT_FILE", Kind::Str, None),
    opt("API_REQUEST_TIME", MILLIS, Some("10s")),
    opt("API_REQUEST_SIZE", Kind::Size, Some("768kb")),
    opt("MAX_QUEUE_SIZE", Kind::Int, Some("65536")),
    // Undelivered batches (compressed) kept for retry while the server is unreachable.
    opt("RETRY_BUFFER_SIZE", Kind::Size, Some("16mb")),
    opt("TRACES_EXPORTER", Kind::List, None),
    // How long close() and interpreter exit may take to deliver what is buffered.
    opt("SHUTDOWN_TIMEOUT", SECONDS, Some("5s")),
    opt("METRICS_INTERVAL", MILLIS, Some("30s")),
    // Where metrics go over OTLP (`OTEL_METRICS_EXPORTER`): see `Engine::start` for the default.
    opt("METRICS_EXPORTER", Kind::List, None),
    // Where log records go over OTLP (`OTEL_LOGS_EXPORTER`): see `Config::sends_logs_over_otlp`.
    opt("LOGS_EXPORTER", Kind::List, None),
    // The OpenTelemetry metrics SDK's (`meters`), from `OTEL_EXPORTER_OTLP_METRICS_*`.
    opt("METRICS_TEMPORALITY_PREFERENCE", Kind::Enum(&["cumulative", "delta", "lowmemory"]), Some("cumulative")),
    opt(
        "METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        Kind::Enum(&["explicit_bucket_histogram", "base2_exponential_bucket_histogram"]),
        Some("explicit_bucket_histogram"),
    ),
    opt("TRANSACTION_SAMPLE_RATE", Kind::SampleRate, Some("1.0")),
    // Whether a parent's decision wins over the rate (`OTEL_TRACES_SAMPLER`); Elastic's is parent-based.
    opt("TRACES_SAMPLER", Kind::Enum(SAMPLER_NAMES), Some("parentbased_traceidratio")),
    opt("USE_ELASTIC_TRACEPARENT_HEADER", Kind::Bool, Some("true")),
    opt("STACK_TRACE_LIMIT", Kind::Int, Some("50")),
    opt("COLLECT_LOCAL_VARIABLES", Kind::Enum(&["off", "errors", "transactions", "all"]), Some("errors")),
    opt("SOURCE_LINES_ERROR_APP_FRAMES", Kind::Int, Some("5")),
    opt("SOURCE_LINES_ERROR_LIBRARY_FRAMES", Kind::Int, Some("5")),
    opt("SOURCE_LINES_SPAN_APP_FRAMES", Kind::Int, Some("0")),
    opt("SOURCE_LINES_SPAN_LIBRARY_FRAMES", Kind::Int, Some("0")),
    opt("LOCAL_VAR_MAX_LENGTH", Kind::Int, Some("200")),
    opt("LOCAL_VAR_LIST_MAX_LENGTH", Kind::Int, Some("10")),
    opt("LOCAL_VAR_DICT_MAX_LENGTH", Kind::Int, Some("10")),
    opt("INCLUDE_PATHS", Kind::List, None),
    opt("EXCLUDE_PATHS", Kind::List, None),
    opt("SANITIZE_FIELD_NAMES", Kind::List, Some(DEFAULT_SANITIZE_FIELD_NAMES)),
    opt("LOG_LEVEL", Kind::Enum(&["trace", "debug", "info", "warning", "warn", "error", "critical", "off"]), None),
    // The Elastic agent's: the `logging` record factory that adds trace ids to every record.
    opt("DISABLE_LOG_RECORD_FACTORY", Kind::Bool, Some("false")),
    // `override` puts the ECS JSON formatter on the root logger's handlers.
    opt("LOG_ECS_REFORMATTING", Kind::Enum(&["off", "override"]), Some("off")),
    opt("INSTRUMENT", Kind::Bool, Some("true")),
    opt("DISABLED_INSTRUMENTATIONS", Kind::List, None),
    opt("CAPTURE_BODY", Kind::Enum(&["off", "errors", "transactions", "all"]), Some("off")),
    opt("CAPTURE_HEADERS", Kind::Bool, Some("true")),
    opt("TRANSACTION_IGNORE_URLS", Kind::List, None),
    // Trace shaping (see `shaping`): all of them can be changed by central configuration.
    opt("TRANSACTION_MAX_SPANS", Kind::Int, Some("500")),
    opt("SPAN_COMPRESSION_ENABLED", Kind::Bool, Some("true")),
    opt("SPAN_COMPRESSION_EXACT_MATCH_MAX_DURATION", MILLIS, Some("50ms")),
    opt("SPAN_COMPRESSION_SAME_KIND_MAX_DURATION", MILLIS, Some("0ms")),
    opt("EXIT_SPAN_MIN_DURATION", MILLIS, Some("0ms")),
    opt("SPAN_STACK_TRACE_MIN_DURATION", SIGNED_MILLIS, Some("5ms")),
    // Deprecated for the one above, with the opposite sign convention (-1 always, 0 never).
    opt("SPAN_FRAMES_MIN_DURATION", SIGNED_MILLIS, None),
    opt("BREAKDOWN_METRICS", Kind::Bool, Some("true")),
    opt("DISABLE_METRICS", Kind::List, None),
    opt("CENTRAL_CONFIG", Kind::Bool, Some("true")),
    opt("TRACE_CONTINUATION_STRATEGY", Kind::Enum(&["continue", "restart", "restart_external"]), Some("continue")),
    opt("FRAMEWORK_NAME", Kind::Str, None),
    opt("FRAMEWORK_VERSION", Kind::Str, None),
];

/// The OpenTelemetry variables read in this file (the OTLP exporter's are listed by
/// `otlp::settings`). A test checks that none is missing.
const OTEL_VARIABLES: &[&str] = &[
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
];

/// Every environment variable the engine reads, once each: `ELASTIC_APM_<OPTION>`, then the
/// OpenTelemetry ones (`oxapm run` offers a flag for each).
pub fn environment_variables() -> Vec<String> {
    let elastic = OPTIONS.iter().map(|spec| format!("ELASTIC_APM_{}", spec.key));
    let otlp = ["TRACES", "METRICS", "LOGS"].into_iter().flat_map(crate::otlp::settings::variables);
    let otel = OTEL_VARIABLES.iter().map(|name| name.to_string()).chain(otlp);
    let mut seen = std::collections::HashSet::new();
    elastic.chain(otel).filter(|name| seen.insert(name.clone())).collect()
}

/// Where a raw value came from, for warnings.
#[derive(Clone, Copy, Debug)]
enum Source {
    ElasticEnv,
    /// The OpenTelemetry variable the value was read from.
    OtelEnv(&'static str),
    Inline,
    Defaults,
    BuiltIn,
}

impl Source {
    fn describe(self, key: &str) -> String {
        match self {
            Source::ElasticEnv => format!("ELASTIC_APM_{key}"),
            Source::OtelEnv(variable) => variable.to_owned(),
            Source::Inline => format!("config[{key:?}]"),
            Source::Defaults => format!("keyword argument {}", key.to_ascii_lowercase()),
            Source::BuiltIn => format!("the built-in default of {key}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    values: Vec<(&'static str, ConfigValue)>,
    /// The options given somewhere (environment, config dict, keyword), not left to their default.
    explicit: Vec<&'static str>,
    /// The OTLP trace exporter's settings (`OTEL_EXPORTER_OTLP_*`); `None` if its endpoint is unusable.
    pub otlp_traces: Option<OtlpSettings>,
    /// The OTLP metrics exporter's settings, likewise; resolved only when metrics go to OTLP.
    pub otlp_metrics: Option<OtlpSettings>,
    /// The OTLP logs exporter's settings, likewise; resolved only when logs go to OTLP.
    pub otlp_logs: Option<OtlpSettings>,
    /// `OTEL_ATTRIBUTE_*` and `OTEL_SPAN_*` limits.
    pub span_limits: SpanLimits,
    pub warnings: Vec<String>,
}

impl Config {
    /// `env` is the process environment; `inline` the `Client(config)` dict and `defaults` its
    /// keyword arguments, both with keys in any case, values already turned into strings.
    pub fn resolve(env: &HashMap<String, String>, inline: &HashMap<String, String>, defaults: &HashMap<String, String>) -> Self {
        let mut warnings = Vec::new();
        let otel = otel_equivalents(env, &mut warnings);
        let upper = |m: &HashMap<String, String>| m.iter().map(|(k, v)| (k.to_ascii_uppercase(), v.clone())).collect::<HashMap<_, _>>();
        let (inline, defaults) = (upper(inline), upper(defaults));
        let mut values = Vec::with_capacity(OPTIONS.len());
        let mut explicit = Vec::new();
        for spec in OPTIONS {
            let candidates = [
                (Source::ElasticEnv, env.get(&format!("ELASTIC_APM_{}", spec.key)).cloned()),
                otel.get(spec.key).map_or((Source::BuiltIn, None), |(variable, value)| (Source::OtelEnv(variable), Some(value.clone()))),
                (Source::Inline, inline.get(spec.key).cloned()),
                (Source::Defaults, defaults.get(spec.key).cloned()),
                (Source::BuiltIn, spec.default.map(str::to_owned)),
            ];
            let value = candidates
                .into_iter()
                .filter_map(|(source, raw)| raw.map(|raw| (source, raw)))
                .find_map(|(source, raw)| match parse(spec.kind, &raw) {
                    Ok(value) => {
                        if !matches!(source, Source::BuiltIn) {
                            explicit.push(spec.key);
                        }
                        Some(value)
                    }
                    Err(why) => {
                        let shown = if spec.secret { "<redacted>".to_owned() } else { format!("{raw:?}") };
                        warnings.push(format!("invalid value {shown} for {}: {why}; ignored", source.describe(spec.key)));
                        None
                    }
                })
                .unwrap_or(ConfigValue::Unset);
            values.push((spec.key, value));
        }
        let otlp_traces = crate::otlp::settings::resolve(env, "TRACES", &mut warnings);
        let span_limits = span_limits(env, &mut warnings);
        let mut config = Config { values, explicit, otlp_traces, otlp_metrics: None, otlp_logs: None, span_limits, warnings };
        if config.sends_metrics_over_otlp() {
            let mut metrics_warnings = Vec::new();
            config.otlp_metrics = crate::otlp::settings::resolve(env, "METRICS", &mut metrics_warnings);
            // The trace settings, always resolved, already reported the generic variables: only the
            // metrics-specific ones (OTEL_EXPORTER_OTLP_METRICS_*) are news.
            config.warnings.extend(metrics_warnings.into_iter().filter(|w| w.contains("_METRICS_")));
        }
        if config.sends_logs_over_otlp() {
            let mut logs_warnings = Vec::new();
            config.otlp_logs = crate::otlp::settings::resolve(env, "LOGS", &mut logs_warnings);
            config.warnings.extend(logs_warnings.into_iter().filter(|w| w.contains("_LOGS_")));
        }
        // Some variables are read twice (the OTLP headers also give APM Server credentials).
        let mut seen = std::collections::HashSet::new();
        config.warnings.retain(|w| seen.insert(w.clone()));
        config
    }

    /// Whether metrics go to OTLP: `OTEL_METRICS_EXPORTER` says `otlp` (the intake and memory
    /// exporters carry metrics whenever they carry traces). Unset, it is `otlp` as in the
    /// OpenTelemetry SDK, but only where OTLP is in use (traces go to OTLP): an Elastic setup sends
    /// no OTLP by surprise. Never with metrics off (`metrics_interval` 0).
    pub fn sends_metrics_over_otlp(&self) -> bool {
        if self.duration("METRICS_INTERVAL").is_zero() {
            return false;
        }
        match self.list("METRICS_EXPORTER") {
            [] => self.list("TRACES_EXPORTER").iter().any(|name| name == "otlp"),
            selected => selected.iter().any(|name| name == "otlp"),
        }
    }

    /// Whether log records go to OTLP: `OTEL_LOGS_EXPORTER` says `otlp`; unset, where traces go to
    /// OTLP, by the same rule as metrics. The intake and memory exporters carry log records
    /// whenever they carry traces, unless the logs exporter is `none`.
    pub fn sends_logs_over_otlp(&self) -> bool {
        match self.list("LOGS_EXPORTER") {
            [] => self.list("TRACES_EXPORTER").iter().any(|name| name == "otlp"),
            selected => selected.iter().any(|name| name == "otlp"),
        }
    }

    /// Whether log records are exported at all: not when the logs exporter is only `none`.
    pub fn exports_logs(&self) -> bool {
        !matches!(self.list("LOGS_EXPORTER"), [only] if only == "none")
    }

    pub fn sampler(&self) -> Sampler {
        let name = self.str("TRACES_SAMPLER").unwrap_or("parentbased_traceidratio");
        Sampler { rate: self.float("TRANSACTION_SAMPLE_RATE"), parent_based: name.starts_with("parentbased_") }
    }

    pub fn get(&self, key: &str) -> &ConfigValue {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v).unwrap_or(&ConfigValue::Unset)
    }

    /// Whether `key` was given rather than left to its built-in default.
    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.contains(&key)
    }

    /// This configuration with `overrides` in place of its values (central configuration's layer);
    /// an overridden option counts as given.
    pub fn overlaid(&self, overrides: &[(&'static str, ConfigValue)]) -> Config {
        let mut config = self.clone();
        for (key, value) in overrides {
            if let Some(slot) = config.values.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value.clone();
            }
            if !config.explicit.contains(key) {
                config.explicit.push(key);
            }
        }
        config
    }

    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &ConfigValue)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            ConfigValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn bool(&self, key: &str) -> bool {
        matches!(self.get(key), ConfigValue::Bool(true))
    }
    pub fn int(&self, key: &str) -> i64 {
        match self.get(key) {
            ConfigValue::Int(i) => *i,
            _ => 0,
        }
    }
    pub fn float(&self, key: &str) -> f64 {
        match self.get(key) {
            ConfigValue::Float(f) => *f,
            ConfigValue::Int(i) => *i as f64,
            _ => 0.0,
        }
    }
    pub fn duration(&self, key: &str) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.float(key).max(0.0) / 1000.0)
    }
    pub fn list(&self, key: &str) -> &[String] {
        match self.get(key) {
            ConfigValue::List(l) => l,
            _ => &[],
        }
    }
}

/// The option named `key` (upper case).
pub fn spec(key: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.key == key)
}

/// As a log line shows a value: the way the environment would spell it.
impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Unset => f.write_str("(unset)"),
            ConfigValue::Str(s) => f.write_str(s),
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::List(items) => f.write_str(&items.join(",")),
            ConfigValue::Map(pairs) => f.write_str(&pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")),
        }
    }
}

pub fn parse(kind: Kind, raw: &str) -> Result<ConfigValue, String> {
    let s = raw.trim();
    match kind {
        Kind::Str => Ok(ConfigValue::Str(s.to_owned())),
        Kind::Bool => parse_bool(s).map(ConfigValue::Bool).ok_or_else(|| "expected true or false".to_owned()),
        Kind::Int => s.parse::<i64>().map(ConfigValue::Int).map_err(|_| "expected an integer".to_owned()),
        Kind::ServiceName => {
            if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '_' || c == '-') {
                Ok(ConfigValue::Str(s.to_owned()))
            } else {
                Err("a service name may contain only letters, digits, spaces, _ and -".to_owned())
            }
        }
        Kind::SampleRate => match s.parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => {
                // Elastic keeps 4 decimals, but never rounds a non-zero rate down to zero.
                let rounded = crate::traceparent::round_sample_rate(rate);
                Ok(ConfigValue::Float(if rate > 0.0 && rounded == 0.0 { 0.0001 } else { rounded }))
            }
            _ => Err("expected a number between 0 and 1".to_owned()),
        },
        Kind::Duration { bare_unit_ms, signed } => match parse_duration_ms(s, bare_unit_ms) {
            Some(ms) if signed || ms >= 0.0 => Ok(ConfigValue::Float(ms)),
            _ => Err("expected a duration like 500ms, 10s or 1m".to_owned()),
        },
        Kind::Size => parse_size(s).map(|b| ConfigValue::Int(b as i64)).ok_or_else(|| "expected a size like 768kb or 1mb".to_owned()),
        Kind::List => Ok(ConfigValue::List(split_list(s))),
        Kind::Map => {
            let mut pairs = Vec::new();
            for item in split_list(s) {
                match item.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => pairs.push((k.trim().to_owned(), v.trim().to_owned())),
                    _ => return Err(format!("expected key=value pairs, got {item:?}")),
                }
            }
            Ok(ConfigValue::Map(pairs))
        }
        Kind::Enum(choices) => {
            let lower = s.to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                Ok(ConfigValue::Str(lower))
            } else {
                Err(format!("expected one of {}", choices.join(", ")))
            }
        }
        Kind::Url => {
            let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
            match rest {
                Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(ConfigValue::Str(s.trim_end_matches('/').to_owned())),
                _ => Err("expected an http:// or https:// URL".to_owned()),
            }
        }
    }
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

fn split_number_unit(s: &str) -> (&str, String) {
    let cut = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(s.len());
    (&s[..cut], s[cut..].trim().to_ascii_lowercase())
}

fn parse_duration_ms(s: &str, bare_unit_ms: f64) -> Option<f64> {
    let (number, unit) = split_number_unit(s);
    let n: f64 = number.parse().ok().filter(|n: &f64| n.is_finite())?;
    let factor = match unit.as_str() {
        "" => bare_unit_ms,
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(n * factor)
}

fn parse_size(s: &str) -> Option<u64> {
    let (number, unit) = split_number_unit(s);
    let n: f64 = number.parse().ok().filter(|n: &f64| *n >= 0.0 && n.is_finite())?;
    let factor = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * factor) as u64)
}

/// OTel attribute lists (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`): comma-separated
/// `key=value`, values percent-encoded. Bad members are skipped with a warning.
pub fn parse_otel_pairs(raw: &str, variable: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (index, member) in raw.split(',').map(str::trim).filter(|m| !m.is_empty()).enumerate() {
        let parsed = member.split_once('=').and_then(|(k, v)| {
            let key = percent_decode(k.trim())?;
            let value = percent_decode(v.trim())?;
            (!key.is_empty()).then_some((key, value))
        });
        match parsed {
            Some(pair) => pairs.push(pair),
            // Named by position only: an entry may hold a secret (an Authorization header).
            None => warnings.push(format!("{variable}: ignored entry {} (not key=value with valid percent-encoding)", index + 1)),
        }
    }
    pairs
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Elastic options derived from the OpenTelemetry variables, as EDOT's migration guide maps them,
/// each with the variable it was read from.
fn otel_equivalents(env: &HashMap<String, String>, warnings: &mut Vec<String>) -> HashMap<&'static str, (&'static str, String)> {
    const RESOURCE: &str = "OTEL_RESOURCE_ATTRIBUTES";
    const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    let mut out = HashMap::new();
    let mut labels = Vec::new();
    if let Some(raw) = env.get(RESOURCE) {
        for (key, value) in parse_otel_pairs(raw, RESOURCE, warnings) {
            match key.as_str() {
                "service.name" => {
                    out.insert("SERVICE_NAME", (RESOURCE, value));
                }
                "service.version" => {
                    out.insert("SERVICE_VERSION", (RESOURCE, value));
                }
                "deployment.environment.name" => {
                    out.insert("ENVIRONMENT", (RESOURCE, value));
                }
                "deployment.environment" => {
                    out.entry("ENVIRONMENT").or_insert((RESOURCE, value));
                }
                _ => labels.push(format!("{key}={value}")),
            }
        }
    }
    if !labels.is_empty() {
        out.insert("GLOBAL_LABELS", (RESOURCE, labels.join(",")));
    }
    if let Some(name) = env.get("OTEL_SERVICE_NAME").filter(|n| !n.trim().is_empty()) {
        out.insert("SERVICE_NAME", ("OTEL_SERVICE_NAME", name.clone()));
    }
    if let Some(raw) = env.get(HEADERS) {
        for (key, value) in parse_otel_pairs(raw, HEADERS, warnings) {
            if key.eq_ignore_ascii_case("authorization") {
                if let Some(token) = value.strip_prefix("ApiKey ") {
                    out.insert("API_KEY", (HEADERS, token.trim().to_owned()));
                } else if let Some(token) = value.strip_prefix("Bearer ") {
                    out.insert("SECRET_TOKEN", (HEADERS, token.trim().to_owned()));
                }
            }
        }
    }
    if let Some(raw) = env.get("OTEL_SDK_DISABLED") {
        match parse_bool(raw.trim()) {
            Some(disabled) => {
                out.insert("ENABLED", ("OTEL_SDK_DISABLED", (!disabled).to_string()));
            }
            None => warnings.push(format!("invalid value {raw:?} for OTEL_SDK_DISABLED: expected true or false; ignored")),
        }
    }
    // Milliseconds, which is also how METRICS_INTERVAL reads a bare number.
    if let Some(raw) = env.get("OTEL_METRIC_EXPORT_INTERVAL") {
        out.insert("METRICS_INTERVAL", ("OTEL_METRIC_EXPORT_INTERVAL", raw.clone()));
    }
    for (variable, key) in [
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "METRICS_TEMPORALITY_PREFERENCE"),
        ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "METRICS_DEFAULT_HISTOGRAM_AGGREGATION"),
    ] {
        if let Some(raw) = env.get(variable) {
            out.insert(key, (variable, raw.trim().to_ascii_lowercase()));
        }
    }
    if let Some(raw) = env.get("OTEL_TRACES_EXPORTER") {
        out.insert("TRACES_EXPORTER", ("OTEL_TRACES_EXPORTER", raw.clone()));
    }
    if let Some(raw) = env.get("OTEL_METRICS_EXPORTER") {
        out.insert("METRICS_EXPORTER", ("OTEL_METRICS_EXPORTER", raw.clone()));
    }
    if let Some(raw) = env.get("OTEL_LOGS_EXPORTER") {
        out.insert("LOGS_EXPORTER", ("OTEL_LOGS_EXPORTER", raw.clone()));
    }
    if let Some(raw) = env.get("OTEL_BSP_MAX_QUEUE_SIZE") {
        out.insert("MAX_QUEUE_SIZE", ("OTEL_BSP_MAX_QUEUE_SIZE", raw.clone()));
    }
    if let Some(raw) = env.get("OTEL_TRACES_SAMPLER") {
        let name = raw.trim().to_ascii_lowercase();
        // The rate each sampler implies; the ratio samplers read it from the _ARG variable.
        let rate = match Sampler::named(&name, 1.0) {
            Some(_) if name.ends_with("traceidratio") => {
                Some(("OTEL_TRACES_SAMPLER_ARG", env.get("OTEL_TRACES_SAMPLER_ARG").cloned().unwrap_or_else(|| "1.0".to_owned())))
            }
            Some(sampler) => Some(("OTEL_TRACES_SAMPLER", sampler.rate.to_string())),
            None => None,
        };
        match rate {
            Some(rate) => {
                out.insert("TRANSACTION_SAMPLE_RATE", rate);
                out.insert("TRACES_SAMPLER", ("OTEL_TRACES_SAMPLER", name));
            }
            None => warnings.push(format!("invalid value {raw:?} for OTEL_TRACES_SAMPLER: expected one of {}; ignored", SAMPLER_NAMES.join(", "))),
        }
    }
    out
}

/// The span limits: each `OTEL_SPAN_*`/`OTEL_EVENT_*`/`OTEL_LINK_*` variable, else the general
/// `OTEL_ATTRIBUTE_*` one, else the OpenTelemetry default.
fn span_limits(env: &HashMap<String, String>, warnings: &mut Vec<String>) -> SpanLimits {
    let mut read = |variables: &[&str]| -> Option<usize> {
        variables.iter().find_map(|variable| {
            let raw = env.get(*variable).filter(|raw| !raw.trim().is_empty())?;
            match raw.trim().parse::<usize>() {
                Ok(limit) => Some(limit),
                Err(_) => {
                    warnings.push(format!("invalid value {raw:?} for {variable}: expected a non-negative integer; ignored"));
                    None
                }
            }
        })
    };
    let defaults = SpanLimits::default();
    SpanLimits {
        attribute_count: read(&["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"]).unwrap_or(defaults.attribute_count),
        attribute_value_length: read(&["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"]),
        event_count: read(&["OTEL_SPAN_EVENT_COUNT_LIMIT"]).unwrap_or(defaults.event_count),
        link_count: read(&["OTEL_SPAN_LINK_COUNT_LIMIT"]).unwrap_or(defaults.link_count),
        event_attribute_count: read(&["OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"]).unwrap_or(defaults.event_attribute_count),
        link_attribute_count: read(&["OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"]).unwrap_or(defaults.link_attribute_count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_otel_variable_read_is_listed() {
        let listed = environment_variables();
        for source in [include_str!("config.rs"), include_str!("otlp/settings.rs")] {
            let code = &source[..source.find("#[cfg(test)]").unwrap()];
            for literal in code.split('"').skip(1).step_by(2) {
                let is_name = literal.starts_with("OTEL_") && literal.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                assert!(!is_name || listed.iter().any(|v| v == literal), "{literal} is read but not listed in OTEL_VARIABLES");
            }
        }
        assert_eq!(listed.len(), listed.iter().collect::<std::collections::HashSet<_>>().len());
        assert!(listed.iter().any(|v| v == "ELASTIC_APM_SERVER_URL") && listed.iter().any(|v| v == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_default_parses() {
        for spec in OPTIONS {
            if let Some(default) = spec.default {
                assert!(parse(spec.kind, default).is_ok(), "{}", spec.key);
            }
        }
    }

    #[test]
    fn precedence_is_env_then_otel_then_inline_then_defaults() {
        let none = HashMap::new();
        let defaults = map(&[("service_name", "from-kwargs"), ("environment", "kw-env")]);
        let inline = map(&[("SERVICE_NAME", "from-dict")]);
        let c = Config::resolve(&none, &inline, &defaults);
        assert_eq!(c.str("SERVICE_NAME"), Some("from-dict"));
        assert_eq!(c.str("ENVIRONMENT"), Some("kw-env"));
        let env = map(&[("OTEL_SERVICE_NAME", "from-otel")]);
        assert_eq!(Config::resolve(&env, &inline, &defaults).str("SERVICE_NAME"), Some("from-otel"));
        let env = map(&[("OTEL_SERVICE_NAME", "from-otel"), ("ELASTIC_APM_SERVICE_NAME", "from-env")]);
        assert_eq!(Config::resolve(&env, &inline, &defaults).str("SERVICE_NAME"), Some("from-env"));
    }

    #[test]
    fn invalid_values_warn_once_and_fall_back() {
        let env = map(&[("ELASTIC_APM_TRANSACTION_SAMPLE_RATE", "2"), ("ELASTIC_APM_SECRET_TOKEN", "")]);
        let inline = map(&[("API_REQUEST_TIME", "soon")]);
        let c = Config::resolve(&env, &inline, &HashMap::new());
        assert_eq!(c.float("TRANSACTION_SAMPLE_RATE"), 1.0);
        assert_eq!(c.float("API_REQUEST_TIME"), 10_000.0);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("ELASTIC_APM_TRANSACTION_SAMPLE_RATE") && w.contains("\"2\"")));
    }

    #[test]
    fn otel_warnings_name_the_variable_and_its_value() {
        let env = map(&[("OTEL_METRIC_EXPORT_INTERVAL", "soon")]);
        let c = Config::resolve(&env, &HashMap::new(), &HashMap::new());
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("\"soon\" for OTEL_METRIC_EXPORT_INTERVAL"), "{}", c.warnings[0]);
    }

    #[test]
    fn secrets_are_not_echoed() {
        let env = map(&[("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%ZZtop-secret,authorization:Bearer top-secret")]);
        let c = Config::resolve(&env, &HashMap::new(), &HashMap::new());
        assert!(c.warnings.iter().all(|w| !w.contains("top-secret")), "{:?}", c.warnings);
    }

    #[test]
    fn otel_variables_map_to_elastic_options() {
        let env = map(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=res-name,service.version=1.2,deployment.environment.name=prod,team=a%20b,bad"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=ApiKey%20k123"),
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
        ]);
        let c = Config::resolve(&env, &HashMap::new(), &HashMap::new());
        assert_eq!(c.str("SERVICE_NAME"), Some("res-name"));
        assert_eq!(c.str("SERVICE_VERSION"), Some("1.2"));
        assert_eq!(c.str("ENVIRONMENT"), Some("prod"));
        assert_eq!(c.get("GLOBAL_LABELS"), &ConfigValue::Map(vec![("team".to_owned(), "a b".to_owned())]));
        assert_eq!(c.str("API_KEY"), Some("k123"));
        assert!(!c.bool("ENABLED"));
        assert_eq!(c.float("METRICS_INTERVAL"), 15_000.0);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn value_formats() {
        assert_eq!(parse(Kind::Size, "768kb"), Ok(ConfigValue::Int(786_432)));
        assert_eq!(parse(MILLIS, "250"), Ok(ConfigValue::Float(250.0)));
        assert_eq!(parse(SECONDS, "2"), Ok(ConfigValue::Float(2000.0)));
        assert_eq!(parse(MILLIS, "1m"), Ok(ConfigValue::Float(60_000.0)));
        assert_eq!(parse(Kind::SampleRate, "0.00001"), Ok(ConfigValue::Float(0.0001)));
        assert_eq!(parse(Kind::SampleRate, "0.123456"), Ok(ConfigValue::Float(0.1235)));
        assert!(parse(Kind::ServiceName, "my/service").is_err());
        assert!(parse(Kind::Url, "localhost:8200").is_err());
        assert_eq!(parse(Kind::Url, "http://apm:8200/"), Ok(ConfigValue::Str("http://apm:8200".into())));
        assert!(parse(Kind::Map, "a=1,b").is_err());
    }

    #[test]
    fn logs_go_to_otlp_when_asked_or_when_traces_do() {
        let config = |pairs: &[(&str, &str)]| Config::resolve(&map(pairs), &HashMap::new(), &HashMap::new());
        assert!(!config(&[]).sends_logs_over_otlp() && config(&[]).exports_logs());
        assert!(config(&[("OTEL_TRACES_EXPORTER", "otlp")]).otlp_logs.is_some());
        assert_eq!(config(&[("OTEL_LOGS_EXPORTER", "otlp")]).otlp_logs.unwrap().endpoint, "http://localhost:4318/v1/logs");
        let off = config(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_LOGS_EXPORTER", "none")]);
        assert!(!off.sends_logs_over_otlp() && !off.exports_logs() && off.otlp_logs.is_none());
        let grpc =
            config(&[("OTEL_LOGS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://c:4317")]);
        assert_eq!(grpc.otlp_logs.map(|s| (s.protocol, s.endpoint)), Some((crate::otlp::settings::Protocol::Grpc, "http://c:4317".to_owned())));
    }

    #[test]
    fn metrics_go_to_otlp_when_asked_or_when_traces_do() {
        let sends = |pairs: &[(&str, &str)]| Config::resolve(&map(pairs), &HashMap::new(), &HashMap::new()).sends_metrics_over_otlp();
        assert!(!sends(&[]));
        assert!(sends(&[("OTEL_TRACES_EXPORTER", "otlp")]));
        assert!(!sends(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_METRICS_EXPORTER", "none")]));
        assert!(!sends(&[("OTEL_TRACES_EXPORTER", "otlp"), ("ELASTIC_APM_METRICS_INTERVAL", "0")]));
        assert!(sends(&[("OTEL_METRICS_EXPORTER", "otlp")]));
        let bad_endpoint =
            Config::resolve(&map(&[("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "nope")]), &HashMap::new(), &HashMap::new());
        assert_eq!(bad_endpoint.warnings.len(), 1, "the generic variable is reported once: {:?}", bad_endpoint.warnings);
        assert!(bad_endpoint.otlp_metrics.is_none());
    }
}
