"""Every flag a message names exists: read from the source, checked against the parsers.

A message that advises ``--checkpoint-dir`` to a command without that flag sends the user
nowhere. Each string literal of a module (docstrings aside) is searched for ``--flag``
names, and each name must be an option of the command whose messages the module writes.
"""

import argparse
import ast
import pathlib
import re

import pytest

from refnode import cli

pytestmark = pytest.mark.cli

PACKAGE = pathlib.Path(cli.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

#: The modules whose messages (errors, help, advice) reach each command's user.
MODULES = {
    ("demo",): ["commands/demo.py", "demo.py"],
    ("reproduce", "table1"): ["commands/reproduce_table1.py", "experiments/table1.py",
                              "experiments/table1_memory.py", "models/classifier.py",
                              "data/idx.py"],
    ("reproduce", "cnf"): ["commands/reproduce_cnf.py", "experiments/cnf.py",
                           "experiments/cnf_figures.py"],
    ("reproduce", "latent"): ["commands/reproduce_latent.py", "experiments/latent.py",
                              "experiments/latent_figures.py"],
    ("bench",): ["commands/bench.py", "workprecision/__init__.py", "workprecision/plot.py"],
    ("verify",): ["commands/verify.py", "verify.py"],
    ("tutorials",): ["commands/tutorials.py"],
    ("docs",): ["commands/docs.py"],
}
#: Modules shared by several commands: each flag they name must belong to one of these.
SHARED = {
    "checkpoint.py": [("reproduce", "table1"), ("reproduce", "latent")],
    "experiments/common.py": [("reproduce", name) for name in ("table1", "cnf", "latent")],
    "experiments/common_cli.py": [("reproduce", name) for name in ("table1", "cnf", "latent")],
    "files.py": [],
    "cli.py": [],
}
#: Flags of other programs that a module passes on (not messages): module -> flags.
OTHER_PROGRAMS = {"commands/docs.py": {"--clean"}}          # mkdocs build --clean


def flags_named(path):
    """The ``--flag`` names in the string literals of ``path``, docstrings excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return {flag for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings for flag in FLAG.findall(node.value)}


def _subcommands(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _all_options(parser):
    """The option strings of ``parser`` and of its own subcommands (``docs build --out``)."""
    found = set()
    for action in parser._actions:
        found |= set(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _all_options(sub)
    return found


def options(path_of_names):
    """The option strings of the (sub)command ``path_of_names``, e.g. ("reproduce", "cnf")."""
    parser = cli.build_parser()
    for name in path_of_names:
        parser = _subcommands(parser)[name]
    return _all_options(parser)


@pytest.mark.parametrize("command", list(MODULES), ids=" ".join)
def test_every_flag_a_command_names_is_one_of_its_options(command):
    offered = options(command)
    for module in MODULES[command]:
        missing = flags_named(PACKAGE / module) - offered - OTHER_PROGRAMS.get(module, set())
        assert not missing, f"{module} names {sorted(missing)}, which `refnode " \
                            f"{' '.join(command)}` does not have"


@pytest.mark.parametrize("module", list(SHARED))
def test_every_flag_a_shared_module_names_is_an_option_of_a_command_using_it(module):
    top_level = {s for a in cli.build_parser()._actions for s in a.option_strings}  # --version
    offered = top_level.union(*(options(command) for command in SHARED[module]))
    missing = flags_named(PACKAGE / module) - offered
    assert not missing, f"{module} names {sorted(missing)}, an option of none of its commands"


def test_the_corrupt_checkpoint_advice_names_each_commands_own_flag():
    from refnode.checkpoint import WHAT_TO_DO
    assert "--runs DIR for table1" in WHAT_TO_DO and "--runs" in options(("reproduce", "table1"))
    assert "--run-dir DIR for latent" in WHAT_TO_DO
    assert "--run-dir" in options(("reproduce", "latent"))


def test_the_scan_finds_a_flag_in_a_message(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('"""Doc --ignored."""\n'
                      'def f(x):\n    raise ValueError(f"use --checkpoint-dir {x} or a-b--c")\n')
    assert flags_named(source) == {"--checkpoint-dir"}
