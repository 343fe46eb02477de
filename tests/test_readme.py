"""README's thirty-second example runs as written, its set-up commands are the ones CI runs,
and every command README.md and docs/*.md show is run by a test or says why not."""

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_thirty_second_example_runs_and_its_gradients_have_the_documented_shapes():
    code = re.search(r"```python\n(.*?)```", README, flags=re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["z"].shape == (1000, 2)
    assert namespace["dz0"].shape == (2,) and namespace["dA"].shape == (2, 2)
    assert namespace["dt"].shape == (1000,) and np.all(np.isfinite(namespace["dt"]))


def code_blocks(text):
    """The contents of the fenced code blocks of a Markdown text, in order."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def set_up_commands():
    """The command lines of README's "Set up" section, in order."""
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in code_blocks(section) for line in block.splitlines()
            if line.strip()]


def test_ci_runs_exactly_the_test_command_readme_gives():
    test_command = next(c for c in set_up_commands() if c.endswith("pytest -q"))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in [line.strip() for line in ci.splitlines()]
    assert "python3 -m venv" in ci          # in a new virtual environment, as the README does


def test_set_up_starts_in_a_virtual_environment_that_git_ignores():
    """Debian's and Ubuntu's system Python refuse pip outside a virtual environment."""
    commands = set_up_commands()
    assert commands[0] == "python3 -m venv .venv && . .venv/bin/activate"
    assert all(c.startswith("python3 -m pip install -e ") for c in commands[1:])
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "/.venv/" in ignored or ".venv/" in ignored


# -- every command the documentation shows is run or parsed, or says why not -----------------
# The commands are read from README.md and docs/*.md when the tests run: fenced blocks in a
# shell language (or none) and inline spans that start with refnode, python or pip. Each must
# appear below: RUN_HERE (this file runs it, or a quick variant), RUN_ELSEWHERE (the named
# test runs it) or NOT_RUN / NOT_RUN_PATTERNS (with the reason). Every `refnode` command, run
# or not, is parsed by the real argparse parser, so a renamed flag or subcommand fails here.

DOC_FILES = ["README.md", "docs/*.md"]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
COMMAND_WORDS = {"refnode", "python", "python3", "pip", "pytest", "apt-get", "nohup"}
#: Placeholder words of synopses and the values the parse check puts in their place.
PLACEHOLDERS = {"N": "2", "S": "0", "DIR": "some-dir", "PATH": "some.json", "NN": "04",
                "NAME": "decay", "<name>": "cnf", "A,B": "decay,spiral"}

