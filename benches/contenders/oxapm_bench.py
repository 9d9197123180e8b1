"""oxapm: Elastic-compatible API backed by the Rust engine."""

from _elastic_style import make_setup
from _workload import main

if __name__ == "__main__":
    main("oxapm", make_setup("oxapm"), dist="oxapm")
