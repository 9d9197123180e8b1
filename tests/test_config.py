"""Configuration: precedence (environment > config dict > keyword defaults), typed values, the
OpenTelemetry variables, invalid values, secrets in logs, and what APM Server receives (metadata,
User-Agent, Authorization)."""

import logging
import re

import pytest
from conftest import exported

import oxapm

pytestmark = pytest.mark.metrics  # the defaults, metrics_interval included

SECRETS = ("s3cr3t-T0ken-value", "ap1-K3y-value", "0tel-Bearer-secret", "0tel-ApiKey-secret")


@pytest.fixture
def make_client():
    """Builds clients that are closed at teardown; the default exporter is the in-memory one."""
    clients = []

    def make(config=None, **kwargs):
        if "server_url" not in kwargs:
            kwargs.setdefault("traces_exporter", "memory")
        client = oxapm.Client(config, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _send_one(client, name="t"):
    client.begin_transaction("request")
    client.end_transaction(name, "success")
    client.close()


def _metadata(intake):
    events = intake.events()
    assert events, "nothing reached the intake"
    kind, metadata = events[0]
    assert kind == "metadata"
    return metadata


# --- precedence -------------------------------------------------------------------------------


def test_keyword_defaults_apply(make_client):
    client = make_client(service_name="from-kwargs")
    assert client.config.service_name == "from-kwargs"


def test_config_dict_wins_over_keyword_defaults(make_client):
    client = make_client({"SERVICE_NAME": "from-dict"}, service_name="from-kwargs", environment="kw-env")
    assert client.config.service_name == "from-dict"
    assert client.config.environment == "kw-env"


def test_environment_wins_over_config_dict_and_keywords(make_client, monkeypatch):
    monkeypatch.setenv("ELASTIC_APM_SERVICE_NAME", "from-env")
    client = make_client({"SERVICE_NAME": "from-dict"}, service_name="from-kwargs")
    assert client.config.service_name == "from-env"


def test_lower_case_keys_in_the_config_dict(make_client):
    client = make_client({"service_name": "lower", "environment": "staging"}, service_name="from-kwargs")
    assert client.config.service_name == "lower"
    assert client.config.environment == "staging"


def test_unset_service_name_has_the_elastic_default(make_client):
    assert make_client().config.service_name == "unknown-python-service"


def test_the_resolved_name_is_what_is_exported(make_client, monkeypatch, intake):
    monkeypatch.setenv("ELASTIC_APM_SERVICE_NAME", "from-env")
    client = make_client({"SERVICE_NAME": "from-dict"}, service_name="from-kwargs", server_url=intake.url)
    _send_one(client)
    assert _metadata(intake)["service"]["name"] == "from-env"


# --- typed values -----------------------------------------------------------------------------


def test_defaults_are_typed(make_client):
    config = make_client().config
    assert config.api_request_time == 10000.0 and isinstance(config.api_request_time, float)
    assert config.server_timeout == 5000.0
    assert config.metrics_interval == 30000.0
    assert config.api_request_size == 768 * 1024 and isinstance(config.api_request_size, int)
    assert config.transaction_sample_rate == 1.0
    assert config.enabled is True and config.recording is True and config.instrument is True
    assert config.stack_trace_limit == 50
    assert config.max_queue_size == 65536
    assert config.collect_local_variables == "errors"
    assert "password" in config.sanitize_field_names and isinstance(config.sanitize_field_names, list)
    assert config.service_version is None and config.global_labels is None


@pytest.mark.parametrize(
    "option, raw, expected",
    [
        ("api_request_time", "500ms", 500.0),
        ("api_request_time", "2s", 2000.0),
        ("api_request_time", "1m", 60000.0),
        ("api_request_time", "250", 250.0),  # a bare number is milliseconds
        ("server_timeout", "2", 2000.0),  # ... but seconds for server_timeout, as in Elastic
        ("server_timeout", "1500ms", 1500.0),
        ("metrics_interval", "10s", 10000.0),
        ("api_request_size", "1mb", 1024 * 1024),
        ("api_request_size", "10kb", 10240),
        ("api_request_size", "512b", 512),
        ("api_request_size", "300", 300),
        ("enabled", "false", False),
        ("recording", "False", False),
        ("capture_headers", "0", False),
        ("instrument", "true", True),
        ("instrument", True, True),
        ("recording", False, False),
        ("stack_trace_limit", "10", 10),
        ("stack_trace_limit", 7, 7),
        ("transaction_sample_rate", "0.5", 0.5),
        ("transaction_sample_rate", 0.123456, 0.1235),
        ("transaction_sample_rate", "0.00001", 0.0001),  # never rounded down to 0
        ("transaction_sample_rate", 0, 0.0),
        ("disabled_instrumentations", "a, b ,c", ["a", "b", "c"]),
        ("disabled_instrumentations", ["x", "y"], ["x", "y"]),
        ("global_labels", "team=checkout, tier=1", {"team": "checkout", "tier": "1"}),
        ("global_labels", {"team": "checkout", "tier": 1}, {"team": "checkout", "tier": "1"}),
        ("collect_local_variables", "ALL", "all"),
        ("service_version", "1.2.3", "1.2.3"),
        ("server_url", "http://apm:8200/", "http://apm:8200"),
    ],
)
def test_typed_values(make_client, option, raw, expected):
    value = getattr(make_client(**{option: raw}).config, option)
    assert value == expected
    assert type(value) is type(expected)


def test_typed_values_from_the_environment(make_client, monkeypatch):
    monkeypatch.setenv("ELASTIC_APM_API_REQUEST_TIME", "3s")
    monkeypatch.setenv("ELASTIC_APM_API_REQUEST_SIZE", "2kb")
    monkeypatch.setenv("ELASTIC_APM_CAPTURE_HEADERS", "false")
    monkeypatch.setenv("ELASTIC_APM_DISABLED_INSTRUMENTATIONS", "redis,sqlite")
    monkeypatch.setenv("ELASTIC_APM_GLOBAL_LABELS", "a=1,b=2")
    config = make_client().config
    assert config.api_request_time == 3000.0
    assert config.api_request_size == 2048
    assert config.capture_headers is False
    assert config.disabled_instrumentations == ["redis", "sqlite"]
    assert config.global_labels == {"a": "1", "b": "2"}


def test_unknown_option_is_an_attribute_error(make_client):
    config = make_client().config
    with pytest.raises(AttributeError):
        config.no_such_option


def test_global_labels_go_to_the_metadata(make_client, intake):
    client = make_client(service_name="shop", server_url=intake.url, global_labels={"team": "checkout", "tier": 1})
    _send_one(client)
    assert _metadata(intake)["labels"] == {"team": "checkout", "tier": "1"}


def test_global_label_keys_are_sanitized_in_the_metadata(make_client, intake):
    # As the Elastic agent does for every label: '.', '*' and '"' become '_'.
    client = make_client(service_name="shop", server_url=intake.url, global_labels="a.b=1,c*d=2")
    _send_one(client)
    assert _metadata(intake)["labels"] == {"a_b": "1", "c_d": "2"}


def test_disabled_client_does_nothing(make_client):
    client = make_client(enabled=False)
    assert client.begin_transaction("request") is None
    assert oxapm.get_transaction_id() is None
    assert client.capture_message("nothing") is None
    assert client.end_transaction("t") is None


def test_recording_false_records_nothing(make_client):
    client = make_client(recording=False)
    assert client.begin_transaction("request") is None
    assert client.capture_message("nothing") is None


# --- OpenTelemetry variables ------------------------------------------------------------------


def test_otel_service_name(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-name")
    assert make_client(service_name="from-kwargs").config.service_name == "otel-name"


def test_otel_service_name_wins_over_resource_attribute(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-resource")
    assert make_client().config.service_name == "from-resource"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-name")
    assert make_client().config.service_name == "otel-name"


def test_otel_resource_attributes(make_client, monkeypatch, intake):
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=res-name,service.version=2.0.1,deployment.environment.name=prod,team=a%20b,host.name=h1",
    )
    client = make_client(server_url=intake.url)
    config = client.config
    assert config.service_name == "res-name"
    assert config.service_version == "2.0.1"
    assert config.environment == "prod"
    _send_one(client)
    metadata = _metadata(intake)
    service = metadata["service"]
    assert (service["name"], service["version"], service["environment"]) == ("res-name", "2.0.1", "prod")
    # The other attributes become global labels (keys sanitized as every label key is).
    assert metadata["labels"] == {"team": "a b", "host_name": "h1"}


def test_deprecated_deployment_environment_attribute(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=old")
    assert make_client().config.environment == "old"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=old,deployment.environment.name=new")
    assert make_client().config.environment == "new"


@pytest.mark.parametrize(
    "headers, expected",
    [
        ("Authorization=ApiKey x", "ApiKey x"),
        ("Authorization=ApiKey%20x", "ApiKey x"),
        ("authorization=Bearer y", "Bearer y"),
        ("other=1,Authorization=Bearer%20y", "Bearer y"),
    ],
)
def test_otel_exporter_headers_authorization(make_client, monkeypatch, intake, headers, expected):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", headers)
    _send_one(make_client(service_name="shop", server_url=intake.url))
    assert intake.requests[-1]["headers"]["authorization"] == expected


def test_otel_sdk_disabled(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    client = make_client(service_name="shop")
    assert client.config.enabled is False
    assert client.begin_transaction("request") is None
    assert client.capture_message("x") is None


def test_otel_sdk_disabled_false_keeps_the_agent_on(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    client = make_client(service_name="shop", enabled=False)
    # The environment variable is read before the keyword default.
    assert client.config.enabled is True
    assert client.begin_transaction("request") is not None
    client.end_transaction("t")
    exported(client)


def test_otel_metric_export_interval(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "15000")
    assert make_client().config.metrics_interval == 15000.0


def test_otel_traces_exporter(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "memory")
    client = oxapm.Client(service_name="shop")
    try:
        assert client.config.traces_exporter == ["memory"]
        client.begin_transaction("request")
        client.end_transaction("t")
        assert len(exported(client).transactions) == 1
    finally:
        client.close()


def test_elastic_variables_win_over_otel(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-name")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=otel-version,deployment.environment.name=otel-env,a=1")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "15000")
    monkeypatch.setenv("ELASTIC_APM_SERVICE_NAME", "elastic-name")
    monkeypatch.setenv("ELASTIC_APM_SERVICE_VERSION", "elastic-version")
    monkeypatch.setenv("ELASTIC_APM_ENVIRONMENT", "elastic-env")
    monkeypatch.setenv("ELASTIC_APM_ENABLED", "true")
    monkeypatch.setenv("ELASTIC_APM_METRICS_INTERVAL", "5s")
    monkeypatch.setenv("ELASTIC_APM_GLOBAL_LABELS", "b=2")
    config = make_client().config
    assert config.service_name == "elastic-name"
    assert config.service_version == "elastic-version"
    assert config.environment == "elastic-env"
    assert config.enabled is True
    assert config.metrics_interval == 5000.0
    assert config.global_labels == {"b": "2"}


def test_elastic_api_key_wins_over_otel_headers(make_client, monkeypatch, intake):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=ApiKey from-otel")
    monkeypatch.setenv("ELASTIC_APM_API_KEY", "from-elastic")
    _send_one(make_client(service_name="shop", server_url=intake.url))
    assert intake.requests[-1]["headers"]["authorization"] == "ApiKey from-elastic"


def test_otel_variables_win_over_the_config_dict(make_client, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-name")
    assert make_client({"SERVICE_NAME": "from-dict"}).config.service_name == "otel-name"


# --- invalid values ---------------------------------------------------------------------------


def _config_warnings(caplog):
    return [r for r in caplog.records if r.name == "oxapm.config" and r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    "option, raw, default",
    [
        ("transaction_sample_rate", "2", 1.0),
        ("transaction_sample_rate", "-0.1", 1.0),
        ("transaction_sample_rate", "half", 1.0),
        ("api_request_time", "soon", 10000.0),
        ("api_request_time", "10 parsecs", 10000.0),
        ("api_request_size", "huge", 768 * 1024),
        ("service_name", "bad/name", "unknown-python-service"),
        ("stack_trace_limit", "many", 50),
        ("enabled", "perhaps", True),
        ("collect_local_variables", "sometimes", "errors"),
        ("server_url", "localhost:8200", None),
        ("global_labels", "a=1,b", None),
    ],
)
def test_invalid_value_warns_once_and_uses_the_default(make_client, caplog, option, raw, default):
    caplog.set_level(logging.WARNING, logger="oxapm.config")
    client = make_client(**{option: raw})
    assert getattr(client.config, option) == default
    (record,) = _config_warnings(caplog)
    message = record.getMessage()
    assert option in message.lower()
    assert ('"%s"' % raw) in message or ("'%s'" % raw) in message


def test_each_invalid_value_warns_once(make_client, caplog):
    caplog.set_level(logging.WARNING, logger="oxapm.config")
    client = make_client(transaction_sample_rate="2", api_request_time="soon", service_name="bad/name")
    assert client.config.transaction_sample_rate == 1.0
    assert client.config.api_request_time == 10000.0
    assert client.config.service_name == "unknown-python-service"
    messages = [r.getMessage() for r in _config_warnings(caplog)]
    assert len(messages) == 3
    for option, raw in (("transaction_sample_rate", "2"), ("api_request_time", "soon"), ("service_name", "bad/name")):
        (match,) = [m for m in messages if option in m.lower()]
        assert raw in match


def test_invalid_environment_value_names_the_variable(make_client, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="oxapm.config")
    monkeypatch.setenv("ELASTIC_APM_TRANSACTION_SAMPLE_RATE", "2")
    client = make_client(transaction_sample_rate="0.5")
    # The next source is used: here the keyword default.
    assert client.config.transaction_sample_rate == 0.5
    (record,) = _config_warnings(caplog)
    assert "ELASTIC_APM_TRANSACTION_SAMPLE_RATE" in record.getMessage() and '"2"' in record.getMessage()


def test_invalid_otel_value_warns_once_and_falls_back(make_client, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="oxapm.config")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "bad/name")
    client = make_client(service_name="kw-name")
    assert client.config.service_name == "kw-name"
    (record,) = _config_warnings(caplog)
    assert '"bad/name"' in record.getMessage() and "service_name" in record.getMessage().lower()


@pytest.mark.parametrize("variable, raw", [("OTEL_METRIC_EXPORT_INTERVAL", "soon"), ("OTEL_SERVICE_NAME", "bad/name")])
def test_invalid_otel_value_warning_names_the_variable_and_its_value(make_client, caplog, monkeypatch, variable, raw):
    caplog.set_level(logging.WARNING, logger="oxapm.config")
    monkeypatch.setenv(variable, raw)
    make_client()
    (record,) = _config_warnings(caplog)
    assert variable in record.getMessage() and ('"%s"' % raw) in record.getMessage()


def test_invalid_dict_value_falls_back_to_the_keyword(make_client, caplog):
    caplog.set_level(logging.WARNING, logger="oxapm.config")
    client = make_client({"SERVICE_NAME": "bad/name"}, service_name="good-name")
    assert client.config.service_name == "good-name"
    assert len(_config_warnings(caplog)) == 1


def test_valid_configuration_does_not_warn(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="oxapm")
    make_client(service_name="fine", transaction_sample_rate="0.5", api_request_time="1s", secret_token="x")
    assert _config_warnings(caplog) == []


def test_invalid_value_still_gives_a_working_client(make_client):
    client = make_client(transaction_sample_rate="2", api_request_time="soon")
    client.begin_transaction("request")
    client.end_transaction("t")
    assert len(exported(client).transactions) == 1


# --- secrets ----------------------------------------------------------------------------------


def _all_log_text(caplog):
    text = []
    for record in caplog.records:
        text.append(record.getMessage())
        if record.exc_info:
            text.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(text)


@pytest.mark.parametrize(
    "otel_headers",
    [
        "Authorization=Bearer 0tel-Bearer-secret",
        "Authorization=ApiKey 0tel-ApiKey-secret",
        "Authorization=Bearer%ZZ0tel-Bearer-secret",  # bad percent-encoding
        "Authorization=ApiKey%2",  # truncated percent-encoding
        "Authorization=Bearer%FF%FE0tel-Bearer-secret",  # not UTF-8
        "x=1,Authorization=Bearer 0tel-Bearer-secret,=0tel-ApiKey-secret",  # an empty key
    ],
)
def test_secrets_never_appear_in_logs(make_client, caplog, monkeypatch, intake, otel_headers):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", otel_headers)
    monkeypatch.setenv("ELASTIC_APM_TRANSACTION_SAMPLE_RATE", "2")  # something to warn about
    intake.status = 401  # and a failing request, which the exporter logs
    client = make_client(
        {"SECRET_TOKEN": "s3cr3t-T0ken-value"}, api_key="ap1-K3y-value", server_url=intake.url, api_request_time="bogus"
    )
    shown = repr(client.config) + str(client.config)
    _send_one(client)
    assert intake.requests, "the request was sent"
    text = _all_log_text(caplog)
    assert "transaction_sample_rate" in text.lower() and "401" in text  # the logs were captured
    for secret in SECRETS:
        assert secret not in text
        assert secret not in shown


@pytest.mark.parametrize(
    "otel_headers",
    [
        "authorization:Bearer 0tel-Bearer-secret",  # ':' instead of '='
        "Authorization=Bearer abc,0tel-Bearer-secret",  # a token with a comma
    ],
)
def test_secrets_in_entries_without_equals_never_appear_in_logs(make_client, caplog, monkeypatch, otel_headers):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", otel_headers)
    make_client(service_name="shop")
    text = _all_log_text(caplog)
    assert "OTEL_EXPORTER_OTLP_HEADERS" in text  # the malformed entry was reported
    assert "0tel-Bearer-secret" not in text


def test_secrets_are_readable_on_the_config(make_client):
    config = make_client(secret_token="s3cr3t-T0ken-value", api_key="ap1-K3y-value").config
    assert config.secret_token == "s3cr3t-T0ken-value"
    assert config.api_key == "ap1-K3y-value"


# --- what APM Server receives -----------------------------------------------------------------


def test_user_agent_with_service_version(make_client, intake):
    _send_one(make_client(service_name="test-service", service_version="1.0", server_url=intake.url))
    agent = intake.requests[-1]["headers"]["user-agent"]
    assert re.match(r"^apm-agent-python/[^ ]* \(test-service 1\.0\)$", agent), agent
    assert agent.startswith("apm-agent-python/%s " % oxapm.VERSION)


def test_user_agent_with_service_name_only(make_client, intake):
    _send_one(make_client(service_name="test-service", server_url=intake.url))
    agent = intake.requests[-1]["headers"]["user-agent"]
    assert re.match(r"^apm-agent-python/[^ ]* \(test-service\)$", agent), agent


def test_user_agent_escaping(make_client, intake):
    _send_one(make_client(service_name="myService", service_version="123(:\\;)456", server_url=intake.url))
    agent = intake.requests[-1]["headers"]["user-agent"]
    assert re.match(r"^apm-agent-python/[^ ]* \(myService 123_:_;_456\)$", agent), agent


def test_user_agent_with_an_invalid_service_name(make_client, intake):
    _send_one(make_client(service_name="myService/()<>@", server_url=intake.url))
    agent = intake.requests[-1]["headers"]["user-agent"]
    assert re.match(r"^apm-agent-[a-z]+/[^ ]* \(.*\)$", agent), agent


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"api_key": "RTNxMjlXNEJt"}, "ApiKey RTNxMjlXNEJt"),
        ({"secret_token": "secr3tT0ken"}, "Bearer secr3tT0ken"),
        ({"api_key": "MjlXNEJasdfDt", "secret_token": "secr3tT0ken"}, "ApiKey MjlXNEJasdfDt"),
        ({}, None),
    ],
)
def test_authorization_header(make_client, intake, settings, expected):
    _send_one(make_client(service_name="shop", server_url=intake.url, **settings))
    assert intake.requests[-1]["headers"].get("authorization") == expected


def test_api_key_in_the_environment_wins_over_a_secret_token_in_the_dict(make_client, monkeypatch, intake):
    monkeypatch.setenv("ELASTIC_APM_API_KEY", "env-key")
    _send_one(make_client({"SECRET_TOKEN": "dict-token"}, service_name="shop", server_url=intake.url))
    assert intake.requests[-1]["headers"]["authorization"] == "ApiKey env-key"


def test_metadata_reflects_the_configuration(make_client, intake):
    client = make_client(
        service_name="shop",
        service_version="1.0",
        environment="staging",
        service_node_name="node-1",
        hostname="configured-host",
        server_url=intake.url,
    )
    _send_one(client)
    metadata = _metadata(intake)
    assert metadata["service"]["name"] == "shop"
    assert metadata["service"]["version"] == "1.0"
    assert metadata["service"]["environment"] == "staging"
    assert metadata["service"]["node"] == {"configured_name": "node-1"}
    assert metadata["system"]["configured_hostname"] == "configured-host"