#: Documented commands this file runs (quick variants, outputs in tmp_path): doc -> argv.
RUN_HERE = {
    "refnode verify --list": ["verify", "--list"],
    "refnode tutorials": ["tutorials"],
    "python -m refnode.reference.regenerate [NAME ...] [--out DIR]":
        ["-m", "refnode.reference.regenerate", "decay", "--out", "{tmp}"],
}
#: Documented commands that another test runs (or runs a quick variant of): doc -> test.
RUN_ELSEWHERE = {
    "python3 -m pip install -e '.[test]' && python3 -m pytest -q":
        "tests/test_readme.py::test_ci_runs_exactly_the_test_command_readme_gives",
    "python3 -m pytest -q": "tests/test_readme.py::test_ci_runs_exactly_the_test_command_readme_gives",
    "python3 -m pip install -e . && refnode demo":
        "tests/test_cli.py::test_demo_quick_prints_tables_and_writes_figures",
    "python3 -m pip install -e '.[docs]' && refnode docs build --quick --out /tmp/refnode-site":
        "tests/test_docs_site.py (builds the site with --quick, strict in CI)",
    "refnode tutorials --notebooks DIR": "tests/test_course_kit.py::test_tutorials_to_notebooks",
    "python tutorials/01_runge_kutta_from_a_tableau.py":
        "tests/test_tutorials.py::test_tutorial_runs_in_quick_mode_and_writes_figures",
    "REFNODE_QUICK=1 python tutorials/08_continuous_normalizing_flows.py":
        "tests/test_tutorials.py::test_tutorial_runs_in_quick_mode_and_writes_figures",
    "refnode verify --callable refnode.verify:refnode_adjoint --rtol 1e-7":
        "tests/test_verify.py::test_refnode_adjoint_passes_every_problem",
    "refnode reproduce latent --quick --json quick.json":
        "tests/test_latent.py::test_quick_run_writes_records_summary_and_figures_and_resumes",
    "refnode reproduce table1 --quick --json table1.json":
        "tests/test_odenet.py::test_quick_experiment_writes_one_record_per_model",
    "python -m pytest course/example": "tests/test_course_kit.py::test_grading_fails_on_the_blank_template",
    "REFNODE_SUBMISSION=solution.py python -m pytest course/example":
        "tests/test_course_kit.py::test_grading_passes_on_the_solution",
    "python -m pytest -p course.swap --swap refnode.nn.dense:ConcatLinear.vjp=course/example/solution.py:vjp "
    "tests/test_nn_dense.py -k \"ConcatLinear and not Squash\"":
        "tests/test_course_kit.py::test_swap_plugin_grades_with_refnodes_own_tests",
    "python -m pytest tests/test_cnf.py -q": "tests/test_cnf.py (the default suite runs it)",
    "refnode reproduce cnf-curves":
        "tests/test_cnf_curves.py::test_the_command_writes_records_summary_and_figure",
    "python -m refnode.experiments.latent_records docs/results/latent_reference_budget.json "
    "runs/latent_ref_s0 runs/latent_ref_s1 runs/latent_ref_s2 runs/latent_ref_adjoint_s0":
        "tests/test_latent_records.py::test_collected_records_carry_their_config_and_cost",
    "python -m refnode.experiments.latent_gap runs/latent_ref_s0":
        "tests/test_latent_records.py::test_gap_analysis_at_the_full_horizon_is_the_recorded_test_rmse",
    "python -m refnode.experiments.latent_gap RUN_DIR":
        "tests/test_latent_records.py::test_gap_analysis_at_the_full_horizon_is_the_recorded_test_rmse",
    "refnode course build /tmp/course && cd /tmp/course/01_rk_step && python -m pytest -q":
        "tests/test_course_assignments.py::test_every_assignment_fails_on_the_blank_template_with_a_hint",
    "cd /tmp/c/01_rk_step && python -m pytest -q":
        "tests/test_course_assignments.py::test_every_assignment_fails_on_the_blank_template_with_a_hint",
    "refnode course build /tmp/c": "tests/test_course_assignments.py::test_generation_is_deterministic",
    "REFNODE_SUBMISSION=refnode python -m pytest -q":
        "tests/test_course_assignments.py::test_every_assignment_passes_on_the_reference_solution",
    "refnode course grade /tmp/c/03_layer_vjps SUBMISSIONS":
        "tests/test_course_assignments.py::test_a_class_is_graded_into_one_table",
    "refnode course grade FOLDER SUBMISSIONS":
        "tests/test_course_assignments.py::test_a_class_is_graded_into_one_table",
    "refnode verify --callable refnode.verify:refnode_adjoint":
        "tests/test_verify_verdict.py::test_the_documented_self_check_passes_at_the_defaults",
    "refnode verify --callable refnode.verify:refnode_adjoint --rtol 1e-7 --states-only --problems decay":
        "tests/test_verify_verdict.py::test_states_only_passes_only_when_asked_for",
}
#: Documented commands that no test runs, and why (each `refnode` one is still parsed).
NOT_RUN = {
    "refnode reproduce latent --seeds 1 --first-seed 0 --iterations 2000 --batch-size 800 "
    "--run-dir runs/latent_ref_s0": "the reference-budget run (an hour of CPU); its flags are "
                                    "parsed, and --quick runs the same code in tests/test_latent.py",
    "refnode reproduce latent --seeds 1 --first-seed 0 --iterations 2000 --batch-size 800 "
    "--models latent_ode --gradient adjoint --run-dir runs/latent_ref_adjoint_s0":
        "the adjoint at the reference budget (hours of CPU); its flags are parsed",
    "refnode reproduce cnf-curves --iterations 2000 --seeds 3 --run-dir runs/cnf-curves":
        "the settled curves of three seeds (about 25 minutes per seed on a quiet machine); "
        "tests/test_cnf_curves.py runs --quick",
    "refnode reproduce cnf-curves --iterations 2000 --seeds 3 --run-dir runs/cnf-curves "
    "--json docs/results/cnf_curves.json --out figures":
        "the same run, replacing the committed record and figure; tests/test_cnf_curves.py "
        "runs the command with --quick and checks what it writes",
    "pip install -e '.[gpu-cuda13]'": "installs CuPy for a CUDA 13 GPU; CI machines have no GPU",
    "refnode bench --device gpu": "needs a GPU; tests/test_device.py runs the device path on "
                                  "strict arrays and checks the one-line refusal without CuPy",
    "python -m": "a phrase in a sentence (how `python -m` finds modules), not a command",
    "refnode verify --callable student_module:solve": "the student's own module",
    "python -m pytest -p course.swap --swap refnode.nn.dense:ConcatLinear.vjp=course/example/solution.py:vjp "
    "-m vjp tests":
        "runs every vjp-marked test with the swap (minutes); test_swap_plugin_grades_with_refnodes_own_tests "
        "runs the same swap on one test file",
    "python3 -m venv .venv && . .venv/bin/activate":
        "makes the reader's environment; .ci/run makes new ones the same way",
    "refnode verify --callable pkg.mod:fn": "pkg.mod:fn stands for the reader's function",
    "refnode reproduce cnf --seeds 1": "a flag in a sentence (a one-seed run): parsed",
    "refnode verify --callable mypackage.check:solve_and_grad --rtol 1e-8":
        "mypackage.check is the reader's own module",
    "refnode verify --callable mypkg.check:solve --rtol 1e-7 [--atol 1e-10] [--problems spiral,mlp]":
        "mypkg.check is the reader's own module",
    "refnode verify --callable student_module:solve --rtol 1e-6": "the student's own module",
    "refnode verify --results results.json --rtol 1e-7": "results.json is the reader's file",
    "python -m pytest -p course.swap --swap refnode.nn.dense:ConcatLinear.vjp=student.py:vjp -m vjp tests":
        "student.py is the student's file; the swap is run with the example solution "
        "by tests/test_course_kit.py",
    "pip install -e '.[gpu]'": "needs CUDA 12 and a GPU",
    "python benchmarks/bench_gpu.py": "needs a GPU (and torch)",
    "apt-get install dataset-fashion-mnist": "a system package, installed as root",
    "python3 -m http.server -d /tmp/refnode-site": "serves until stopped",
    "pip install torch==2.13.0": "the optional [verify] libraries: large downloads",
    "pip install -e '.[verify]'": "the optional [verify] libraries: large downloads",
    "pip install 'refnode[verify]'": "the optional [verify] libraries: large downloads",
    "pip install 'refnode[notebooks]'": "an install; the [notebooks] tools are in [test]",
    "refnode verify --library torchdiffeq --rtol 1e-7 --atol 1e-10":
        "needs torchdiffeq ([verify]); tests/test_verify_adapters.py runs the adapters "
        "where the library is installed",
    "refnode verify --library diffrax --gradient backsolve --problems decay,cnf": "needs diffrax ([verify])",
    "refnode verify --library diffrax --gradient direct --problems sensitive --rtol 1e-7 --atol 1e-10":
        "needs diffrax ([verify])",
    "refnode reproduce cnf --quick --seeds 3 --json runs/cnf-quick/seeds.json":
        "minutes; tests/test_cnf.py::test_reproduce_cnf_tiny_runs_and_writes_results runs --tiny",
    "refnode reproduce cnf --json runs/cnf/seeds.json": "the full budget: about 15 minutes a seed",
    "refnode reproduce cnf --json runs/cnf/seeds.json --out figures":
        "the full budget, and it replaces the committed figures",
    "refnode reproduce latent --seeds 5 --run-dir runs/latent": "the reference budget: hours",
    "refnode reproduce latent --task one-turn --seeds 3": "the reference budget: hours",
    "refnode reproduce table1 $A --models mlp resnet odenet --json runs/table1c/main.json --out figures":
        "all of Fashion-MNIST, one epoch: hours",
    "refnode reproduce table1 $A --models odenet --odenet-gradient discrete --no-figures "
    "--json runs/table1c/discrete.json": "all of Fashion-MNIST, one epoch: hours",
    "refnode reproduce table1 $A --models rknet --no-figures --json runs/table1c/rknet.json":
        "all of Fashion-MNIST, one epoch: hours",
    **{f"refnode reproduce table1 $A --data DIR --device gpu --models {name} --no-figures "
       f"--json t1-{name}.json": "needs a GPU (CuPy) and the data in DIR: minutes a model"
       for name in ("mlp", "resnet", "odenet", "rknet")},
}
#: Kinds of documented command that no test runs, by pattern, and why.
NOT_RUN_PATTERNS = [
    (r"^refnode [^`]*(\[|\||<)", "a synopsis (options in brackets, alternatives with |): "
     "every subcommand, flag and choice in it is parsed"),
    (r"^refnode( [a-z0-9]+)*$",
     "a subcommand's name in a sentence: parsed"),
    (r"^refnode verify --library( torchdiffeq)?$", "a flag named in a sentence: parsed"),
    (r"^python -m refnode\.reference\.conformance ", "needs every [verify] library; "
     "--part runs take hours (docs/conformance.md)"),
    (r"^nohup nice -n 5 python -m refnode\.cli reproduce table1 --dataset fashion ",
     "Fashion-MNIST from Debian's package; an hour-long run"),
    (r"^python -m refnode\.cli reproduce table1 --dataset fashion ",
     "Fashion-MNIST from Debian's package; an hour-long run"),
    (r"^python -c ", "one cell of docs/cnf.md's width study: minutes a run"),
    (r"^(python -m )?pytest -m \w+$", "one topic of the suite, which the default run covers"),
    (r"^python -m pytest -m \w+$", "one topic of the suite, which the default run covers"),
    (r"^pip install$", "the word in a sentence"),
    (r"^python -m pytest -p course\.swap --swap MODULE:ATTR=", "the swap command's synopsis"),
]


