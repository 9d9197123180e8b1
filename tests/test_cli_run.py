"""``oxapm run`` and ``opentelemetry-instrument`` on the oxapm engine: real programs in their own
processes, their spans received by the loopback intake and OTLP recorders of conftest; and the
pieces they stand on (post-import hooks, the instrumentor cache) in this process."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import attributes, spans_of

from oxapm.instrumentation import import_hooks, installed
from oxapm.zerocode import launch

BIN = Path(sys.executable).parent

# The program most tests run: sqlite3 and requests (against a local http.server) inside one
# transaction begun through oxapm's Elastic API, so that the spans of oxapm's sqlite3 and requests
# instrumentations have a parent.
SQLITE_AND_REQUESTS = """
    import http.server, sqlite3, threading
    import requests
    import oxapm

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *args: None
    threading.Thread(target=server.serve_forever, daemon=True).start()

    client = oxapm.get_client()
    client.begin_transaction("job")
    cursor = sqlite3.connect(":memory:").cursor()
    cursor.execute("CREATE TABLE orders (id INTEGER)")
    cursor.execute("SELECT id FROM orders")
    requests.get("http://127.0.0.1:%d/" % server.server_address[1])
    client.end_transaction("checkout", "success")
"""


def write(path, source):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def run(tmp_path, source, *flags, env=None, command=None):
    """``oxapm run FLAGS -- python app.py`` (or ``command``) in ``tmp_path``, with its own
    instrumentor cache; the agent environment is the one conftest cleaned plus ``env``."""
    app = write(tmp_path / "app.py", source)
    environ = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), **(env or {}))
    command = command or [str(BIN / "oxapm"), "run", *flags, "--", sys.executable, str(app)]
    return subprocess.run(command, capture_output=True, text=True, env=environ, cwd=str(tmp_path), timeout=60)


def warnings_in(stderr):
    """The agent's: logged by oxapm, or printed without a logger name by Python's last resort."""
    return [line for line in stderr.splitlines() if "oxapm" in line or "invalid value" in line or "instrumentation failed" in line]


def fake_instrumentation(tmp_path, instrument_body):
    """A directory for PYTHONPATH holding a library ``fakelib`` (a package with a submodule) and an
    installed instrumentation whose entry point instruments it with ``instrument_body``."""
    site = tmp_path / "site"
    write(site / "fakelib" / "__init__.py", "from fakelib import sub\nready = True\n")
    write(site / "fakelib" / "sub.py", "")
    write(site / "fakelib-1.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: fakelib\nVersion: 1.0\n")
    write(site / "fakelib-1.0.dist-info" / "top_level.txt", "fakelib\n")
    write(site / "fake_instrumentation.py", """
        class FakeInstrumentor:
            def instrument(self):
        %s
    """ % textwrap.indent(textwrap.dedent(instrument_body), " " * 16))
    info = site / "fake_instrumentation-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: fake-instrumentation\nVersion: 1.0\n"
                             "Requires-Dist: fakelib ; extra == 'instruments'\n")
    write(info / "entry_points.txt", "[opentelemetry_instrumentor]\nfakelib = fake_instrumentation:FakeInstrumentor\n")
    return site


# --- oxapm run -------------------------------------------------------------------------------------


def test_spans_of_sqlite3_and_requests_reach_apm_server(tmp_path, intake):
    result = run(tmp_path, SQLITE_AND_REQUESTS, "--server-url", intake.url, "--service-name", "zero-code")
    assert result.returncode == 0, result.stderr
    assert warnings_in(result.stderr) == []
    assert intake.wait_for(lambda requests: any("transaction" in line for r in requests for line in r["lines"]))
    events = intake.events()  # each one validated against the intake schemas
    (metadata,) = [body for kind, body in events if kind == "metadata"]
    assert metadata["service"]["name"] == "zero-code"
    (transaction,) = [body for kind, body in events if kind == "transaction"]
    spans = [body for kind, body in events if kind == "span"]
    assert {(s["type"], s["subtype"]) for s in spans} >= {("db", "sqlite"), ("external", "http")}
    assert len([s for s in spans if s["subtype"] == "sqlite"]) == 2
    assert all(s["transaction_id"] == transaction["id"] for s in spans)


def test_spans_of_sqlite3_and_requests_reach_an_otlp_receiver(tmp_path, otlp_http):
    result = run(tmp_path, SQLITE_AND_REQUESTS, "--traces_exporter", "otlp", "--exporter-otlp-endpoint", otlp_http.url)
    assert result.returncode == 0, result.stderr
    assert otlp_http.wait_for(lambda requests: len(spans_of(requests)) >= 4)
    spans = spans_of(otlp_http.requests)
    systems = [attributes(s.attributes).get("db.system", attributes(s.attributes).get("db.system.name")) for s in spans]
    assert systems.count("sqlite") == 2
    assert any(attributes(s.attributes).get("http.request.method", attributes(s.attributes).get("http.method")) == "GET"
               for s in spans)
    assert len({s.trace_id for s in spans}) == 1


def test_sqlite3_is_traced_by_oxapms_own_instrumentation_one_span_per_statement(tmp_path, intake):
    """oxapm run leaves out the installed contrib instrumentor of sqlite3: oxapm instruments it."""
    result = run(tmp_path, """
        import sqlite3, sys
        import oxapm

        client = oxapm.get_client()
        client.begin_transaction("job")
        cursor = sqlite3.connect(":memory:").cursor()
        cursor.execute("CREATE TABLE orders (id INTEGER)")
        cursor.execute("SELECT id FROM orders")
        client.end_transaction("checkout", "success")
        print(type(cursor).__module__, "opentelemetry.instrumentation.sqlite3" in sys.modules)
    """, "--server-url", intake.url)
    assert result.returncode == 0, result.stderr
    assert warnings_in(result.stderr) == []
    assert result.stdout.split() == ["oxapm.instrumentation.dbapi", "False"]
    assert intake.wait_for(lambda requests: any("transaction" in line for r in requests for line in r["lines"]))
    spans = [body for kind, body in intake.events() if kind == "span"]
    assert sorted((s["name"], s["subtype"], s["context"]["db"]["statement"], "otel" in s) for s in spans) == [
        ("CREATE", "sqlite", "CREATE TABLE orders (id INTEGER)", False),
        ("SELECT FROM orders", "sqlite", "SELECT id FROM orders", False),
    ]


def test_opentelemetry_is_imported_only_with_an_instrumented_library(tmp_path):
    # fakelib has a contrib instrumentor; sqlite3 has oxapm's own instrumentation, which needs no OpenTelemetry.
    site = fake_instrumentation(tmp_path, "pass")
    result = run(tmp_path, """
        import sys
        import sqlite3
        before = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        import fakelib
        after = sys.modules
        print(before, "fake_instrumentation" in after, "opentelemetry" in after, "opentelemetry.instrumentation.flask" in after)
    """, "--traces-exporter", "none", env={"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True", "True", "False"]


# What the agent's start used to import, from the measured cost of importing each alone: logging
# ~20 ms, typing, re, socket, platform, json and importlib.metadata several each (make bench's
# startup section has the figures).
COSTLY_AT_START = ("logging", "typing", "re", "socket", "platform", "threading", "json", "functools",
                   "importlib.metadata", "weakref", "zlib", "operator")


def test_the_agent_starts_without_importing_what_the_program_does_not(tmp_path):
    program = """
        import sys
        import oxapm
        print(oxapm.get_client() is not None, *sorted(set(%r) & set(sys.modules)))
    """ % (COSTLY_AT_START,)
    run(tmp_path, program)  # the first start of an environment indexes its instrumentors
    result = run(tmp_path, program)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_disabled_instrumentations_are_not_applied(tmp_path):
    # sqlite3 and requests are instrumented by oxapm itself: their contrib instrumentations are
    # never applied.
    program = """
        import sys, sqlite3, requests
        from oxapm.instrumentation import control
        print("sqlite3" in control.applied(), "requests" in control.applied(),
              "opentelemetry.instrumentation.requests" in sys.modules)
    """
    by_flag = run(tmp_path, program, "--disabled-instrumentations", "sqlite3", "--traces-exporter", "none")
    by_variable = run(tmp_path, program, "--traces-exporter", "none", env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": " requests ,x"})
    assert (by_flag.returncode, by_flag.stdout.split()) == (0, ["False", "True", "False"]), by_flag.stderr
    assert (by_variable.returncode, by_variable.stdout.split()) == (0, ["True", "False", "False"]), by_variable.stderr


def test_a_subprocess_started_by_the_program_is_instrumented(tmp_path, intake):
    write(tmp_path / "child.py", """
        import oxapm
        client = oxapm.get_client()
        client.begin_transaction("job")
        client.end_transaction("in the child")
    """)
    result = run(tmp_path, """
        import subprocess, sys
        import oxapm
        client = oxapm.get_client()
        client.begin_transaction("job")
        client.end_transaction("in the parent")
        sys.exit(subprocess.call([sys.executable, "child.py"]))
    """, "--server-url", intake.url)
    assert result.returncode == 0, result.stderr
    names = lambda requests: {line["transaction"]["name"] for r in requests for line in r["lines"] if "transaction" in line}  # noqa: E731
    assert intake.wait_for(lambda requests: names(requests) == {"in the parent", "in the child"}), names(intake.requests)
    pids = {r["lines"][0]["metadata"]["process"]["pid"] for r in intake.requests}
    assert len(pids) == 2
    intake.events()


def test_flags_override_the_variables(tmp_path):
    result = run(tmp_path, """
        import os, oxapm
        config = oxapm.get_client().config
        print(config.service_name, os.environ["OTEL_SERVICE_NAME"], config.transaction_sample_rate)
    """, "--service_name", "from-flag", "--transaction-sample-rate=0.5", "--traces-exporter", "none",
        env={"ELASTIC_APM_SERVICE_NAME": "from-env", "OTEL_SERVICE_NAME": "from-env",
             "ELASTIC_APM_TRANSACTION_SAMPLE_RATE": "0.1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-flag", "from-flag", "0.5"]


def test_a_broken_option_gives_one_warning_and_the_exit_code_is_kept(tmp_path):
    result = run(tmp_path, "import sys\nprint('ran')\nsys.exit(3)\n", "--transaction-sample-rate", "lots", "--traces-exporter", "none")
    assert (result.returncode, result.stdout) == (3, "ran\n")
    (warning,) = warnings_in(result.stderr)
    assert "ELASTIC_APM_TRANSACTION_SAMPLE_RATE" in warning


def test_an_instrumentor_that_raises_gives_one_warning_and_the_program_runs(tmp_path):
    """Needs oxapm.otel.install (applying an instrumentor installs the SDK first)."""
    site = fake_instrumentation(tmp_path, "raise RuntimeError('broken on purpose')")
    result = run(tmp_path, "import sys, fakelib\nprint(fakelib.ready)\nsys.exit(5)\n", "--traces-exporter", "none",
                 env={"PYTHONPATH": str(site)})
    assert (result.returncode, result.stdout) == (5, "True\n")
    (warning,) = warnings_in(result.stderr)
    assert "instrumentor fakelib" in warning and "broken on purpose" in warning


def test_an_instrumentor_is_applied_after_its_library_has_been_imported_whole(tmp_path):
    site = fake_instrumentation(tmp_path, """
        import fakelib, sys
        fakelib.seen_at_instrument = (fakelib.ready, "fakelib.sub" in sys.modules)
    """)
    result = run(tmp_path, "import fakelib\nprint(fakelib.seen_at_instrument, fakelib.__loader__.__class__.__name__)\n",
                 "--traces-exporter", "none", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(True, True) SourceFileLoader"


def test_the_programs_own_sitecustomize_still_runs(tmp_path):
    own = write(tmp_path / "own" / "sitecustomize.py", "import builtins\nbuiltins.own_sitecustomize_ran = True\n")
    result = run(tmp_path, """
        import sys, oxapm
        print(own_sitecustomize_ran, oxapm.get_client() is not None, any("sitedir" in p for p in sys.path))
    """, "--traces-exporter", "none", env={"PYTHONPATH": str(own.parent)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False"]


def test_an_interpreter_without_oxapm_runs_the_program_uninstrumented_with_one_warning(tmp_path):
    """A virtualenv of the same Python without oxapm: the program and its own sitecustomize run."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    # (oxapm run itself is a Python program: the sitecustomize runs in it too.)
    own = write(tmp_path / "own" / "sitecustomize.py", "import sys\nprint('own sitecustomize in', sys.prefix)\n")
    result = run(tmp_path, "print('program')\n", env={"PYTHONPATH": str(own.parent)}, command=[
        str(BIN / "oxapm"), "run", "--", str(tmp_path / "bare" / "bin" / "python"), "app.py",
    ])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["own sitecustomize in %s" % (tmp_path / "bare"), "program"]
    (warning,) = warnings_in(result.stderr)
    assert "oxapm could not be imported" in warning and "uninstrumented" in warning


