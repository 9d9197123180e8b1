//! What the configuration decides about records, compiled once per configuration: which URLs
//! start no transaction, and which fields are redacted. The engine keeps it beside its config and
//! shares it with the export thread, where every record is finished before any exporter sees it.
//! Central configuration builds a new `Policy` and hands it to both.

use crate::config::Config;
use crate::model::Event;
use crate::sanitize::FieldNames;
use crate::wildcard::WildcardMatchers;
use crate::{bridge, sanitize};

#[derive(Debug, Default)]
pub struct Policy {
    /// `transaction_ignore_urls`: request paths that web frameworks do not trace.
    pub transaction_ignore_urls: WildcardMatchers,
    /// `sanitize_field_names`: fields whose values never leave the process.
    pub sanitize_field_names: FieldNames,
}

impl Policy {
    pub fn new(config: &Config) -> Policy {
        Policy {
            transaction_ignore_urls: WildcardMatchers::new(config.list("TRANSACTION_IGNORE_URLS")),
            sanitize_field_names: FieldNames::new(WildcardMatchers::new(config.list("SANITIZE_FIELD_NAMES"))),
        }
    }

    pub fn ignores_url(&self, path: &str) -> bool {
        self.transaction_ignore_urls.matches(path)
    }

    /// On the export thread: the Elastic shape of what the OpenTelemetry API started, secrets
    /// redacted. (The service target of exit spans is the intake encoder's to write.)
    pub fn finish(&self, event: &mut Event) {
        bridge::apply(event);
        match event {
            Event::Span(_) => {}
            Event::Transaction(transaction) => sanitize::http_context(&mut transaction.context, &self.sanitize_field_names),
            Event::Error(error) => sanitize::http_context(&mut error.context, &self.sanitize_field_names),
            // Names, numbers and the engine's own labels: nothing to redact.
            Event::Metricset(_) | Event::Metrics(_) => {}
            Event::Log(record) => sanitize::attributes(&mut record.attributes, &self.sanitize_field_names),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ErrorRecord, TransactionRecord};
    use serde_json::json;
    use std::collections::HashMap;

    fn policy(env: &[(&str, &str)]) -> Policy {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Policy::new(&Config::resolve(&env, &HashMap::new(), &HashMap::new()))
    }

    #[test]
    fn ignored_urls_come_from_the_option() {
        assert!(!policy(&[]).ignores_url("/health"));
        let policy = policy(&[("ELASTIC_APM_TRANSACTION_IGNORE_URLS", "/health*, *.CSS,(?-i)/Admin/*")]);
        assert!(policy.ignores_url("/healthz") && policy.ignores_url("/static/site.css") && policy.ignores_url("/Admin/users"));
        assert!(!policy.ignores_url("/api/health") && !policy.ignores_url("/admin/users"));
    }

    #[test]
    fn records_are_finished_by_kind() {
        let policy = policy(&[]);
        let headers = json!({"request": {"method": "GET", "headers": {"Authorization": "Bearer x"}}});
        let mut transaction = Event::Transaction(Box::new(TransactionRecord { context: headers.as_object().cloned().unwrap(), ..Default::default() }));
        let mut error = Event::Error(Box::new(ErrorRecord { context: headers.as_object().cloned().unwrap(), ..Default::default() }));
        for event in [&mut transaction, &mut error] {
            policy.finish(event);
        }
        let (Event::Transaction(transaction), Event::Error(error)) = (transaction, error) else { unreachable!() };
        assert_eq!(transaction.context["request"]["headers"]["Authorization"], sanitize::REDACTED);
        assert_eq!(error.context["request"]["headers"]["Authorization"], sanitize::REDACTED);
    }
}
