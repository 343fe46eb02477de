"""The conformance matrix: every built-in adapter, every reference problem, three tolerances.

    python -m refnode.reference.conformance --out DIR [--libraries torchdiffeq,jax,...]
    python -m refnode.reference.conformance --merge DIR/part-*.json --out DIR

Rows are library × gradient mode; columns problem × quantity group (state, ∂L/∂z0,
∂L/∂θ over every parameter, ∂L/∂t over every t_i, extras). Each cell is the worst
error-to-tolerance ratio of the group with its verdict: ``ok``/``FAIL`` (ratio <= 1 passes,
tolerance = 100 · rtol + golden accuracy), ``n/s`` (the library cannot give it),
``spread`` (the non-smooth problem: ratio to refnode's own spread), ``error`` (the solve
raised). A library that is not installed is left out and named. Writes ``DIR/conformance.json``
and ``DIR/conformance.md`` (the table docs/conformance.md shows); nothing in the repository
unless DIR is in it.
"""

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError
from .adapters import LIBRARIES, LibraryMissingError, adapter_callable, load_adapter
from .golden_files import write_json
from .problems import PROBLEM_NAMES

#: (rtol, atol) settings. atol = 1e-3 · rtol: the stiff problem's time gradients and the
#: CNF's parameter gradients need an atol below rtol (docs/conformance.md); the last
#: setting, atol = rtol, shows that.
SETTINGS = ((1e-4, 1e-7), (1e-7, 1e-10), (1e-10, 1e-13), (1e-7, 1e-7))
GROUPS = ("state", "dL/dz0", "dL/dtheta", "dL/dt", "extras")
#: Verdicts, worst first: a group's cell takes the worst of its rows.
ORDER = ("error", "FAIL", "spread", "ok", "n/s", "skipped")


def group_of(quantity):
    for g in GROUPS[:4]:
        if quantity == g or quantity.startswith(g + "[") or quantity == g:
            return g
    return "extras"


def cells(report):
    """{problem: {group: {"status", "ratio"}}} from a VerifyReport."""
    out = {}
    for r in report.rows:
        cell = out.setdefault(r.problem, {}).setdefault(group_of(r.quantity),
                                                        {"status": "n/s", "ratio": None})
        ratio = r.rel_err / r.tolerance if r.status in ("ok", "FAIL", "spread") else None
        if ORDER.index(r.status) < ORDER.index(cell["status"]):
            cell["status"] = r.status
        if ratio is not None and (cell["ratio"] is None or ratio > cell["ratio"]):
            cell["ratio"] = ratio
    return out


def run_row(library, gradient, settings=SETTINGS, names=PROBLEM_NAMES, log=print, row=None,
            saved=lambda: None):
    """One matrix row: every setting and problem, into ``row`` (a JSON-able dict); ``saved()``
    is called after each cell (a long run keeps what it has measured)."""
    from ..verify import verify_callable
    fn, label = adapter_callable(library, gradient)
    row = {} if row is None else row
    row.update(library=library, gradient=gradient, label=label, results=[])
    for rtol, atol in settings:
        for name in names:
            start = time.perf_counter()
            try:
                report = verify_callable(fn, rtol, atol, names=(name,))
                entry = cells(report).get(name, {})
                failures = [f"{r.quantity}: {r.rel_err:.3g} > {r.tolerance:.3g}"
                            for r in report.failures]
            except InputError as err:
                entry, failures = {"all": {"status": "error", "ratio": None}}, [str(err)[:300]]
            seconds = time.perf_counter() - start
            row["results"].append(dict(rtol=rtol, atol=atol, problem=name, cells=entry,
                                       failures=failures, seconds=round(seconds, 2)))
            worst = min((c["status"] for c in entry.values()), key=ORDER.index, default="-")
            log(f"{library}/{gradient} rtol={rtol:g} atol={atol:g} {name}: {worst} "
                f"({seconds:.1f} s)", flush=True)
            saved()
    return row


def format_cell(cell):
    if cell is None:
        return ""
    status, ratio = cell["status"], cell["ratio"]
    return status if ratio is None else f"{status} {ratio:.2g}"


def summary_cell(entry):
    """One problem's cell in the summary: the worst verdict, its largest ratio, the groups."""
    if "all" in entry["cells"]:
        return "error"
    cells_ = entry["cells"]
    worst = min((c["status"] for c in cells_.values()), key=ORDER.index, default="-")
    ratios = [c["ratio"] for c in cells_.values() if c["status"] == worst and c["ratio"] is not None]
    text = worst + (f" {max(ratios):.2g}" if ratios else "")
    if worst == "FAIL":
        text += " (" + ", ".join(g for g, c in cells_.items() if c["status"] == "FAIL") + ")"
    ns = [g for g, c in cells_.items() if c["status"] == "n/s"]
    return text + (f"; {', '.join(ns)} n/s" if ns and worst != "n/s" else "")


def settings_of(document):
    return sorted({(e["rtol"], e["atol"]) for row in document["rows"] for e in row["results"]},
                  key=lambda s: (s[0] == s[1], -s[0]))