def doc_texts():
    """{relative path: text} of the documentation files, read now."""
    paths = [p for pattern in DOC_FILES for p in sorted(ROOT.glob(pattern))]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in paths}


def fenced_blocks(text):
    """[(language, body)] of the fenced code blocks of a Markdown text."""
    return re.findall(r"^```([^\n]*)\n(.*?)^```", text, flags=re.S | re.M)


def logical_lines(body):
    """The lines of a shell block with continuations joined and comments removed."""
    lines, pending = [], ""
    for raw in body.splitlines():
        if lines and not pending and re.match(r"\s+\[", raw):
            lines[-1] += " " + raw.strip()      # a synopsis wrapped onto an indented line
            continue
        pending = f"{pending} {raw.strip()}" if pending else raw.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        try:
            tokens = shlex.split(pending, comments=True)
        except ValueError:               # an open quote: the command goes on
            pending += "\n"
            continue
        if tokens:
            lines.append(shlex.join(tokens) if "\n" in pending else strip_comment(pending))
        pending = ""
    return lines


def strip_comment(line):
    """``line`` without a trailing ``  # comment``, whitespace collapsed."""
    return re.split(r"\s#", " ".join(line.split()), maxsplit=1)[0].rstrip()


def is_command(line):
    words = line.split()
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    return bool(words) and words[0] in COMMAND_WORDS


