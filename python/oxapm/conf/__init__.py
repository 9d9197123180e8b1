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


class Config:
    """Every option by its lower-case Elastic name; unset options read as ``None``. The values are
    plain attributes: they are read on every transaction."""

    def __init__(self, config: Optional[Dict[str, Any]] = None, inline: Optional[Dict[str, Any]] = None):
        self._resolved = _core.Config(dict(os.environ), dict(config or {}), dict(inline or {}))
        for warning in self._resolved.warnings:
            logger.warning("%s", warning)
        self.__dict__.update(self._resolved.as_dict())

    def __repr__(self) -> str:
        return "<oxapm Config service_name=%r>" % (self.service_name,)
