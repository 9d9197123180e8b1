"""``oxapm bootstrap``: the OpenTelemetry contrib instrumentation packages that the installed
libraries call for (``instrumentations``), and, with ``--install``, pip installing the missing ones.

opentelemetry-bootstrap pins every package to its own release (``==0.48b0``), which fails as soon as
that release does not match the installed opentelemetry-api. Here no package is pinned: each one is
required from the contrib release line that pairs with the installed opentelemetry-api (contrib
0.N bK goes with api 1.(N-21)), and the installed OpenTelemetry distributions of those two lines
stay on their line, so pip resolves releases that work together (moving by patch releases at most).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from importlib import metadata
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from oxapm.zerocode.instrumentations import FOR_LIBRARIES, FOR_STANDARD_LIBRARY, OWN_VERSION_LINE

STANDARD_LIBRARY = "(standard library)"


class Suggestion(NamedTuple):
    library: str  # the distribution's name, or "(standard library) <module>"
    library_version: str
    package: str  # the instrumentation
    installed: Optional[str]  # its installed version
    supported: bool  # whether it supports the library's installed version
    requirement: str  # how to require it (a version range, never a pin)


def main(args: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="oxapm bootstrap", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--install", action="store_true", help="pip install the missing instrumentations")
    action.add_argument("--requirements", action="store_true", help="print requirement lines for them all")
    options = parser.parse_args(args)
    installed = installed_distributions()
    suggestions = suggest(installed)
    if options.requirements:
        print("\n".join(s.requirement for s in suggestions if s.supported))
        return 0
    print(table(suggestions))
    missing = [s.requirement for s in suggestions if s.supported and s.installed is None]
    if not missing:
        print("\nEvery instrumentation is installed.")
        return 0
    command = pip_command(missing, installed)
    if not options.install:
        print("\noxapm bootstrap --install runs: %s" % shlex.join(command))
        return 0
    print("\n" + shlex.join(command), flush=True)
    return subprocess.call(command)


def installed_distributions() -> Dict[str, Tuple[str, str]]:
    """canonical name -> (name, version), the first of each on sys.path."""
    found: Dict[str, Tuple[str, str]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), (name, dist.version))
    return found


def suggest(installed: Dict[str, Tuple[str, str]]) -> List[Suggestion]:
    """One suggestion per instrumentation whose library is installed, standard library last."""
    api = installed.get("opentelemetry-api")
    contrib = contrib_line(api[1]) if api else None
    suggestions: Dict[str, Suggestion] = {}
    for library, package in FOR_LIBRARIES:
        name, specifiers = split_requirement(library)
        found = installed.get(canonical(name))
        if found is None or package in suggestions:
            continue
        supported = satisfies(found[1], specifiers)
        suggestions[package] = _suggestion(found[0], found[1], package, supported, installed, contrib)
    for module, package in FOR_STANDARD_LIBRARY:
        suggestions[package] = _suggestion("%s %s" % (STANDARD_LIBRARY, module), "", package, True, installed, contrib)
    return list(suggestions.values())


def _suggestion(library: str, version: str, package: str, supported: bool,
                installed: Dict[str, Tuple[str, str]], contrib: Optional[int]) -> Suggestion:
    present = installed.get(canonical(package))
    requirement = package
    if contrib is not None and package not in OWN_VERSION_LINE:
        requirement = "%s>=0.%db0,<0.%d" % (package, contrib, contrib + 1)
    return Suggestion(library, version, package, present[1] if present else None, supported, requirement)


def contrib_line(api_version: str) -> Optional[int]:
    """The contrib minor version (N of 0.N bK) released with opentelemetry-api ``api_version``."""
    match = re.match(r"1\.(\d+)\.", api_version)
    return int(match.group(1)) + 21 if match else None


def pip_command(requirements: List[str], installed: Dict[str, Tuple[str, str]]) -> List[str]:
    """pip install of ``requirements``, with the installed OpenTelemetry distributions of the api's
    and contrib's release lines required on their line too: pip then moves them together if a
    release of the line must change, instead of leaving one that no longer matches."""
    api = installed.get("opentelemetry-api")
    contrib = contrib_line(api[1]) if api else None
    line: List[str] = []
    if contrib is not None:
        api_minor = contrib - 21
        for key, (name, version) in sorted(installed.items()):
            if not key.startswith("opentelemetry-") or any(r.startswith(key + ">") for r in requirements):
                continue
            if version.startswith("1.%d." % api_minor):
                line.append("%s>=1.%d.0,<1.%d" % (name, api_minor, api_minor + 1))
            elif re.match(r"0\.%db" % contrib, version):
                line.append("%s>=0.%db0,<0.%d" % (name, contrib, contrib + 1))
    return [sys.executable, "-m", "pip", "install", *requirements, *line]


def table(suggestions: List[Suggestion]) -> str:
    rows = [("library", "version", "instrumentation", "status")]
    for s in suggestions:
        if not s.supported:
            status = "library version not supported"
        elif s.installed:
            status = "installed (%s)" % s.installed
        else:
            status = "missing"
        rows.append((s.library, s.library_version, s.package, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3] for row in rows)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- versions (the subset of PEP 440 the table's requirements use) --------------------------------

_VERSION = re.compile(
    r"v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d*))?"
    r"(?:[-_.]?(?:post|rev|r)[-_.]?(\d*))?(?:[-_.]?dev[-_.]?(\d*))?(?:\+.*)?",
    re.IGNORECASE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def version_key(version: str) -> Optional[Tuple]:
    """A sort key of a version (releases after their pre-releases, post-releases after them), or
    None if it does not parse."""
    match = _VERSION.fullmatch(version.strip())
    if match is None:
        return None
    release, pre, pre_n, post, dev = match.groups()
    numbers = [int(n) for n in release.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    if pre:
        stage: Tuple = (0, _PRE_RANK[pre.lower()], int(pre_n or 0))
    elif dev is not None and post is None:
        stage = (-1,)
    else:
        stage = (1,)
    return (tuple(numbers), stage, -1 if post is None else int(post or 0), float("inf") if dev is None else int(dev or 0))


def split_requirement(requirement: str) -> Tuple[str, List[str]]:
    """``"flask >= 1.0, < 4"`` -> ``("flask", [">=1.0", "<4"])``."""
    name, specifiers = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", requirement).groups()  # type: ignore[union-attr]
    return name, [s.replace(" ", "") for s in specifiers.split(",") if s.strip()]


def satisfies(version: str, specifiers: List[str]) -> bool:
    """Whether ``version`` (installed, so pre-releases count) meets every specifier."""
    key = version_key(version)
    if key is None:
        return False
    for specifier in specifiers:
        operator, bound = re.match(r"(~=|==|!=|<=|>=|<|>)(.*)", specifier).groups()  # type: ignore[union-attr]
        bound_key = version_key(bound)
        if bound_key is None:
            return False
        if operator == "~=":
            prefix = tuple(int(n) for n in bound.split(".")[:-1])
            ok = key >= bound_key and (key[0] + (0,) * len(prefix))[: len(prefix)] == prefix
        else:
            ok = {"==": key == bound_key, "!=": key != bound_key, "<=": key <= bound_key,
                  ">=": key >= bound_key, "<": key < bound_key, ">": key > bound_key}[operator]
        if not ok:
            return False
    return True
