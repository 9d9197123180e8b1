"""Tests for oxapm.stacks: exceptions and call stacks as intake v2 objects."""

import functools
import json
import os
import pathlib
import subprocess
import sys
import types

import pytest
from jsonschema import Draft4Validator

from oxapm import stacks

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC_DIRS = (ROOT / "tests" / "specs" / "intake-v2", ROOT.parent / "shared" / "specs" / "intake-v2")
THIS_FILE = os.path.abspath(__file__)


@functools.lru_cache(maxsize=None)
def validator(name):
    for directory in SPEC_DIRS:
        path = directory / name
        if path.is_file():
            return Draft4Validator(json.loads(path.read_text()))
    raise FileNotFoundError("intake-v2 %s not found in %s" % (name, [str(d) for d in SPEC_DIRS]))


def validate_exception(info, culprit=None):
    """Validate ``info`` and every exception in its cause chain as an error event's exception."""
    json.dumps(info, allow_nan=False)
    exc = info
    while exc is not None:
        event = {"id": "0123456789abcdef", "exception": exc}
        if culprit is not None:
            event["culprit"] = culprit
        validator("error.json").validate(event)
        exc = exc["cause"][0] if "cause" in exc else None


def validate_span_stacktrace(frames):
    json.dumps(frames, allow_nan=False)
    span = {
        "id": "0123456789abcdef",
        "trace_id": "0123456789abcdef0123456789abcdef",
        "parent_id": "0123456789abcdef",
        "name": "test",
        "type": "app",
        "duration": 1.0,
        "timestamp": 1,
        "stacktrace": frames,
    }
    validator("span.json").validate(span)


def make_config(**overrides):
    values = dict(
        stack_trace_limit=50,
        include_paths=[],
        exclude_paths=list(stacks.DEFAULT_EXCLUDE_PATHS),
        source_lines_error_app_frames=5,
        source_lines_error_library_frames=5,
        source_lines_span_app_frames=0,
        source_lines_span_library_frames=0,
        collect_local_variables="errors",
        local_var_max_length=200,
        local_var_list_max_length=10,
        local_var_dict_max_length=10,
        sanitize_field_names=list(stacks.DEFAULT_SANITIZE_FIELD_NAMES),
    )
    values.update(overrides)
    return types.SimpleNamespace(**values)


def capture(fn, *args, config=None):
    """Call ``fn``, which must raise; return the exception and its validated ``exception`` object."""
    try:
        fn(*args)
    except Exception as exc:
        info = stacks.exception_info(exc, config if config is not None else make_config())
        validate_exception(info, stacks.culprit(info["stacktrace"]))
        return exc, info
    raise AssertionError("%s did not raise" % fn.__name__)


@functools.lru_cache(maxsize=None)
def source_lines():
    with open(THIS_FILE, encoding="utf-8") as f:
        return f.read().splitlines()


def line_of(marker):
    """1-based line number of the source line ending with ``# <marker>``."""
    matches = [i for i, line in enumerate(source_lines(), 1) if line.endswith("# " + marker)]
    assert len(matches) == 1, marker
    return matches[0]


def functions(frames):
    return [frame["function"] for frame in frames]


# Code that raises, at known lines.


class AppError(Exception):
    pass


def level_three(value):
    raise ValueError("boom %s" % value)  # MARK:raise-boom


def level_two(value):
    level_three(value)  # MARK:call-three


def level_one(value):
    level_two(value)  # MARK:call-two


def raise_app_error():
    raise AppError("app failed")


def raise_with_cause():
    try:
        level_one(1)
    except ValueError as err:
        raise RuntimeError("wrapped") from err


def raise_during_handling():
    try:
        {}["missing"]
    except KeyError:
        raise RuntimeError("while handling")


def raise_cause_over_context():
    try:
        {}["missing"]
    except KeyError:
        raise RuntimeError("explicit") from AppError("the cause")


def raise_suppressed():
    try:
        {}["missing"]
    except KeyError:
        raise RuntimeError("suppressed") from None


def raise_from_outside_handler():
    raise RuntimeError("outer") from ValueError("never raised")


def parse_json(text):
    return json.loads(text)  # MARK:json-loads


