"""First on PYTHONPATH under ``oxapm run`` (this directory holds nothing else): Python imports this
module at start-up; it starts the agent, then runs the ``sitecustomize`` it hides, if any, as
Python would have."""

import os
import sys


def _start_agent() -> None:
    try:
        from oxapm.zerocode import startup
    except Exception as exc:  # an interpreter without oxapm, or a broken installation
        import logging

        logging.getLogger("oxapm").warning(
            "oxapm could not be imported (%s: %s); the program runs uninstrumented", type(exc).__name__, exc
        )
        return
    startup.start()


def _run_hidden_sitecustomize() -> None:
    """This directory leaves ``sys.path`` (the program need not see it; subprocesses still get it
    from PYTHONPATH), and the next ``sitecustomize`` on it is imported in this module's place. Its
    own errors are reported by ``site`` as usual."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    ours = sys.modules.pop("sitecustomize")
    try:
        import sitecustomize  # noqa: F401
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
        sys.modules["sitecustomize"] = ours


_start_agent()
_run_hidden_sitecustomize()