def test_nested_runs_keep_one_site_directory_first_on_the_path(tmp_path):
    result = run(tmp_path, "", env={"PYTHONPATH": "/somewhere"}, command=[
        str(BIN / "oxapm"), "run", "--", str(BIN / "oxapm"), "run", sys.executable, "-c", "import os; print(os.environ['PYTHONPATH'])",
    ])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == os.pathsep.join([launch.SITE_DIR, "/somewhere"])


def test_usage_errors_and_missing_commands(tmp_path):
    unknown = run(tmp_path, "", command=[str(BIN / "oxapm"), "run", "--no-such-flag", "1", "python"])
    no_value = run(tmp_path, "", command=[str(BIN / "oxapm"), "run", "--server-url"])
    no_command = run(tmp_path, "", command=[str(BIN / "oxapm"), "run", "--service-name", "x"])
    not_found = run(tmp_path, "", command=[str(BIN / "oxapm"), "run", "no-such-command-here"])
    assert (unknown.returncode, no_value.returncode, no_command.returncode) == (2, 2, 2)
    assert "unknown flag --no-such-flag" in unknown.stderr
    assert "--server-url needs a value" in no_value.stderr
    assert (not_found.returncode, not_found.stderr.strip()) == (127, "oxapm run: command not found: no-such-command-here")