def recurse(depth):
    if depth == 0:
        raise ValueError("bottom")
    recurse(depth - 1)


def hidden_layer():
    __traceback_hide__ = True  # noqa: F841 - read by stacks via f_locals
    level_one(0)


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("no str")


def raise_bad_str():
    raise BadStr()


def function_with_locals():
    long_text = "x" * 500
    numbers = list(range(30))
    mapping = {"k%02d" % i: i for i in range(30)}
    nested = {"user": "bob", "password": "hunter2", "inner": {"api_key": "abc", "items": [1, 2]}}
    odd_keys = {1: "one", (2, 3): "pair"}
    password = "hunter2"
    Authorization = "Bearer abc"
    session_id = "s-1"
    obj = object()
    bad = BadRepr()
    blob = b"\xffabc"
    ratio = float("nan")
    huge = 10**30
    cyclic = []
    cyclic.append(cyclic)
    deep = [[[[["bottom"]]]]]
    # locals() marks the variables as used for linters; the test reads them from the frame
    raise RuntimeError("with %d locals" % len(locals()))


# exception_info: fields, frames, chains


def test_exception_fields_and_frame_order():
    _, info = capture(level_one, 7)
    assert info["message"] == "ValueError: boom 7"
    assert info["type"] == "ValueError"
    assert info["module"] == "builtins"
    assert "handled" not in info
    assert "cause" not in info
    frames = info["stacktrace"]
    # traceback order, like elastic-apm: outermost first, innermost (raising) frame last
    assert functions(frames) == ["capture", "level_one", "level_two", "level_three"]
    assert [f["lineno"] for f in frames[1:]] == [
        line_of("MARK:call-two"),
        line_of("MARK:call-three"),
        line_of("MARK:raise-boom"),
    ]
    for frame in frames:
        assert frame["abs_path"] == THIS_FILE
        assert frame["filename"] == os.path.relpath(THIS_FILE, ROOT)
        assert frame["module"] == __name__
        assert frame["library_frame"] is False
    assert list(frames[-1])[:6] == ["abs_path", "filename", "module", "function", "lineno", "library_frame"]


def test_exception_type_module_of_application_class():
    _, info = capture(raise_app_error)
    assert info["type"] == "AppError"
    assert info["module"] == __name__
    assert info["message"] == "AppError: app failed"


def test_exception_without_traceback():
    info = stacks.exception_info(KeyError("k"), make_config())
    validate_exception(info)
    assert info["message"] == "KeyError: 'k'"
    assert info["stacktrace"] == []
    assert stacks.culprit(info["stacktrace"]) is None


def test_traceback_frames_matches_exception_stacktrace():
    config = make_config(collect_local_variables="off")  # capture()'s locals change in between
    exc, info = capture(level_one, 3, config=config)
    frames = stacks.traceback_frames(exc.__traceback__, config)
    assert frames == info["stacktrace"]
    assert stacks.traceback_frames(None, make_config()) == []


def test_chain_explicit_cause():
    _, info = capture(raise_with_cause)
    assert info["message"] == "RuntimeError: wrapped"
    assert functions(info["stacktrace"]) == ["capture", "raise_with_cause"]
    (cause,) = info["cause"]
    assert cause["message"] == "ValueError: boom 1"
    assert cause["type"] == "ValueError"
    assert functions(cause["stacktrace"]) == ["raise_with_cause", "level_one", "level_two", "level_three"]
    assert cause["stacktrace"][-1]["lineno"] == line_of("MARK:raise-boom")
    assert "cause" not in cause


def test_chain_implicit_context():
    _, info = capture(raise_during_handling)
    (cause,) = info["cause"]
    assert cause["message"] == "KeyError: 'missing'"
    assert functions(cause["stacktrace"]) == ["raise_during_handling"]


def test_chain_prefers_cause_over_context():
    _, info = capture(raise_cause_over_context)
    (cause,) = info["cause"]
    assert cause["type"] == "AppError"
    assert cause["stacktrace"] == []
    assert "cause" not in cause


def test_chain_suppressed_context():
    exc, info = capture(raise_suppressed)
    assert exc.__context__ is not None
    assert "cause" not in info


