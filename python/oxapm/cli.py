"""The ``oxapm`` command.

``run`` is on the start-up path of every program it starts: it imports what it uses only (the
engine just to name the flags, when there are flags) and then replaces itself with the program.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs milliseconds on the launcher's path
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

USAGE = """\
usage: oxapm run [--FLAG VALUE ...] [--] COMMAND [ARGS ...]
       oxapm bootstrap [--install | --requirements]

  run        runs COMMAND with the agent started in it and in the Python processes it starts;
             a flag sets the environment variable it is named after (oxapm run --help lists them)
  bootstrap  lists the OpenTelemetry instrumentation packages for the installed libraries;
             --install installs them with pip, --requirements prints requirement lines
"""


class UsageError(Exception):
    pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["run"]:
            return run(args[1:])
        if args[:1] == ["bootstrap"]:
            from oxapm.zerocode import bootstrap

            return bootstrap.main(args[1:])
        if args[:1] in (["-h"], ["--help"]):
            print(USAGE, end="")
            return 0
        raise UsageError("expected run or bootstrap")
    except UsageError as exc:
        print("oxapm: %s\n\n%s" % (exc, USAGE), end="", file=sys.stderr)
        return 2


def run(args: List[str]) -> int:
    parsed = parse_run(args)
    if parsed is None:
        print(run_help(), end="")
        return 0
    settings, command = parsed
    from oxapm.zerocode.launch import exec_with_agent

    try:
        exec_with_agent(command, settings)
    except FileNotFoundError:
        print("oxapm run: command not found: %s" % command[0], file=sys.stderr)
        return 127
    except OSError as exc:
        print("oxapm run: cannot run %s: %s" % (command[0], exc.strerror), file=sys.stderr)
        return 126


def parse_run(args: List[str]) -> Optional[Tuple[Dict[str, str], List[str]]]:
    """(environment settings, command), or None when help was asked for. Flags come before the
    command (or ``--``); ``--flag value`` and ``--flag=value`` both work."""
    from oxapm.zerocode.options import flag_name

    flags: Optional[Dict[str, List[str]]] = None
    settings: Dict[str, str] = {}
    rest = iter(args)
    command: List[str] = []
    for arg in rest:
        if arg == "--":
            break
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            command.append(arg)
            break
        if flags is None:
            from oxapm.zerocode.options import flags as known_flags

            flags = known_flags()
        name, has_value, value = arg.partition("=")
        variables = flags.get(flag_name(name))
        if variables is None:
            raise UsageError("unknown flag %s (oxapm run --help lists them)" % name)
        if not has_value:
            value = next(rest, None)
            if value is None:
                raise UsageError("%s needs a value" % name)
        settings.update(dict.fromkeys(variables, value))
    command.extend(rest)
    if not command:
        raise UsageError("run needs a command")
    return settings, command


def run_help() -> str:
    from oxapm.zerocode.options import flags

    lines = ["usage: oxapm run [--FLAG VALUE ...] [--] COMMAND [ARGS ...]", "", "flags (and the variables they set):"]
    lines += ["  %-44s %s" % (flag + " VALUE", ", ".join(variables)) for flag, variables in flags().items()]
    return "\n".join(lines) + "\n"
