"""Hypothesis over the command line: every command's arguments from a pool of bad values.

The entry-point fuzzer (``test_fuzz_inputs.py``) varies the arguments of the Python API;
this one varies those of ``refnode COMMAND``. Each example starts from a fast valid command
line and sets one or two of its options to values drawn from :data:`POOL` (zero, negative,
non-finite, empty, huge, not a number, a path that cannot be created, a file where a
directory belongs, a directory where a file belongs, ...). The rule: the command either
stops with exit status 2 and one ``error:`` line on stderr, no traceback, or accepts the
arguments and starts its work. The work itself is replaced by a stub that records it
started: arguments are checked before any work, so every example takes milliseconds.
"""

import argparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refnode import cli

pytestmark = pytest.mark.cli

#: A fast valid command line of each command, and the first function of its work.
COMMANDS = {
    "demo": (["demo", "--quick"], "refnode.commands.demo.show_solvers"),
    "reproduce table1": (["reproduce", "table1", "--tiny"], "refnode.experiments.table1.run_model"),
    "reproduce cnf": (["reproduce", "cnf", "--tiny"], "refnode.experiments.cnf.run_seed"),
    "reproduce latent": (["reproduce", "latent", "--quick"],
                         "refnode.experiments.latent.experiment"),
    "bench": (["bench"], "refnode.commands.bench.subprocess.run"),
    "bench workprecision": (["bench", "workprecision", "--quick"], "refnode.workprecision.run"),
}
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


@pytest.fixture
def stubbed(tmp_path, monkeypatch, capsys):
    """``run(command, extra)`` -> "work" or "usage", checking the rule on the way."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    paths = {FILE: str(tmp_path / "a_file"), DIR: str(tmp_path / "a_dir")}

    def work(*args, **kwargs):
        raise WorkStarted

    def run(command, extra):
        base, first_work = COMMANDS[command]
        monkeypatch.setattr(first_work, work)
        argv = base + [paths.get(v, v) for v in extra]
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


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_path_that_cannot_be_created_is_refused_by_every_path_option(command, stubbed):
    parser = parser_of(command)
    for action in parser._actions:
        if action.metavar in ("DIR", "PATH") and action.option_strings[-1] != "--data":
            value = "/proc/refnode-x" if action.metavar == "DIR" else "/proc/refnode-x/y.json"
            assert stubbed(command, [action.option_strings[-1], value]) == "usage", action


def test_the_valid_command_lines_start_their_work(stubbed):
    for command in COMMANDS:
        assert stubbed(command, []) == "work", command
