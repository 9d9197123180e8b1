//! The OTLP resource and instrumentation scope of this process, from the same intake `metadata`
//! object the Elastic exporter sends, so both formats describe the service the same way, plus
//! what the OpenTelemetry resource detectors add (process, host, os, instance id, SDK, distro).

use super::proto::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, Resource};
use super::traces::{attribute, string};
use serde_json::Value;

/// Intake metadata fields (a path into the object) and the resource attribute each becomes.
const METADATA_ATTRIBUTES: &[(&[&str], &str)] = &[
    (&["service", "name"], "service.name"),
    (&["service", "version"], "service.version"),
    (&["service", "environment"], "deployment.environment.name"),
    (&["service", "node", "configured_name"], "service.instance.id"),
    (&["service", "runtime", "name"], "process.runtime.name"),
    (&["service", "runtime", "version"], "process.runtime.version"),
    (&["process", "pid"], "process.pid"),
    (&["process", "ppid"], "process.parent_pid"),
    (&["system", "detected_hostname"], "host.name"),
    (&["system", "configured_hostname"], "host.name"),
    (&["system", "architecture"], "host.arch"),
];

/// `global_labels` are given with their original keys: OTel attribute names keep their dots.
pub fn resource(metadata: &Value, global_labels: &[(String, String)], agent_version: &str) -> Resource {
    let mut attributes: Vec<KeyValue> = Vec::new();
    let mut set = |kv: KeyValue| match attributes.iter_mut().find(|a| a.key == kv.key) {
        Some(slot) => *slot = kv,
        None => attributes.push(kv),
    };
    for kv in detected(metadata) {
        set(kv);
    }
    for (path, key) in METADATA_ATTRIBUTES {
        let value = path.iter().try_fold(metadata, |v, step| v.get(step));
        match value {
            Some(Value::String(s)) => set(string(key, s.as_str())),
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    set(attribute(key, any_value::Value::IntValue(i)));
                }
            }
            _ => {}
        }
    }
    set(string("telemetry.sdk.name", "oxapm"));
    set(string("telemetry.sdk.language", "python"));
    set(string("telemetry.sdk.version", agent_version));
    set(string("telemetry.distro.name", "oxapm"));
    set(string("telemetry.distro.version", agent_version));
    for (key, value) in global_labels {
        set(string(key, value.as_str()));
    }
    Resource { attributes, dropped_attributes_count: 0 }
}

/// What the process, os and host detectors report that the intake metadata does not carry.
fn detected(metadata: &Value) -> Vec<KeyValue> {
    let mut out = vec![string("os.type", os_type()), string("host.arch", host_arch())];
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        out.push(string("os.description", format!("{} {}", std::env::consts::OS, release.trim())));
    }
    if let Some(path) = std::env::current_exe().ok().and_then(|p| p.to_str().map(str::to_owned)) {
        out.push(string("process.executable.name", path.rsplit('/').next().unwrap_or(&path).to_owned()));
        out.push(string("process.executable.path", path));
    }
    if let Some(Value::Array(argv)) = metadata.get("process").and_then(|p| p.get("argv")) {
        let args = argv.iter().filter_map(|a| a.as_str()).map(|a| AnyValue { value: Some(any_value::Value::StringValue(a.to_owned())) }).collect();
        out.push(attribute("process.command_args", any_value::Value::ArrayValue(ArrayValue { values: args })));
    }
    // A configured node name (read from the metadata) replaces this one.
    out.push(string("service.instance.id", crate::ids::random_uuid()));
    out
}

/// OpenTelemetry's `os.type` values.
fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// OpenTelemetry's `host.arch` values.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        other => other,
    }
}

pub fn scope(agent_version: &str) -> InstrumentationScope {
    InstrumentationScope { name: "oxapm".to_owned(), version: agent_version.to_owned(), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_and_labels_become_resource_attributes() {
        let metadata = json!({
            "service": {"name": "shop", "environment": "prod", "runtime": {"name": "CPython", "version": "3.11.2"}},
            "process": {"pid": 42},
            "system": {"detected_hostname": "box", "configured_hostname": "web-1"},
        });
        let resource = resource(&metadata, &[("k8s.pod.name".into(), "pod-7".into())], "1.0");
        let get = |key: &str| resource.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).and_then(|v| v.value);
        assert_eq!(get("service.name"), Some(any_value::Value::StringValue("shop".into())));
        assert_eq!(get("deployment.environment.name"), Some(any_value::Value::StringValue("prod".into())));
        assert_eq!(get("process.pid"), Some(any_value::Value::IntValue(42)));
        assert_eq!(get("host.name"), Some(any_value::Value::StringValue("web-1".into())));
        assert_eq!(get("k8s.pod.name"), Some(any_value::Value::StringValue("pod-7".into())));
        assert_eq!(resource.attributes.iter().filter(|a| a.key == "host.name").count(), 1);
    }
}