def test_chain_cause_outside_handler():
    _, info = capture(raise_from_outside_handler)
    (cause,) = info["cause"]
    assert cause["message"] == "ValueError: never raised"
    assert cause["stacktrace"] == []


def test_chain_cycles_terminate():
    first, second = ValueError("first"), KeyError("second")
    first.__context__ = second
    second.__context__ = first
    info = stacks.exception_info(first, make_config())
    validate_exception(info)
    assert info["cause"][0]["type"] == "KeyError"
    assert "cause" not in info["cause"][0]

    selfish = ValueError("self")
    selfish.__cause__ = selfish
    assert "cause" not in stacks.exception_info(selfish, make_config())


def test_chain_depth_is_limited():
    chain = [ValueError("e%d" % i) for i in range(15)]
    for outer, inner in zip(chain, chain[1:]):
        outer.__cause__ = inner
    info = stacks.exception_info(chain[0], make_config())
    validate_exception(info)
    messages = []
    while "cause" in info:
        info = info["cause"][0]
        messages.append(info["message"])
    assert len(messages) == stacks.MAX_CAUSE_DEPTH == 10
    assert messages[-1] == "ValueError: e10"


def test_hidden_frames_are_skipped():
    _, info = capture(hidden_layer)
    assert functions(info["stacktrace"]) == ["capture", "level_one", "level_two", "level_three"]


# library frames and include/exclude paths


def test_stdlib_frames_are_library_frames():
    _, info = capture(parse_json, "{bad")
    frames = info["stacktrace"]
    assert functions(frames[:2]) == ["capture", "parse_json"]
    assert frames[1]["lineno"] == line_of("MARK:json-loads")
    assert not frames[1]["library_frame"]
    library = frames[2:]
    assert library, "json frames expected"
    assert all(f["library_frame"] for f in library)
    assert library[0]["module"] == "json"
    assert library[0]["abs_path"] == json.__file__
    assert library[0]["filename"] == os.path.join("json", "__init__.py")
    assert library[-1]["module"] == "json.decoder"
    assert library[-1]["filename"] == os.path.join("json", "decoder.py")
    assert info["type"] == "JSONDecodeError"
    assert info["module"] == "json.decoder"
    assert stacks.culprit(frames) == __name__ + ".parse_json"


def test_site_packages_frames_are_library_frames():
    jsonschema = pytest.importorskip("jsonschema")
    _, info = capture(jsonschema.validate, 1, {"type": "string"})
    innermost = info["stacktrace"][-1]
    assert "site-packages" in innermost["abs_path"]
    assert innermost["module"].startswith("jsonschema")
    assert innermost["filename"].startswith("jsonschema" + os.sep)
    assert innermost["library_frame"] is True
    assert info["stacktrace"][0]["library_frame"] is False


def test_include_paths_take_precedence_over_exclude_paths():
    config = make_config(include_paths=[os.path.join(os.path.dirname(json.__file__), "*")])
    _, info = capture(parse_json, "{bad", config=config)
    assert not any(f["library_frame"] for f in info["stacktrace"])
    assert "vars" in info["stacktrace"][-1]
    assert stacks.culprit(info["stacktrace"]) == "json.decoder.raw_decode"


def test_exclude_paths_glob_marks_application_file():
    # exclude_paths replaces the defaults, so keep them to leave json a library
    config = make_config(exclude_paths=list(stacks.DEFAULT_EXCLUDE_PATHS) + ["*/test_stacks.py"])
    _, info = capture(parse_json, "{bad", config=config)
    assert all(f["library_frame"] for f in info["stacktrace"])
    assert not any("vars" in f for f in info["stacktrace"])
    # all library frames: the innermost one is the culprit
    assert stacks.culprit(info["stacktrace"]) == "json.decoder.raw_decode"


def test_empty_exclude_paths_means_no_library_frames():
    _, info = capture(parse_json, "{bad", config=make_config(exclude_paths=[]))
    assert not any(f["library_frame"] for f in info["stacktrace"])


# source context lines


