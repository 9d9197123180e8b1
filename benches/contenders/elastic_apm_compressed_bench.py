"""elastic-apm with span compression at work: each transaction's spans are identical database calls."""

from _elastic_style import make_setup
from _workload import main

if __name__ == "__main__":
    main("elastic-apm-compressed", make_setup("elasticapm", exit_spans=True), dist="elastic-apm")
