"""``oxapm bootstrap``: the instrumentation packages for the installed libraries, required on the
contrib release line of the installed opentelemetry-api, and installed by pip into a throwaway
virtualenv."""

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import oxapm
from oxapm.zerocode import bootstrap

OXAPM = str(Path(sys.executable).parent / "oxapm")


def oxapm_bootstrap(*args):
    return subprocess.run([OXAPM, "bootstrap", *args], capture_output=True, text=True, timeout=60, check=True).stdout


def rows(output):
    """The table's rows by instrumentation package: (library, status)."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"(.+?)\s{2,}(\S*)\s+(opentelemetry-instrumentation-\S+)\s+(.+)", line)
        if match:
            found[match.group(3)] = (match.group(1), match.group(4))
    return found


def contrib_range():
    minor = int(metadata.version("opentelemetry-api").split(".")[1])
    return ">=0.%db0,<0.%d" % (minor + 21, minor + 22)


def test_installed_libraries_and_their_instrumentations_are_listed():
    table = rows(oxapm_bootstrap())
    assert table["opentelemetry-instrumentation-flask"] == ("Flask", "installed (%s)" % metadata.version("opentelemetry-instrumentation-flask"))
    assert table["opentelemetry-instrumentation-requests"][1].startswith("installed")
    assert table["opentelemetry-instrumentation-jinja2"][0] == "Jinja2"  # Flask's dependency
    assert table["opentelemetry-instrumentation-sqlite3"][0] == "(standard library) sqlite3"
    assert "opentelemetry-instrumentation-pika" not in table  # pika is in none of the project's extras
    missing = [package for package, (_, status) in table.items() if status == "missing"]
    for package in missing:
        with pytest.raises(metadata.PackageNotFoundError):
            metadata.version(package)


def test_requirements_are_ranges_on_the_apis_contrib_line_never_pins():
    lines = oxapm_bootstrap("--requirements").splitlines()
    assert "opentelemetry-instrumentation-flask" + contrib_range() in lines
    assert "opentelemetry-instrumentation-sqlite3" + contrib_range() in lines
    assert not any("==" in line for line in lines)


def test_the_pip_command_installs_only_what_is_missing_and_keeps_the_installed_line():
    output = oxapm_bootstrap()
    command = output.strip().splitlines()[-1]
    # The child reports its interpreter with the path normalized (make test-abi3 runs ../target/...).
    assert command.startswith("oxapm bootstrap --install runs: %s -m pip install " % os.path.normpath(sys.executable))
    minor = int(metadata.version("opentelemetry-api").split(".")[1])
    assert "'opentelemetry-api>=1.%d.0,<1.%d'" % (minor, minor + 1) in command
    # Installed instrumentations are required on their line (so pip moves them along if it must),
    # never as something to install.
    for package, (_, status) in rows(output).items():
        assert (package + contrib_range() in command) == (status != "library version not supported")


def test_a_library_version_outside_the_range_is_reported_not_installed():
    installed = {"flask": ("Flask", "0.12.5"), "requests": ("requests", "2.31.0"), "opentelemetry-api": ("opentelemetry-api", "1.40.3")}
    suggestions = {s.package: s for s in bootstrap.suggest(installed)}
    assert not suggestions["opentelemetry-instrumentation-flask"].supported
    assert suggestions["opentelemetry-instrumentation-requests"].requirement == "opentelemetry-instrumentation-requests>=0.61b0,<0.62"
    flask_row = [line for line in bootstrap.table(list(suggestions.values())).splitlines() if line.startswith("Flask")]
    assert flask_row[0].endswith("library version not supported")


def test_packages_on_their_own_version_line_get_no_contrib_range():
    installed = {"openai": ("openai", "1.50.0"), "opentelemetry-api": ("opentelemetry-api", "1.40.0")}
    (openai,) = [s for s in bootstrap.suggest(installed) if s.library == "openai"]
    assert openai.requirement == "opentelemetry-instrumentation-openai-v2"


@pytest.mark.parametrize(
    "version, specifiers, expected",
    [
        ("3.1.3", [">=1.0"], True),
        ("0.95.1", ["~=0.92"], True),
        ("1.0", ["~=0.92"], False),
        ("3.0", ["~=3.0"], True),
        ("4.0", ["~=3.0"], False),
        ("2.7.3.1", [">=2.7.3.1"], True),
        ("8.1.2", [">=8.1.3", "<9.0.0"], False),
        ("9.0.0", [">=8.1.3", "<9.0.0"], False),
        ("1.26.0rc1", [">=1.26.0"], False),
        ("1.26.0.post1", [">=1.26.0"], True),
        ("1.99", ["<2"], True),
        ("not a version", [">=1"], False),
    ],
)
def test_version_ranges(version, specifiers, expected):
    assert bootstrap.satisfies(version, specifiers) is expected


def test_install_into_a_throwaway_virtualenv_keeps_its_opentelemetry_api(tmp_path):
    """A real pip run against the package index: a virtualenv with click and an older
    opentelemetry-api gets the click instrumentation of that api's contrib line, and the api stays."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    ready = subprocess.run([python, "-m", "pip", "install", "-q", "click", "opentelemetry-api==1.33.1"], capture_output=True, text=True)
    if ready.returncode != 0:
        pytest.skip("the package index is out of reach: %s" % ready.stderr.strip().splitlines()[-1:])
    # This oxapm, and nothing else of the test environment, on the venv's path.
    shutil.copytree(os.path.dirname(oxapm.__file__), tmp_path / "path" / "oxapm")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "path"))
    bootstrap_in_venv = [python, "-c", "import sys; from oxapm.cli import main; sys.exit(main(sys.argv[1:]))", "bootstrap"]

    installed = subprocess.run(bootstrap_in_venv + ["--install"], capture_output=True, text=True, env=env, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    versions = dict(line.split("==") for line in subprocess.run(
        [python, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout.split())
    assert versions["opentelemetry-api"] == "1.33.1"
    assert versions["opentelemetry-instrumentation-click"].startswith("0.54b")
    assert versions["opentelemetry-instrumentation-sqlite3"].startswith("0.54b")

    again = subprocess.run(bootstrap_in_venv, capture_output=True, text=True, env=env, timeout=60, check=True)
    assert rows(again.stdout)["opentelemetry-instrumentation-click"] == ("click", "installed (%s)" % versions["opentelemetry-instrumentation-click"])
    assert again.stdout.strip().endswith("Every instrumentation is installed.")
