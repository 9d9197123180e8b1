"""The last step of ``oxapm run``: the program replaces this process, with the agent's settings in
its environment and ``sitedir`` first on ``PYTHONPATH``, so that its interpreter, and every Python
subprocess that inherits the environment, starts the agent."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, NoReturn

SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sitedir")


def python_path(current: str) -> str:
    """``current`` with SITE_DIR first, once."""
    entries = [entry for entry in current.split(os.pathsep) if entry != SITE_DIR] if current else []
    return os.pathsep.join([SITE_DIR, *entries])


def exec_with_agent(command: List[str], settings: Dict[str, str]) -> NoReturn:
    """Runs ``command`` (looked up on PATH) in place of this process; raises OSError when it
    cannot be started."""
    os.environ.update(settings)
    os.environ["PYTHONPATH"] = python_path(os.environ.get("PYTHONPATH", ""))
    os.execvp(command[0], command)
