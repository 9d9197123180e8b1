"""``Client``: configuration, the engine, transactions and error capture.

Modules needed only to describe errors or the host (stacks, datetime, platform, socket) are
imported where they are used: importing oxapm stays cheap.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from _weakref import ref as weak_ref  # weakref.ref, without the weakref module's imports

from oxapm import _core, traces
from oxapm.conf import Config
from oxapm.utils.disttracing import TraceParent
from oxapm.utils.encoding import keyword_field, sanitize_key
from oxapm.utils.lazylog import LazyLogger
from oxapm.version import VERSION

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    import datetime
    from typing import Any, Callable, Dict, List, Optional, Tuple

logger = LazyLogger("oxapm")

_client: Optional["Client"] = None

# In a forked child, the engines inherited from the parent (see Client._after_fork).
_engines_of_parent: List[_core.Engine] = []


def get_client() -> Optional["Client"]:
    """The most recently created ``Client``, as the Elastic agent's singleton."""
    return _client


class Client:
    """The agent. ``Client({"SERVICE_NAME": "shop"}, **defaults)``: options come from
    ``ELASTIC_APM_*`` (and OpenTelemetry) environment variables first, then ``config``, then
    ``defaults``."""

    def __init__(self, config: Optional[Dict[str, Any]] = None, **inline: Any):
        global _client
        self.config = Config(config, inline)
        self._engine: Optional[_core.Engine] = None
        self._gc_callback: Optional[Callable[[str, Dict[str, int]], None]] = None
        self._open = False
        self._pid = os.getpid()
        # Central configuration's latest values, as the server sent them (a forked child's new
        # engine takes them too).
        self._remote_config: Dict[str, str] = {}
        if self.config.enabled:
            self._engine = _core.Engine(self.config._resolved, _metadata(self.config), VERSION)
            self._open = True
            self._count_collections(self._engine)
            atexit.register(_weakly(self, "close"))
            os.register_at_fork(after_in_child=_weakly(self, "_after_fork"))
            self._start_central_config()
        self._configure_logging()
        _client = self

    def _configure_logging(self) -> None:
        """Trace ids on every log record (``log_correlation``) and, with
        ``log_ecs_reformatting=override``, ECS JSON from the root logger's handlers."""
        try:
            from oxapm import log_correlation

            log_correlation.configure(self)
            if self.config.log_ecs_reformatting == "override":
                from oxapm.handlers.ecs import override_root_formatters

                override_root_formatters()
        except Exception:  # logging set up by the application must keep working as it was
            logger.warning("could not set up log correlation", exc_info=True)

    #: Open, with ``recording`` on (central configuration can turn it off).
    is_recording = property(_core.client_is_recording)

    def begin_transaction(
        self,
        transaction_type: str,
        trace_parent: Optional[TraceParent] = None,
        start: Optional[float] = None,
        auto_activate: bool = True,
        links: Optional[List[TraceParent]] = None,
    ) -> Optional[traces.Transaction]:
        """Starts a transaction (a child of ``trace_parent`` when given) and makes it current."""
        if not isinstance(trace_parent, TraceParent):
            trace_parent = None
        transaction = self._begin_transaction(
            str(transaction_type),
            trace_parent.to_string() if trace_parent is not None else None,
            trace_parent.tracestate if trace_parent is not None else None,
            traces._link_ids(links) if isinstance(links, (list, tuple)) else None,
            _seconds(start),
        )
        if transaction is not None and auto_activate:
            traces.set_transaction(transaction)
        return transaction

    def _begin_transaction(
        self,
        transaction_type: str,
        traceparent: Optional[str] = None,
        tracestate: Optional[str] = None,
        links: Optional[List[tuple]] = None,
        start: Optional[float] = None,
    ) -> Optional[traces.Transaction]:
        """Starts a transaction, not made current: in the trace of the ``traceparent`` and
        ``tracestate`` headers when given (the instrumentations pass the headers they read)."""
        if not self.is_recording:
            return None
        return _core.begin_transaction(self, transaction_type, traceparent, tracestate, links, start)

    def end_transaction(self, name: Optional[str] = None, result: str = "", duration: Optional[float] = None) -> Optional[traces.Transaction]:
        """Ends the current transaction. ``name`` and ``result`` apply only when not set before
        (``set_transaction_name`` and ``set_transaction_result`` win); ``duration`` in seconds."""
        transaction = traces.get_transaction()
        if transaction is None:
            return None
        traces.set_transaction(None)
        if not transaction.name and name is not None:
            transaction.name = str(name)
        if transaction.result is None and result:
            transaction.result = str(result)
        transaction._end(_seconds(duration))
        return transaction

    def capture_exception(
        self,
        exc_info: Any = None,
        handled: bool = True,
        date: Optional[datetime.datetime] = None,
        context: Optional[Dict[str, Any]] = None,
        custom: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> Optional[str]:
        """Captures the exception being handled (or ``exc_info``); returns the error id."""
        if not self.is_recording:
            return None
        exc = _exception_from(exc_info)
        if exc is None:
            return None
        from oxapm import stacks

        exception = stacks.exception_info(exc, self.config)
        exception["handled"] = bool(handled)
        culprit = stacks.culprit(exception.get("stacktrace") or [])
        return self._capture(exception=exception, culprit=culprit, date=date, context=context, custom=custom)

    def capture_message(
        self,
        message: Optional[str] = None,
        param_message: Optional[Dict[str, Any]] = None,
        stack: Optional[bool] = None,
        exc_info: Any = None,
        date: Optional[datetime.datetime] = None,
        context: Optional[Dict[str, Any]] = None,
        custom: Optional[Dict[str, Any]] = None,
        level: Optional[str] = None,
        logger_name: Optional[str] = None,
        **kwargs: Any,
    ) -> Optional[str]:
        """Captures a message (``message`` or ``{"message": fmt, "params": args}``), with the call
        stack unless ``stack=False``, and the exception being handled if any; returns its id."""
        if not self.is_recording:
            return None
        if isinstance(param_message, dict):
            template = str(param_message.get("message", ""))
            params = param_message.get("params")
            try:
                text = template % params if params is not None else template
            except (TypeError, ValueError):
                text = template
        elif message is not None:
            template = text = str(message)
        else:
            logger.warning("capture_message needs message or param_message; nothing captured")
            return None
        from oxapm import stacks

        # As the Elastic agent's Message event: param_message always, level and logger defaulted.
        log: Dict[str, Any] = {
            "message": text,
            "param_message": keyword_field(template),
            "level": keyword_field(level or "error"),
            "logger_name": keyword_field(logger_name or "__main__"),
        }
        culprit = None
        if stack is None or stack:
            frames = stacks.stack_frames(1, self.config, for_error=True)
            log["stacktrace"] = frames
            culprit = stacks.culprit(frames, innermost_first=True)
        exception = None
        exc = _exception_from(exc_info) if exc_info is not False else None
        if exc is not None:
            exception = stacks.exception_info(exc, self.config)
            exception["handled"] = True
        return self._capture(log=log, exception=exception, culprit=culprit, date=date, context=context, custom=custom)

    def _capture(self, date: Optional[datetime.datetime], **fields: Any) -> Optional[str]:
        current = traces._current.get()
        transaction = traces.get_transaction()
        if transaction is not None and transaction.ended:
            transaction = None
        parent_id = current.id if isinstance(current, traces.Span) else None
        for name in ("context", "custom"):
            if not isinstance(fields[name], dict):
                fields[name] = None
        return self._engine.capture_error(
            timestamp=_epoch_seconds(date), transaction=transaction, parent_id=parent_id, **fields
        )

    def _start_central_config(self) -> None:
        """APM Server's central configuration, polled by an engine thread (when central_config is
        true and events go to APM Server), and OpAMP's (``ELASTIC_OTEL_OPAMP_ENDPOINT``)."""
        self._engine.start_central_config(_weakly(self, "_central_config_changed"))
        opamp_endpoint = os.environ.get("ELASTIC_OTEL_OPAMP_ENDPOINT")
        if opamp_endpoint:
            self._engine.start_opamp(opamp_endpoint, VERSION, _weakly(self, "_opamp_config_applied"))

    def _opamp_config_applied(self, changes: Dict[str, Any], deactivate_all: bool, deactivated: List[str]) -> None:
        """OpAMP's remote configuration, applied by the engine: the attributes of ``config`` follow
        and the instrumentations it names are turned off."""
        from oxapm.instrumentation import control

        self.config.update(changes)
        control.set_deactivated(deactivated, deactivate_all)

    def _central_config_changed(self, remote: Dict[str, str], changes: Dict[str, Any]) -> None:
        self._remote_config = remote
        self.config.update(changes)

    def _reconfigure(self, remote: Dict[str, str]) -> None:
        """Applies central configuration's latest values (an option left out reverts to its local
        value); the attributes of ``config`` follow."""
        self._central_config_changed(dict(remote), self._engine.reconfigure(remote))

    def _after_fork(self) -> None:
        """In a forked child: the parent's export thread does not exist here, and its queue holds
        the parent's events. A fresh engine (new thread, empty queue, this pid in the metadata)
        takes over; the parent's engine is left untouched."""
        self._pid = os.getpid()
        _core.reseed_ids()
        if self._open:
            # Kept, never dropped: a lock its thread held at the fork stays held in this process.
            _engines_of_parent.append(self._engine)
            self._engine = _core.Engine(self.config._resolved, _metadata(self.config), VERSION)
            self._count_collections(self._engine)
            if self._remote_config:
                self._engine.reconfigure(self._remote_config)
            self._start_central_config()

    def _count_collections(self, engine: Optional[_core.Engine]) -> None:
        """Has the garbage collector report its runs to ``engine`` (to nobody when None), for the
        ``python.gc.*`` metrics: the export thread reads counters and never takes the GIL."""
        if self._gc_callback in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)
        self._gc_callback = engine.gc_callback if engine is not None and self.config.metrics_interval else None
        if self._gc_callback is not None:
            gc.callbacks.append(self._gc_callback)

    def close(self, timeout: Optional[float] = None) -> None:
        """Sends what is queued and stops, within ``timeout`` seconds (default: shutdown_timeout)."""
        if not self._open:
            return
        self._open = False
        self._count_collections(None)
        deadline = timeout if timeout is not None else self.config.shutdown_timeout / 1000.0
        if not self._engine.close(deadline):
            logger.warning("could not send everything queued within %.1f s at close", deadline)

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until queued events are sent; returns whether that happened within ``timeout``."""
        return self._engine.flush(timeout) if self._open else True

    def stats(self) -> Dict[str, int]:
        """Export counters (still readable after ``close()``): queued, dropped_queue_full, sent,
        retries, dropped_buffer_full, failed, requests, failed_requests. The delivery counters add
        up over the exporters when intake and OTLP are both on."""
        return self._engine.stats() if self._engine is not None else {}


def _exception_from(exc_info: Any) -> Optional[BaseException]:
    if exc_info is None or exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        exc = exc_info[1]
        if exc.__traceback__ is None and exc_info[2] is not None:
            exc = exc.with_traceback(exc_info[2])
        return exc
    return None


def _seconds(value: Any) -> Optional[float]:
    """A number of seconds (or an epoch time) as a float; anything else is ignored."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value is not None:
        logger.warning("ignored a time value that is not a number: %r", value)
    return None