def is_assignment(line):
    """A shell variable set for the commands below it (``A="..."``), or an ellipsis."""
    tokens = shlex.split(line)
    return tokens == ["..."] or (len(tokens) == 1 and re.fullmatch(r"[A-Za-z_]\w*=.*", tokens[0]))


def documented_commands():
    """[(file, command)] for every command of the documentation files."""
    found = []
    for name, text in doc_texts().items():
        for language, body in fenced_blocks(text):
            if language.strip() not in SHELL_LANGUAGES:
                continue
            lines = logical_lines(body)
            if not lines or (not language.strip() and not is_command(lines[0])):
                continue                  # a diagram or a listing, not commands
            found += [(name, line) for line in lines if not is_assignment(line)]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        for span in re.findall(r"`([^`]+)`", prose):
            span = " ".join(span.split())
            if re.match(r"(refnode|python3?|pip|pytest|apt-get|REFNODE_[A-Z_]+=\S+ python3?) ", span) \
                    or span in ("refnode", "pip install"):
                found.append((name, span))
    return found


def how_checked(command):
    """Why ``command`` is covered: 'run here', the test that runs it, or the reason it is not."""
    if command in RUN_HERE:
        return "run here"
    if command in RUN_ELSEWHERE:
        return RUN_ELSEWHERE[command]
    if command in NOT_RUN:
        return NOT_RUN[command]
    return next((reason for pattern, reason in NOT_RUN_PATTERNS if re.search(pattern, command)),
                None)


