"""OpenTelemetry SDK over the oxapm engine: tracer provider and propagators."""