def test_help_lists_a_flag_for_every_variable_the_engine_reads(tmp_path):
    from oxapm import _core

    result = run(tmp_path, "", command=[str(BIN / "oxapm"), "run", "--help"])
    assert result.returncode == 0
    lines = {line.split()[0]: line.split()[2:] for line in result.stdout.splitlines() if line.startswith("  --")}
    assert lines["--service-name"] == ["ELASTIC_APM_SERVICE_NAME,", "OTEL_SERVICE_NAME"]
    assert lines["--exporter-otlp-traces-endpoint"] == ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    assert lines["--disabled-instrumentations"] == ["ELASTIC_APM_DISABLED_INSTRUMENTATIONS,", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"]
    listed = {variable.rstrip(",") for variables in lines.values() for variable in variables}
    assert listed >= set(_core.environment_variables()) | {"OTEL_PROPAGATORS"}


# --- opentelemetry-instrument on the oxapm engine --------------------------------------------------


def test_opentelemetry_instrument_with_the_oxapm_distro_lands_on_the_oxapm_engine(tmp_path, otlp_http):
    """Needs oxapm.otel (the OpenTelemetry SDK)."""
    result = run(tmp_path, """
        import sqlite3
        from opentelemetry import trace
        with trace.get_tracer("app").start_as_current_span("job"):
            sqlite3.connect(":memory:").cursor().execute("SELECT 1")
        print(type(trace.get_tracer_provider()).__module__)
    """, command=[str(BIN / "opentelemetry-instrument"), sys.executable, "app.py"],
        env={"OTEL_PYTHON_DISTRO": "oxapm", "OTEL_PYTHON_CONFIGURATOR": "oxapm", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http.url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "oxapm.otel.trace"
    assert otlp_http.wait_for(lambda requests: len(spans_of(requests)) >= 2)
    spans = spans_of(otlp_http.requests)
    (job,) = [s for s in spans if s.name == "job"]
    assert [s.parent_span_id for s in spans if s is not job] == [job.span_id]  # the sqlite3 span


def test_the_tracer_provider_entry_point(tmp_path):
    """Needs oxapm.otel.TracerProvider."""
    result = run(tmp_path, "", env={"OTEL_PYTHON_TRACER_PROVIDER": "oxapm", "OTEL_TRACES_EXPORTER": "none"}, command=[
        sys.executable, "-c", "from opentelemetry import trace; print(type(trace.get_tracer_provider()).__module__)",
    ])
    assert (result.returncode, result.stdout.strip()) == (0, "oxapm.otel.trace"), result.stderr


# --- post-import hooks -------------------------------------------------------------------------------


@pytest.fixture
def package_dir(tmp_path, monkeypatch):
    """A directory on sys.path for throwaway packages, removed from sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
    importlib.invalidate_caches()


def test_hooks_run_once_after_the_whole_package_and_keep_its_loader(package_dir):
    write(package_dir / "hooked" / "__init__.py", "from hooked import inner\nready = True\n")
    write(package_dir / "hooked" / "inner.py", "import hooked.deeper\n")
    write(package_dir / "hooked" / "deeper.py", "")
    seen = []
    import_hooks.when_imported("hooked", lambda: seen.append((sys.modules["hooked"].ready, sorted(m for m in sys.modules if m.startswith("hooked")))))
    import hooked
    import hooked.inner  # noqa: F401  already imported: no second call

    assert seen == [(True, ["hooked", "hooked.deeper", "hooked.inner"])]
    assert type(hooked.__loader__).__name__ == "SourceFileLoader" and hooked.__spec__.loader is hooked.__loader__
    assert import_hooks._finder not in sys.meta_path  # nothing left to watch


def test_a_failed_import_runs_no_hook_and_a_failing_hook_does_not_break_the_import(package_dir, caplog):
    write(package_dir / "flaky" / "__init__.py", "import os\nif not os.environ.get('FLAKY_OK'):\n    raise ImportError('not yet')\n")
    calls = []
    import_hooks.when_imported("flaky", lambda: calls.append("hook") or 1 / 0)
    with pytest.raises(ImportError, match="not yet"):
        import flaky  # noqa: F401
    assert calls == []
    os.environ["FLAKY_OK"] = "1"
    try:
        import flaky  # noqa: F401,F811
    finally:
        del os.environ["FLAKY_OK"]
    assert calls == ["hook"]
    assert "a hook on the import of flaky failed" in caplog.text


def test_a_namespace_package_hook_runs_after_its_first_module(package_dir):
    write(package_dir / "spaced" / "first.py", "import spaced.second\n")
    write(package_dir / "spaced" / "second.py", "")
    seen = []
    import_hooks.when_imported("spaced", lambda: seen.append(sorted(m for m in sys.modules if m.startswith("spaced"))))
    import spaced.first  # noqa: F401

    # Before 3.11 the namespace package has no loader to wrap: the hook follows its first module.
    assert seen in ([["spaced"]], [["spaced", "spaced.first", "spaced.second"]])


# --- the instrumentor index and its cache --------------------------------------------------------


def test_the_index_finds_the_library_modules_and_is_cached_until_sys_path_changes(tmp_path, monkeypatch):
    site = fake_instrumentation(tmp_path, "pass")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(site))
    found = [i for i in installed.instrumentors() if i.name == "fakelib"]
    assert found == [installed.Instrumentor("fakelib", "fake_instrumentation:FakeInstrumentor", ("fakelib",))]
    standard = {i.name: i.modules for i in installed.instrumentors()}
    assert standard["sqlite3"] == ("sqlite3",) and standard["flask"] == ("flask",)

    with monkeypatch.context() as patched:
        patched.setattr(installed, "scan", lambda: pytest.fail("scanned although nothing changed"))
        assert [i for i in installed.instrumentors() if i.name == "fakelib"] == found

    # Uninstalling changes the directory; its mtime is also moved explicitly, in case the
    # filesystem's clock is too coarse to tell the two states apart.
    (site / "fakelib-1.0.dist-info" / "METADATA").unlink()
    (site / "fakelib-1.0.dist-info" / "top_level.txt").unlink()
    (site / "fakelib-1.0.dist-info").rmdir()
    os.utime(site, ns=(0, os.stat(site).st_mtime_ns + 10**9))
    assert [i for i in installed.instrumentors() if i.name == "fakelib"] == []


def test_an_unwritable_cache_costs_a_scan_not_a_failure(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # not a directory
    assert any(i.name == "sqlite3" for i in installed.instrumentors())


def test_one_cache_file_per_environment_remembers_several_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    installed.instrumentors()
    monkeypatch.syspath_prepend(str(tmp_path / "other"))
    installed.instrumentors()
    with monkeypatch.context() as patched:
        patched.setattr(installed, "scan", lambda: pytest.fail("scanned again"))
        installed.instrumentors()
        patched.setattr(sys, "path", sys.path[1:])  # the first path again
        installed.instrumentors()
    (cache,) = (tmp_path / "cache" / "oxapm").iterdir()
    assert cache.name.startswith("installed-")
