"""oxapm exporting over OTLP/HTTP protobuf (configured by OTEL_* variables) instead of intake."""

from _elastic_style import make_setup
from _workload import main

if __name__ == "__main__":
    main("oxapm-otlp", make_setup("oxapm", otlp=True), dist="oxapm")
