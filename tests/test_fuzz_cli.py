"""Hypothesis over the command line: every command's arguments from a pool of bad values.

The entry-point fuzzer (``test_fuzz_inputs.py``) varies the arguments of the Python API;
this one varies those of ``refnode COMMAND``. Each example starts from a fast valid command
line and sets one or two of its options to values drawn from :data:`POOL` (zero, negative,
non-finite, empty, huge, not a number, a path that cannot be created, a file where a
directory belongs, a directory where a file belongs, ...). The rule: the command either
stops with exit status 2 and one ``error:`` line on stderr, no traceback, or accepts the
arguments and starts its work. The work itself is replaced by a stub that records it
started: arguments are checked before any work, so every example takes milliseconds.
A command whose arguments are positional (``course build DIR``) has its positionals drawn
from the pool instead.
"""

import argparse
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refnode import cli
from refnode.reference.golden_files import load_golden

pytestmark = pytest.mark.cli

#: A fast valid command line of each command, and the first functions of its work (each is
#: replaced by a stub). RESULTS, ASSIGNMENT and SUBMISSIONS are made by the fixture.
RESULTS, ASSIGNMENT, SUBMISSIONS = "<results>", "<assignment>", "<submissions>"
COMMANDS = {
    "demo": (["demo", "--quick"], "refnode.commands.demo.show_solvers"),
    "reproduce table1": (["reproduce", "table1", "--tiny"], "refnode.experiments.table1.run_model"),
    "reproduce cnf": (["reproduce", "cnf", "--tiny"], "refnode.experiments.cnf.run_seed"),
    "reproduce latent": (["reproduce", "latent", "--quick"],
                         "refnode.experiments.latent.experiment"),
    "bench": (["bench"], "refnode.commands.bench.subprocess.run"),
    "bench workprecision": (["bench", "workprecision", "--quick"], "refnode.workprecision.run"),
    "reproduce cnf-curves": (["reproduce", "cnf-curves", "--quick"],
                             "refnode.experiments.cnf_curves.run_seed"),
    "verify": (["verify", "--callable", "refnode.verify:refnode_adjoint"],
               ("refnode.verify.verify_callable", "refnode.verify.verify_results")),
    "verify --results": (["verify", "--results", RESULTS],
                         ("refnode.verify.verify_callable", "refnode.verify.verify_results")),
    "tutorials": (["tutorials"], ("refnode.commands.tutorials.title",
                                  "refnode.commands.tutorials.convert")),
    "docs build": (["docs", "build", "--out", "site"], "refnode.commands.docs.build"),
    "course list": (["course", "list"], "refnode.commands.course.assignments"),
    "course build": (["course", "build", "handout"], "refnode.commands.course.assignments"),
    "course grade": (["course", "grade", ASSIGNMENT, SUBMISSIONS],
                     "refnode.commands.course.grade_one"),
}
#: Commands whose positional arguments are fuzzed: their number (the last ones of the line).
POSITIONALS = {"course build": 1, "course grade": 2}
FILE, DIR = "<a file>", "<a directory>"
#: Bad values (and a few good ones, which a command may accept).
POOL = ["0", "-1", "1", "2.5", "nan", "inf", "-inf", "1e400", "", " ", "abc", "-", "--",
        "99999999999999999999999999", str(2 ** 64), "0x10", "1_000", "/proc/refnode-x",
        "/proc/refnode-x/y.json", FILE, DIR, "float16", "conv,res", "\x00"]
#: Values every numeric option refuses, and every path option.
NOT_NUMBERS = ["nan", "inf", "-inf", "1e400", "", "abc"]


class WorkStarted(Exception):
    """The stubbed work was reached: the arguments were accepted."""


def parser_of(command):
    """The argparse parser of ``command`` ("reproduce cnf"; "bench workprecision" is bench's)."""
    parser = cli.build_parser()
    for name in command.split():
        if name.startswith("-"):
            break
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            break
        parser = subs[0].choices[name]
    return parser


def value_options(command):
    """The options of ``command`` that take a value (flags such as --quick excluded)."""
    parser = parser_of(command)
    return sorted(action.option_strings[-1] for action in parser._actions
                  if action.option_strings and action.nargs != 0
                  and not isinstance(action, argparse._HelpAction))


def numeric_options(command):
    """The options whose argparse type converts to a number."""
    parser = parser_of(command)
    return sorted(a.option_strings[-1] for a in parser._actions if a.option_strings
                  and getattr(a.type, "__name__", "") in ("positive_int", "nonnegative_int",
                                                          "positive_float", "int", "float"))


