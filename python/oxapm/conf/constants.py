"""Constants of the Elastic APM Python agent's API, under the same names."""


class OUTCOME:
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


ERROR = "error"
TRANSACTION = "transaction"
SPAN = "span"

#: Header names used for distributed tracing.
TRACEPARENT_HEADER_NAME = "traceparent"
TRACEPARENT_LEGACY_HEADER_NAME = "elastic-apm-traceparent"
TRACESTATE_HEADER_NAME = "tracestate"
