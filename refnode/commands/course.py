"""``refnode course``: build the students' handout of the course, grade a class.

    refnode course list                          the assignments, in order
    refnode course build DIR [--force]           write the handout into DIR
    refnode course grade FOLDER SUBMISSIONS      grade every submission in SUBMISSIONS

The assignments live in ``course/`` next to the package (a source checkout): a table
(``course/assignments.py``) names, for each one, the refnode functions the student
writes. ``build`` copies each assignment's statement and grading tests and generates its
template ``student.py`` from refnode's own source: signature and docstring kept (the
equations are the assignment), body replaced by ``raise NotImplementedError``. The
output depends only on refnode's source, so the same checkout builds the same handout.
The reference solution is refnode itself (``REFNODE_SUBMISSION=refnode python -m pytest``).
"""

import ast
import importlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from ..errors import InputError
from ..experiments.common_cli import check_output_dir, path_object

HELP = "build the course's student handout (templates generated from refnode), grade a class"

#: The course folder of a source checkout: next to the refnode package.
COURSE_DIR = Path(__file__).resolve().parents[2] / "course"
#: The repository root (the handout is never written inside it).
REPOSITORY = COURSE_DIR.parent
#: Copied into every assignment folder.
PYTEST_INI = "[pytest]\naddopts = -p no:cacheprovider\n"


def configure(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="the assignments, in order")
    build = sub.add_parser("build", help="write the student handout into DIR")
    build.add_argument("dir", metavar="DIR", type=path_object, help="a new or empty folder outside the repository")
    build.add_argument("--force", action="store_true", help="write into a non-empty DIR (files are replaced)")
    grade = sub.add_parser("grade", help="grade every submission in a folder: a student x test table")
    grade.add_argument("assignment", metavar="FOLDER", type=path_object,
                       help="a built assignment folder, e.g. DIR/01_rk_step")
    grade.add_argument("submissions", metavar="SUBMISSIONS", type=path_object,
                       help="a folder of students' files: NAME.py, or NAME/student.py")


def assignments():
    """The table of :mod:`course.assignments` (a list of dicts, in order)."""
    table = COURSE_DIR / "assignments.py"
    if not table.is_file():
        raise InputError(f"no course at {COURSE_DIR}: the course ships with the source checkout "
                         "(git clone, then pip install -e .)")
    spec = importlib.util.spec_from_file_location("_refnode_course_assignments", table)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ASSIGNMENTS


# --- templates --------------------------------------------------------------------------------


def reference_function(target):
    """The reference solution for ``"module:qualified.name"``: refnode's own function, or
    one of the course's (``course.solutions.*``, read from the source checkout)."""
    module_name, _, qualname = target.partition(":")
    if module_name.partition(".")[0] == "course" and str(REPOSITORY) not in sys.path:
        sys.path.append(str(REPOSITORY))
    owner = importlib.import_module(module_name)
    for name in qualname.split("."):
        owner = getattr(owner, name)
    return owner


def blank(target, name):
    """The source of refnode's ``target`` renamed ``name``: signature and docstring, body
    ``raise NotImplementedError``. A method becomes a function that keeps ``self``."""
    source = textwrap.dedent(inspect.getsource(reference_function(target)))
    node = ast.parse(source).body[0]
    docstring = ast.get_docstring(node, clean=False)
    if docstring is None:
        raise InputError(f"{target} has no docstring: it cannot be an assignment (the "
                         "docstring's equations are what the student implements)")
    header = source.splitlines()[:node.body[0].end_lineno]     # def ... and the docstring
    header[0] = header[0].replace(f"def {node.name}(", f"def {name}(", 1)
    indent = " " * node.body[0].col_offset
    return "\n".join(header + [f'{indent}raise NotImplementedError("{name}: your code here")']) + "\n"


def template(assignment):
    """The text of an assignment's ``student.py``."""
    blanks = assignment["blanks"]
    intro = (f'"""Assignment {assignment["folder"]}: {assignment["title"]}.\n\n'
             f"Write {', '.join(blanks)} below: each docstring gives the equations. Grade "
             "your work with\n\n    python -m pytest -q\n\nfrom this folder (README.md says "
             'what the tests check).\n"""\n\n')
    parts = [intro + assignment["given"]]
    parts += [blank(target, name) for name, target in blanks.items()]
    return "\n\n".join(parts)


# --- build ------------------------------------------------------------------------------------


def check_destination(directory, force):
    """Refuse the repository, (without ``force``) a non-empty folder, and one that cannot be
    created or written, before any writing."""
    directory = directory.resolve()
    if directory == REPOSITORY or REPOSITORY in directory.parents:
        raise InputError(f"{directory} is inside the repository {REPOSITORY}: build the handout "
                         "elsewhere, e.g. refnode course build /tmp/course")
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise InputError(f"{directory} is not empty: choose a new folder, or pass --force to "
                         "replace the handout's files in it")
    check_output_dir(str(directory), "DIR")


