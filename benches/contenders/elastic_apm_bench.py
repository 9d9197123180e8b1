"""elastic-apm: the reference Python agent oxapm is API-compatible with."""

from _elastic_style import make_setup
from _workload import main

if __name__ == "__main__":
    main("elastic-apm", make_setup("elasticapm"), dist="elastic-apm")