def test_the_command_extraction_finds_blocks_inline_spans_and_continuations():
    text = ("Run `refnode demo --quick` or\n\n```\nrefnode verify --list   # a comment\n"
            "python -m refnode.cli reproduce table1 --quick \\\n    --json x.json\n```\n\n"
            "```python\nrefnode = 1\n```\n")
    body = fenced_blocks(text)[0][1]
    assert logical_lines(body) == ["refnode verify --list",
                                   "python -m refnode.cli reproduce table1 --quick --json x.json"]
    assert logical_lines("refnode bench [--quick]\n        [--json PATH]\n") == \
        ["refnode bench [--quick] [--json PATH]"]
    assert is_assignment('A="--epochs 1"') and not is_assignment("jupyter lab")
    assert [lang for lang, _ in fenced_blocks(text)] == ["", "python"]


def test_every_documented_command_is_run_or_says_why_not():
    commands = documented_commands()
    assert len(commands) > 40 and any(c == "refnode verify --list" for _, c in commands)
    missing = sorted({f"{name}: {command}" for name, command in commands
                      if how_checked(command) is None})
    assert not missing, ("commands in the documentation that no test runs and no reason "
                         "excuses (add them to RUN_HERE, RUN_ELSEWHERE or NOT_RUN in "
                         "tests/test_readme.py):\n" + "\n".join(missing))


def test_tests_named_as_running_a_documented_command_exist():
    for command, where in RUN_ELSEWHERE.items():
        path, _, test = where.split()[0].partition("::")
        assert (ROOT / path).is_file(), f"{command!r}: {path} does not exist"
        if not test:
            continue
        assert re.search(rf"^def {test}\(", (ROOT / path).read_text(encoding="utf-8"),
                         flags=re.M), f"{command!r}: {where} does not exist"


def refnode_argv(command):
    """The arguments of each `refnode` invocation in ``command`` (``$A`` expanded)."""
    found = []
    for piece in command.split("&&"):
        words = piece.split()
        while words and (re.fullmatch(r"[A-Z_]+=\S*", words[0]) or words[0] in ("nohup",)):
            words = words[1:]
        if words[:3] == ["nice", "-n", "5"]:
            words = words[3:]
        if words[:3] in (["python", "-m", "refnode.cli"], ["python3", "-m", "refnode.cli"]):
            words = ["refnode"] + words[3:]
        if words[:1] == ["refnode"]:
            cut = next((i for i, w in enumerate(words) if w in (">", "2>&1", "&")), len(words))
            found.append(" ".join(words[1:cut]))
    return found