def make_inputs(tmp_path):
    """{placeholder: path} of the files the valid command lines name."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "results.json").write_text(json.dumps(load_golden("decay")))
    (tmp_path / "assignment").mkdir()
    (tmp_path / "assignment" / "assignment.json").write_text("{}")
    (tmp_path / "submissions").mkdir()
    (tmp_path / "submissions" / "ada.py").write_text("")
    return {FILE: str(tmp_path / "a_file"), DIR: str(tmp_path / "a_dir"),
            RESULTS: str(tmp_path / "results.json"), ASSIGNMENT: str(tmp_path / "assignment"),
            SUBMISSIONS: str(tmp_path / "submissions")}


@pytest.fixture
def stubbed(tmp_path, monkeypatch, capsys):
    """``run(command, extra, positionals=None)`` -> "work" or "usage", checking the rule on
    the way; ``positionals`` replace the last arguments of the valid command line."""
    monkeypatch.chdir(tmp_path)
    paths = make_inputs(tmp_path)
    # The docs build's optional packages are not needed to check its arguments.
    monkeypatch.setattr("refnode.commands.docs.missing_packages", lambda: [])

    def work(*args, **kwargs):
        raise WorkStarted

    def run(command, extra, positionals=None):
        base, works = COMMANDS[command]
        for target in (works,) if isinstance(works, str) else works:
            monkeypatch.setattr(target, work)
        if positionals is not None:
            base = base[:len(base) - len(positionals)] + positionals
        argv = base + [paths.get(v, v) for v in extra]
        argv = [paths.get(v, v) for v in argv]
        try:
            status = cli.main(argv)
        except WorkStarted:
            capsys.readouterr()
            return "work"
        except SystemExit as exit_:                    # argparse
            status = exit_.code
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert status == 2, (argv, status, err)
        assert "Traceback" not in err, (argv, err)
        errors = [line for line in lines if "error:" in line]
        assert len(errors) == 1 and errors[0] == lines[-1], (argv, err)
        return "usage"

    return run


def _options_and_values(command, n):
    options = value_options(command)
    if not options:
        return st.just([])
    return st.lists(st.tuples(st.sampled_from(options), st.sampled_from(POOL)),
                    min_size=1, max_size=n, unique_by=lambda pair: pair[0])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_values_of_any_one_or_two_options_are_usage_errors_or_accepted(command, stubbed):
    @settings(max_examples=3 * settings.default.max_examples, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_options_and_values(command, 2))
    def check(pairs):
        stubbed(command, [item for pair in pairs for item in pair])

    check()


@pytest.mark.parametrize("command, option",
                         [(c, o) for c in COMMANDS for o in numeric_options(c)])
def test_a_numeric_option_refuses_what_is_not_a_finite_number(command, option, stubbed):
    for value in NOT_NUMBERS + ["-1"]:
        assert stubbed(command, [option, value]) == "usage", value


@pytest.mark.parametrize("command", list(POSITIONALS))
def test_bad_positional_values_are_usage_errors_or_accepted(command, stubbed):
    @settings(max_examples=3 * settings.default.max_examples, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.sampled_from(POOL), min_size=POSITIONALS[command],
                    max_size=POSITIONALS[command]), _options_and_values(command, 1))
    def check(values, pairs):
        stubbed(command, [item for pair in pairs for item in pair], positionals=values)

    check()


def path_options(command):
    """The options of ``command`` that take a path (by metavar, or by a path type)."""
    return [action.option_strings[-1] for action in parser_of(command)._actions
            if action.option_strings and (action.metavar in ("DIR", "PATH", "FILE")
                                           or getattr(action.type, "__name__", "")
                                           in ("path_text", "path_object", "Path"))]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_empty_path_is_refused_never_taken_for_the_default(command, stubbed):
    """Before: ``--run-dir ""`` (and --out, --json, --dir, --notebooks, ...) read as "not
    given" and the command ran with its default directory."""
    for option in path_options(command):
        assert stubbed(command, [option, ""]) == "usage", option
    for count in range(1, POSITIONALS.get(command, 0) + 1):
        values = [paths for paths in COMMANDS[command][0][-POSITIONALS[command]:]]
        values[count - 1] = ""
        assert stubbed(command, [], positionals=values) == "usage", values


def test_every_path_option_of_every_command_is_fuzzed():
    """The fuzzer's commands cover the CLI: every subcommand and experiment is in COMMANDS."""
    listed = {" ".join(word for word in argv if not word.startswith(("-", "<")))
              for argv, _ in COMMANDS.values()}
    parser = cli.build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    for name, sub in subs.choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        for child in (nested[0].choices if nested else [None]):
            wanted = name if child is None else f"{name} {child}"
            assert any(entry.startswith(wanted) for entry in listed), wanted


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_path_that_cannot_be_created_is_refused_by_every_path_option(command, stubbed):
    parser = parser_of(command)
    for action in parser._actions:
        if (action.option_strings and action.metavar in ("DIR", "PATH")
                and action.option_strings[-1] != "--data"):
            value = "/proc/refnode-x" if action.metavar == "DIR" else "/proc/refnode-x/y.json"
            assert stubbed(command, [action.option_strings[-1], value]) == "usage", action
    if command == "course build":
        assert stubbed(command, [], positionals=["/proc/refnode-x"]) == "usage"


def test_the_valid_command_lines_start_their_work(stubbed):
    for command in COMMANDS:
        assert stubbed(command, []) == "work", command