def render_summary(document):
    """One table per (rtol, atol): rows library / gradient, columns problems, cells the worst
    verdict with its largest error-to-tolerance ratio."""
    names = [n for n in PROBLEM_NAMES
             if any(e["problem"] == n for row in document["rows"] for e in row["results"])]
    lines = []
    for rtol, atol in settings_of(document):
        lines += [f"#### rtol = {rtol:g}, atol = {atol:g}", "",
                  "| library / gradient | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for row in document["rows"]:
            by_name = {e["problem"]: e for e in row["results"] if (e["rtol"], e["atol"]) == (rtol, atol)}
            lines.append(f"| {row['library']} / {row['gradient']} | " + " | ".join(
                summary_cell(by_name[n]) if n in by_name else "not run" for n in names) + " |")
        lines.append("")
    return "\n".join(lines)


def render_failures(document):
    """Every failing or erroring cell, with the quantities and their errors."""
    lines = []
    for row in document["rows"]:
        for e in row["results"]:
            if e["failures"]:
                lines.append(f"* {row['library']} / {row['gradient']}, rtol = {e['rtol']:g}, "
                             f"atol = {e['atol']:g}, {e['problem']}: "
                             + "; ".join(e["failures"][:4])
                             + (f"; and {len(e['failures']) - 4} more" if len(e["failures"]) > 4
                                else ""))
    return "\n".join(lines)


def render(document):
    """The Markdown tables: one per (rtol, atol), rows library/mode, columns problem × group."""
    lines = []
    for rtol, atol in settings_of(document):
        lines += [f"#### rtol = {rtol:g}, atol = {atol:g}", "",
                  "| library / gradient | problem | " + " | ".join(GROUPS) + " |",
                  "|---|---|" + "---|" * len(GROUPS)]
        for row in document["rows"]:
            for e in (e for e in row["results"] if (e["rtol"], e["atol"]) == (rtol, atol)):
                if "all" in e["cells"]:
                    cols = ["error: " + e["failures"][0][:60].replace("|", "/")] + [""] * 4
                else:
                    cols = [format_cell(e["cells"].get(g)) for g in GROUPS]
                lines.append(f"| {row['library']} / {row['gradient']} | {e['problem']} | "
                             + " | ".join(cols) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m refnode.reference.conformance",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="comma-separated library[/gradient] entries (default: all)")
    parser.add_argument("--problems", default=",".join(PROBLEM_NAMES))
    parser.add_argument("--settings", default=",".join(f"{r:g}:{a:g}" for r, a in SETTINGS),
                        help="comma-separated rtol:atol pairs, run in this order")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="merge row files written before (part-*.json) instead of running")
    parser.add_argument("--part", metavar="NAME", help="write DIR/part-NAME.json only")
    args = parser.parse_args(argv)
    if args.merge:
        rows, versions = {}, {}
        for path in args.merge:                 # rows of one library / gradient are joined
            part = json.loads(path.read_text())
            for row in part["rows"]:
                key = (row["library"], row["gradient"])
                rows.setdefault(key, dict(row, results=[]))["results"] += row["results"]
            versions.update(part["versions"])
        order = {(lib, mode): (i, j) for i, (lib, (_, modes)) in enumerate(LIBRARIES.items())
                 for j, mode in enumerate(modes)}
        rows = [rows[k] for k in sorted(rows, key=lambda k: order.get(k, (99, 0)))]
        document = dict(date=min(json.loads(p.read_text())["date"] for p in args.merge),
                        versions=versions, rows=rows, missing=[])
    elif args.part:
        part = args.out / f"part-{args.part}.json"
        run(args.libraries.split(","), tuple(args.problems.split(",")), settings(args.settings),
            saved=lambda document: write_json(part, document))
        return 0
    else:
        document = run(args.libraries.split(","), tuple(args.problems.split(",")),
                       settings(args.settings))
    write_json(args.out / "conformance.json", document)
    text = "\n\n".join(["## Summary", render_summary(document), "## Every failing cell",
                         render_failures(document), "## Per quantity", render(document)])
    (args.out / "conformance.md").write_text(text, encoding="utf-8")
    print(f"wrote {args.out / 'conformance.json'} and {args.out / 'conformance.md'}")
    return 0


def settings(text):
    """"1e-7:1e-10,1e-4:1e-7" -> ((1e-7, 1e-10), (1e-4, 1e-7))."""
    return tuple(tuple(float(x) for x in pair.split(":")) for pair in text.split(","))


def run(entries, names, settings=SETTINGS, saved=lambda document: None):
    """Every library[/gradient] entry's rows; libraries not installed are listed as missing.
    ``saved(document)`` is called after each cell."""
    document = dict(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    versions={}, rows=[], missing=[])
    for entry in entries:
        library, _, gradient = entry.partition("/")
        try:
            module, _ = load_adapter(library)
        except LibraryMissingError as err:
            document["missing"].append(str(err))
            continue
        document["versions"].update(module.versions())
        modes = (gradient,) if gradient else LIBRARIES[library][1]
        for mode in modes:
            row = {}
            document["rows"].append(row)
            run_row(library, mode, settings, names=names, row=row, saved=lambda: saved(document))
    return document


if __name__ == "__main__":
    sys.exit(main())