def synopsis_variants(argv):
    """Concrete argument lists from a synopsis: placeholders filled, one alternative each."""
    text = argv
    for word, value in PLACEHOLDERS.items():
        text = re.sub(rf"(?<![\w.-]){re.escape(word)}(?![\w.-])", value, text)
    groups = re.findall(r"\[([^\[\]]*)\]", text)
    options = [[a.strip() for a in g.split(" | ")] for g in groups]
    width = max([len(o) for o in options] + [len(w.split("|")) for w in text.split()] + [1])
    variants = []
    for k in range(width):
        chosen = text
        for group, alternatives in zip(groups, options):
            chosen = chosen.replace(f"[{group}]", alternatives[min(k, len(alternatives) - 1)], 1)
        words = [w.split("|")[min(k, len(w.split("|")) - 1)] if "|" in w and w != "|" else w
                 for w in chosen.split() if w != "..."]
        variants.append(words)
    return variants


def check_flags(parser, words, where):
    """Every subcommand, flag and choice in ``words`` exists in ``parser`` (a synopsis)."""
    for i, word in enumerate(words):
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if word.startswith("-"):
            action = parser._option_string_actions.get(word.split("=")[0])
            assert action is not None, f"{where}: {word} is not an option of {parser.prog}"
            if action.choices and i + 1 < len(words):
                assert words[i + 1] in action.choices, f"{where}: {words[i + 1]} for {word}"
        elif sub is not None and not (i and words[i - 1].startswith("-")):
            assert word in sub.choices, f"{where}: {word} is not a subcommand of {parser.prog}"
            return check_flags(sub.choices[word], words[i + 1:], where)


def test_every_documented_refnode_command_parses():
    """Concrete commands are parsed whole (values too); synopses and names in sentences
    have every subcommand, flag and choice looked up in the same parser."""
    from refnode import cli
    checked = 0
    for name, command in documented_commands():
        for argv in refnode_argv(command):
            where = f"{name}: refnode {argv}"
            parser = cli.build_parser()
            expanded = argv.replace("$A", TABLE1_ARGS)
            variants = synopsis_variants(expanded)
            for words in variants:
                check_flags(parser, words, where)
                if variants == [expanded.split()] and command not in NOT_RUN_NAMES:
                    try:
                        parser.parse_args(words)
                    except SystemExit as stop:
                        raise AssertionError(f"{where} does not parse") from stop
            checked += 1
    assert checked > 30


#: docs/table1.md's ``A="..."``, which its commands expand.
TABLE1_ARGS = "--dataset fashion --train-size 60000 --test-size 10000 --batch-size 128 " \
              "--epochs 1 --dtype float32"
#: Names in sentences: a subcommand without the arguments it needs is not a whole command.
NOT_RUN_NAMES = {"refnode verify", "refnode verify --library", "refnode reproduce table1",
                 "refnode reproduce cnf", "refnode reproduce latent", "refnode reproduce",
                 "refnode verify --library torchdiffeq"}


def test_documented_commands_run_here(tmp_path, capsys):
    """The cheap ones, as printed (outputs under tmp_path)."""
    from refnode import cli
    for command, argv in RUN_HERE.items():
        argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
        if argv[0] == "-m":
            result = subprocess.run([sys.executable, *argv], cwd=tmp_path, capture_output=True,
                                    text=True, timeout=120,
                                    env=dict(os.environ, PYTHONPATH=str(ROOT)))
            assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
        else:
            assert cli.main(argv) == 0, command
            assert capsys.readouterr().out.strip(), command