@pytest.mark.parametrize("lines, around", [(1, 0), (3, 1), (5, 2), (6, 3)])
def test_context_lines_follow_config(lines, around):
    config = make_config(source_lines_error_app_frames=lines)
    _, info = capture(level_one, 0, config=config)
    frame = info["stacktrace"][-1]
    lineno = line_of("MARK:raise-boom")
    src = source_lines()
    assert frame["context_line"] == src[lineno - 1]
    assert frame["pre_context"] == src[lineno - 1 - around : lineno - 1]
    assert frame["post_context"] == src[lineno : lineno + around]
    assert list(frame)[-3:] == ["pre_context", "context_line", "post_context"]


def test_no_context_lines_when_zero():
    _, info = capture(level_one, 0, config=make_config(source_lines_error_app_frames=0))
    for frame in info["stacktrace"]:
        assert not {"pre_context", "context_line", "post_context"} & set(frame)


def test_library_context_lines_use_library_setting():
    config = make_config(source_lines_error_app_frames=5, source_lines_error_library_frames=0)
    _, info = capture(parse_json, "{bad", config=config)
    app, library = info["stacktrace"][1], info["stacktrace"][2:]
    assert app["context_line"].endswith("# MARK:json-loads")
    assert len(app["pre_context"]) == len(app["post_context"]) == 2
    assert all("context_line" not in f for f in library)

    config = make_config(source_lines_error_app_frames=0, source_lines_error_library_frames=3)
    _, info = capture(parse_json, "{bad", config=config)
    assert "context_line" not in info["stacktrace"][1]
    for frame in info["stacktrace"][2:]:
        assert len(frame["pre_context"]) == len(frame["post_context"]) == 1


# stack_trace_limit


def test_stack_trace_limit_zero():
    _, info = capture(level_one, 0, config=make_config(stack_trace_limit=0))
    assert info["stacktrace"] == []
    assert stacks.stack_frames(0, make_config(stack_trace_limit=0)) == []


def test_stack_trace_limit_keeps_innermost_frames():
    _, info = capture(level_one, 0, config=make_config(stack_trace_limit=3))
    assert functions(info["stacktrace"]) == ["level_one", "level_two", "level_three"]


def test_stack_trace_limit_unlimited_and_default():
    _, info = capture(recurse, 60, config=make_config(stack_trace_limit=-1))
    assert functions(info["stacktrace"]) == ["capture"] + ["recurse"] * 61
    _, info = capture(recurse, 60)
    assert len(info["stacktrace"]) == 50
    assert info["stacktrace"][-1]["function"] == "recurse"


# culprit


def frame(module, function, library):
    return {"filename": "f.py", "module": module, "function": function, "library_frame": library}


def test_culprit_innermost_application_frame():
    frames = [frame("app", "outer", False), frame("app", "inner", False), frame("lib", "deep", True)]
    assert stacks.culprit(frames) == "app.inner"
    assert stacks.culprit(list(reversed(frames)), innermost_first=True) == "app.inner"


def test_culprit_falls_back_to_innermost_frame():
    frames = [frame("lib", "outer", True), frame("lib", "inner", True)]
    assert stacks.culprit(frames) == "lib.inner"
    assert stacks.culprit(frames, innermost_first=True) == "lib.outer"
    assert stacks.culprit([]) is None
    assert stacks.culprit([frame(None, None, False)]) == "<unknown>.<unknown>"


def test_culprit_of_captured_exception():
    _, info = capture(level_one, 0)
    assert stacks.culprit(info["stacktrace"]) == __name__ + ".level_three"


def test_culprit_is_truncated():
    value = stacks.culprit([frame("m" * 2000, "f", False)])
    assert len(value) == 1024
    assert value.endswith("\u2026")


# local variables


def captured_vars(config=None):
    _, info = capture(function_with_locals, config=config)
    return info["stacktrace"][-1]["vars"]


