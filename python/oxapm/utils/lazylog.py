"""Loggers that import ``logging`` when first used.

``oxapm run`` starts the agent in every interpreter, and importing ``logging`` alone costs more than
the rest of that start; the agent logs only when something is wrong.
"""


class LazyLogger:
    """Stands for ``logging.getLogger(name)``: every attribute is the real logger's."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str):
        import logging

        return getattr(logging.getLogger(self.name), attribute)