def _epoch_seconds(date: Optional[datetime.datetime]) -> Optional[float]:
    """Naive datetimes are UTC, as ``datetime.utcnow()`` returns them."""
    import datetime

    if not isinstance(date, datetime.datetime):
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.timezone.utc)
    return date.timestamp()


def _weakly(client: Client, method: str):
    """A hook calling ``client.<method>(...)`` that does not keep the client alive."""
    ref = weak_ref(client)

    def call(*args: Any) -> Any:
        target = ref()
        return getattr(target, method)(*args) if target is not None else None

    return call


_IMPLEMENTATION_NAMES = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalVM", "ironpython": "IronPython"}


def _host() -> Tuple[str, str]:
    """(host name, machine architecture): from os.uname() where there is one (importing socket and
    platform would cost milliseconds at every start), from those modules on Windows."""
    if hasattr(os, "uname"):
        uname = os.uname()
        return uname.nodename, uname.machine
    import platform
    import socket

    return socket.gethostname(), platform.machine()


def _metadata(config: Config) -> Dict[str, Any]:
    """The intake ``metadata`` object: who sends (service, agent, runtime, process, host)."""
    hostname, machine = _host()
    # As platform.python_version() and platform.python_implementation() say, without importing
    # platform: oxapm run starts the agent in every interpreter.
    python_version = "%d.%d.%d" % sys.version_info[:3]
    implementation = _IMPLEMENTATION_NAMES.get(sys.implementation.name, sys.implementation.name)
    service: Dict[str, Any] = {
        "name": config.service_name,
        "agent": {"name": "python", "version": VERSION, "activation_method": "unknown"},
        "language": {"name": "python", "version": python_version},
        "runtime": {"name": implementation, "version": python_version},
    }
    if config.service_version:
        service["version"] = config.service_version
    if config.environment:
        service["environment"] = config.environment
    if config.service_node_name:
        service["node"] = {"configured_name": config.service_node_name}
    if config.framework_name:
        service["framework"] = {"name": config.framework_name, "version": config.framework_version or ""}
    system: Dict[str, Any] = {
        "detected_hostname": hostname,
        "architecture": machine,
        "platform": sys.platform,
    }
    if config.hostname:
        system["configured_hostname"] = config.hostname
    metadata: Dict[str, Any] = {
        "service": service,
        "process": {"pid": os.getpid(), "ppid": os.getppid(), "argv": list(sys.argv)},
        "system": system,
    }
    if config.global_labels:
        # As the Elastic agent does (enforce_label_format): '.', '*' and '"' in keys become '_',
        # values are keyword fields of at most 1024 characters.
        metadata["labels"] = {
            sanitize_key(k): keyword_field(v) for k, v in config.global_labels.items()
        }
    return metadata