def test_vars_are_shortened():
    local = captured_vars()
    assert local["long_text"] == "x" * 197 + "..."
    assert local["numbers"] == list(range(10)) + ["...", "(20 more elements)"]
    assert len(local["mapping"]) == 11
    assert local["mapping"]["k00"] == 0
    assert local["mapping"]["<truncated>"] == "<truncated 20 keys>"
    assert local["odd_keys"] == {"1": "one", "(2, 3)": "pair"}
    assert local["obj"].startswith("<object object at 0x")
    assert local["bad"] == "<BadRepr: BadRepr>"
    assert local["blob"] == "\ufffdabc"
    assert local["ratio"] == "nan"
    assert local["huge"] == str(10**30)
    assert local["cyclic"] == ["<...>"]
    assert local["deep"][0][0][0] == "[['bottom']]"


def test_vars_shortening_follows_config():
    local = captured_vars(
        make_config(local_var_max_length=20, local_var_list_max_length=2, local_var_dict_max_length=1)
    )
    assert local["long_text"] == "x" * 17 + "..."
    assert local["numbers"] == [0, 1, "...", "(28 more elements)"]
    assert local["mapping"] == {"k00": 0, "<truncated>": "<truncated 29 keys>"}


def test_vars_are_sanitized():
    local = captured_vars()
    assert local["password"] == "[REDACTED]"
    assert local["Authorization"] == "[REDACTED]"
    assert local["session_id"] == "[REDACTED]"
    assert local["nested"]["password"] == "[REDACTED]"
    assert local["nested"]["inner"]["api_key"] == "[REDACTED]"
    assert local["nested"]["user"] == "bob"
    assert local["nested"]["inner"]["items"] == [1, 2]


def test_vars_sanitize_field_names_config():
    local = captured_vars(make_config(sanitize_field_names=["long_*", "(?-i)NUMBERS", "(?-i)Auth*"]))
    assert local["long_text"] == "[REDACTED]"
    assert local["numbers"] != "[REDACTED]"
    assert local["Authorization"] == "[REDACTED]"
    assert local["password"] == "hunter2"


@pytest.mark.parametrize(
    "setting, expected", [("errors", True), ("all", True), ("transactions", False), ("off", False)]
)
def test_vars_follow_collect_local_variables(setting, expected):
    _, info = capture(level_one, 0, config=make_config(collect_local_variables=setting))
    assert all(("vars" in f) is expected for f in info["stacktrace"])
    if expected:
        assert info["stacktrace"][-1]["vars"] == {"value": 0}


def test_library_frames_have_no_vars():
    _, info = capture(parse_json, "{bad")
    assert info["stacktrace"][1]["vars"] == {"text": "{bad"}
    assert not any("vars" in f for f in info["stacktrace"][2:])


# stack_frames


def stack_inner(skip, config, **kwargs):
    return stacks.stack_frames(skip, config, **kwargs)  # MARK:stack-frames-call


def stack_outer(skip, config, **kwargs):
    return stack_inner(skip, config, **kwargs)  # MARK:stack-inner-call


def test_stack_frames_innermost_first():
    frames = stack_outer(0, make_config())
    validate_span_stacktrace(frames)
    assert functions(frames[:3]) == ["stack_inner", "stack_outer", "test_stack_frames_innermost_first"]
    assert frames[0]["lineno"] == line_of("MARK:stack-frames-call")
    assert frames[1]["lineno"] == line_of("MARK:stack-inner-call")
    assert frames[0]["module"] == __name__
    assert frames[0]["library_frame"] is False
    assert any(f["library_frame"] for f in frames), "pytest frames are library frames"
    assert stacks.culprit(frames, innermost_first=True) == __name__ + ".stack_inner"


def test_stack_frames_skip():
    frames = stack_outer(1, make_config())
    assert functions(frames[:2]) == ["stack_outer", "test_stack_frames_skip"]
    frames = stack_outer(2, make_config())
    assert frames[0]["function"] == "test_stack_frames_skip"


def test_stack_frames_limit():
    frames = stack_outer(0, make_config(stack_trace_limit=2))
    assert functions(frames) == ["stack_inner", "stack_outer"]
    unlimited = stack_outer(0, make_config(stack_trace_limit=-1))
    assert len(unlimited) > 5
    assert functions(unlimited[:2]) == ["stack_inner", "stack_outer"]


