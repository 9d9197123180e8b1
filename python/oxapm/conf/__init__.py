"""Configuration, resolved by the engine from the environment, the config dict and keyword
arguments (in that order of precedence). Options read as attributes: ``client.config.service_name``."""

from __future__ import annotations

import os

from oxapm import _core
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

logger = LazyLogger("oxapm.config")

# `log_level` values as levels of the `oxapm` loggers ("off" above every level there is).
_LOG_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50, "off": 1000}


class Config:
    """Every option by its lower-case Elastic name; unset options read as ``None``. The values are
    plain attributes: they are read on every transaction."""

    def __init__(self, config: Optional[Dict[str, Any]] = None, inline: Optional[Dict[str, Any]] = None):
        self._resolved = _core.Config(dict(os.environ), dict(config or {}), dict(inline or {}))
        for warning in self._resolved.warnings:
            logger.warning("%s", warning)
        self.__dict__.update(self._resolved.as_dict())
        if self.log_level is not None:
            _set_log_level(self.log_level)

    def update(self, changes: Dict[str, Any]) -> None:
        """Takes the values central configuration changed (option name to new value)."""
        self.__dict__.update(changes)
        if "log_level" in changes:
            _set_log_level(self.log_level)

    def __repr__(self) -> str:
        return "<oxapm Config service_name=%r>" % (self.service_name,)


def _set_log_level(level: Optional[str]) -> None:
    """``log_level`` sets the level of the ``oxapm`` loggers; unset, they follow the root logger."""
    import logging

    logging.getLogger("oxapm").setLevel(_LOG_LEVELS.get(level or "", logging.NOTSET))
