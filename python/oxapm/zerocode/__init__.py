"""Zero-code start. ``oxapm run`` starts a program with the agent (``launch``): a
``sitecustomize`` (``sitedir``) makes every Python interpreter it starts, subprocesses included,
run ``startup``, which applies the instrumentations as their libraries are imported
(``oxapm.instrumentation``). ``oxapm bootstrap`` (``bootstrap``) lists the
OpenTelemetry instrumentation packages that the installed libraries call for."""