def test_stack_frames_use_span_settings():
    frames = stack_outer(0, make_config())
    assert not any({"vars", "context_line"} & set(f) for f in frames)

    config = make_config(source_lines_span_app_frames=3, collect_local_variables="transactions")
    frames = stack_outer(0, config)
    validate_span_stacktrace(frames)
    assert frames[0]["context_line"].endswith("# MARK:stack-frames-call")
    assert len(frames[0]["pre_context"]) == len(frames[0]["post_context"]) == 1
    assert frames[0]["vars"]["skip"] == 0


def test_stack_frames_for_error_use_error_settings():
    frames = stack_outer(0, make_config(), for_error=True)
    validate_span_stacktrace(frames)
    assert len(frames[0]["pre_context"]) == 2
    assert frames[0]["vars"]["skip"] == 0


def test_stack_frames_skip_leading_agent_frames():
    namespace = {"__name__": "oxapm._test_wrapper", "stacks": stacks}
    exec("def wrapper(config):\n    return stacks.stack_frames(0, config)\n", namespace)
    frames = namespace["wrapper"](make_config())
    assert frames[0]["function"] == "test_stack_frames_skip_leading_agent_frames"


# robustness and field limits


def test_unprintable_exception_message():
    _, info = capture(raise_bad_str)
    assert info["message"] == "BadStr: <exception str() failed>"
    assert info["type"] == "BadStr"


def test_long_type_module_and_message_are_truncated():
    long_type = type("E" * 2000, (Exception,), {"__module__": "m" * 2000})
    info = stacks.exception_info(long_type("x" * 20000), make_config())
    validate_exception(info)
    assert len(info["type"]) == len(info["module"]) == 1024
    assert info["type"].endswith("\u2026")
    assert len(info["message"]) == 10000


def test_missing_or_invalid_config_values_fall_back_to_defaults():
    _, info = capture(level_one, 0, config=object())
    assert functions(info["stacktrace"])[-1] == "level_three"
    assert len(info["stacktrace"][-1]["pre_context"]) == 2
    assert info["stacktrace"][-1]["vars"] == {"value": 0}

    broken = make_config(
        stack_trace_limit="many",
        include_paths=5,
        exclude_paths=None,
        collect_local_variables=None,
        sanitize_field_names="password,*token*",
        local_var_max_length="long",
    )
    _, info = capture(parse_json, "{bad", config=broken)
    assert info["stacktrace"][-1]["library_frame"] is True
    assert info["stacktrace"][1]["vars"] == {"text": "{bad"}
    frames = stacks.stack_frames("x", broken)
    assert frames[0]["function"] == "test_missing_or_invalid_config_values_fall_back_to_defaults"


def test_frames_without_source_have_no_context():
    code = compile("def generated():\n    raise ValueError('generated')\n", "<generated>", "exec")
    namespace = {"__name__": "generated_module"}
    exec(code, namespace)
    _, info = capture(namespace["generated"])
    generated = info["stacktrace"][-1]
    assert generated["abs_path"] == generated["filename"] == "<generated>"
    assert generated["module"] == "generated_module"
    assert "context_line" not in generated
    assert generated["library_frame"] is False


def test_filename_relative_to_sys_path_for_unknown_module(tmp_path, monkeypatch):
    package_dir = tmp_path / "pkg"
    package_dir.mkdir()
    source = package_dir / "mod.py"
    source.write_text("def fail():\n    raise ValueError('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = compile(source.read_text(), str(source), "exec")
    namespace = {"__name__": "not_imported_anywhere"}
    exec(code, namespace)
    _, info = capture(namespace["fail"])
    assert info["stacktrace"][-1]["filename"] == os.path.join("pkg", "mod.py")
    assert info["stacktrace"][-1]["context_line"] == "    raise ValueError('x')"


def test_module_import_is_cheap():
    # load stacks.py alone: the package __init__ is not under test here
    code = (
        "import importlib.util, json, sys\n"
        "before = set(sys.modules)\n"
        "spec = importlib.util.spec_from_file_location('stacks_alone', sys.argv[1])\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    argv = [sys.executable, "-c", code, stacks.__file__]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert not {"inspect", "traceback", "platform", "json", "jsonschema"} & set(json.loads(result.stdout))