def handout_files(assignment):
    """{relative path: text} of one assignment's folder in the handout."""
    folder = COURSE_DIR / assignment["folder"]
    files = {path.name: path.read_text(encoding="utf-8")
             for path in sorted(folder.iterdir()) if path.suffix in (".py", ".md")}
    files["student.py"] = template(assignment)
    files["conftest.py"] = (COURSE_DIR / "handout_conftest.py").read_text(encoding="utf-8")
    files["assignment.json"] = json.dumps({"title": assignment["title"], "blanks": assignment["blanks"]},
                                          indent=2) + "\n"
    files["pytest.ini"] = PYTEST_INI
    return {f"{assignment['folder']}/{name}": text for name, text in files.items()}


def overview(table):
    lines = ["# Neural ODEs from the ground up: the assignments", "",
             "Each folder is one assignment: read its README.md, write the functions in its",
             "student.py, and grade them with `python -m pytest -q` from that folder.", "",
             "| folder | assignment | about |", "|---|---|---|"]
    lines += [f"| {a['folder']} | {a['title']} | {a['minutes']} min |" for a in table]
    return "\n".join(lines) + "\n"


def write_text(path, text):
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build(directory, force=False):
    """Write the handout into ``directory``; returns the paths written."""
    check_destination(directory, force)
    table = assignments()
    files = {"README.md": overview(table)}
    for assignment in table:
        files.update(handout_files(assignment))
    files["pytest.ini"] = PYTEST_INI
    written = []
    for relative, text in sorted(files.items()):
        write_text(directory / relative, text)
        written.append(directory / relative)
    return written


# --- grade ------------------------------------------------------------------------------------


def find_submissions(folder):
    """{student: path} for NAME.py and NAME/student.py in ``folder``."""
    found = {path.stem: path for path in sorted(folder.glob("*.py"))}
    found.update({path.parent.name: path for path in sorted(folder.glob("*/student.py"))})
    return dict(sorted(found.items()))


def grade_one(assignment, path):
    """{test name: "" if passed else its hint} for one submission (one pytest run)."""
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        environment = dict(os.environ, REFNODE_SUBMISSION=str(path.resolve()),
                           REFNODE_GRADE_RESULTS=str(results))
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", str(assignment)],
                             cwd=assignment, env=environment, capture_output=True, text=True)
        if not results.is_file():
            last = (run.stdout + run.stderr).strip().splitlines()
            return {"(not graded)": last[-1] if last else f"pytest exited {run.returncode}"}
        return json.loads(results.read_text(encoding="utf-8"))


def grade_table(grades):
    """Lines of the student x test table, then each failure's hint."""
    tests = sorted({test for result in grades.values() for test in result})
    width = max([len(s) for s in grades] + [7])
    lines = [f"{'student':<{width}}  " + "  ".join(f"T{i + 1}" for i in range(len(tests))) + "  passed"]
    for student, result in grades.items():
        marks = ["ok" if result.get(test) == "" else "--" if test not in result else "F"
                 for test in tests]
        passed = sum(1 for test in tests if result.get(test) == "")
        lines.append(f"{student:<{width}}  " + "  ".join(f"{m:<{len(f'T{i + 1}')}}"
                                                        for i, m in enumerate(marks))
                     + f"  {passed}/{len(tests)}")
    lines += [""] + [f"T{i + 1}: {test}" for i, test in enumerate(tests)]
    for student, result in grades.items():
        for test, hint in result.items():
            if hint:
                lines.append(f"{student}, {test}: {hint.splitlines()[0]}")
    return lines


#: What a grader needs that refnode's runtime does not install.
NEEDS_PYTEST = ("grading runs pytest, which is not installed in this environment: "
                "pip install pytest (or refnode's [test] extra)")


def pytest_available():
    return importlib.util.find_spec("pytest") is not None


def run(args):
    if args.action == "list":
        for assignment in assignments():
            print(f"{assignment['folder']:<20} {assignment['title']} (~{assignment['minutes']} min)")
        return 0
    if args.action == "build":
        written = build(args.dir, args.force)
        print(f"wrote {len(written)} files to {args.dir}; grade an assignment with "
              f"cd {args.dir / assignments()[0]['folder']} && python -m pytest -q")
        if not pytest_available():
            print(f"note: {NEEDS_PYTEST}.")
        return 0
    if not pytest_available():
        raise InputError(NEEDS_PYTEST + "; nothing was graded.")
    if not (args.assignment / "assignment.json").is_file():
        raise InputError(f"{args.assignment} is not a built assignment folder (no assignment.json); "
                         "build the handout with refnode course build DIR")
    submissions = find_submissions(args.submissions) if args.submissions.is_dir() else {}
    if not submissions:
        raise InputError(f"no submissions in {args.submissions} (expected NAME.py or NAME/student.py)")
    grades = {student: grade_one(args.assignment, path) for student, path in submissions.items()}
    print("\n".join(grade_table(grades)))
    return 0 if all(hint == "" for result in grades.values() for hint in result.values()) else 1
