"""griffe extensions for the API pages: docstring types as written, one row for parameters
documented together.

Types. griffe reads the type of a NumPy-style entry as a Python expression where it can:
``array, shape (N, *z0.shape)`` becomes the tuple ``(array, shape(N, *shape))`` on the page,
and ``{"adjoint", "discrete"} or Adjoint`` the set of choices without "or Adjoint".
:class:`KeepDocstringTypes` puts back the type exactly as the docstring writes it; a type
that is a plain (dotted) name stays an expression, so it still links to its entry.

Shared entries. NumPy-style docstrings may document several parameters in one entry
(``f, z0, t : ...``). griffe splits such an entry into one parameter per name, each with the
whole description, so the API table repeats the same sentence once per name.
:class:`JoinSharedParameters` joins them back: a run of consecutive parameters with the same
description becomes one row named ``f, z0, t``.
"""

import re

import griffe

#: Shown as the default of a joined row whose parameters have defaults (see the signature).
SEE_SIGNATURE = "see signature"

#: Sections whose entries are ``names : type`` (parameters) or ``[name :] type`` (results).
PARAMETER_SECTIONS = ("parameters", "other parameters", "attributes")
RESULT_SECTIONS = ("returns", "yields", "receives")
#: A type that griffe may keep as an expression: a dotted name, linked to its entry.
DOTTED_NAME = re.compile(r"[A-Za-z_][\w.]*")
#: NumPy-style suffixes of a parameter's type that griffe moves to the default column.
TYPE_SUFFIX = re.compile(r",\s*(optional|default(?: |: |=).+)$")


def section_entries(text):
    """``{section title (lower case): [entry header line, ...]}`` of a NumPy-style
    docstring: the unindented lines under each underlined section title."""
    lines = text.splitlines()
    sections, current = {}, None
    for line, below in zip(lines, lines[1:] + [""]):
        if line.strip() and set(line.strip()) == {"-"}:
            continue
        if line.strip() and below.strip() and set(below.strip()) == {"-"}:
            current = sections.setdefault(line.strip().lower(), [])
        elif current is not None and line.strip() and not line[0].isspace():
            current.append(line.strip())
    return sections


def written_types(text):
    """The types as the docstring writes them: ``({parameter name: type}, {section:
    [type or None per entry]})``."""
    entries = section_entries(text)
    parameters = {}
    for title in PARAMETER_SECTIONS:
        for header in entries.get(title, []):
            names, _, kind = header.partition(" : ")
            if kind:
                kind = TYPE_SUFFIX.sub("", kind.strip())
                parameters.update((name.strip(), kind) for name in names.split(","))
    results = {}
    for title in RESULT_SECTIONS:
        results[title] = [header.partition(" : ")[2].strip() if " : " in header
                          else header.strip() for header in entries.get(title, [])]
    return parameters, results


def as_written(kind):
    """What the page shows for a written type: the text, or None for a plain name (griffe's
    expression, a link, is kept then)."""
    return None if not kind or DOTTED_NAME.fullmatch(kind) else kind


def keep_written_types(docstring):
    """Give each entry of ``docstring``'s parsed sections the type as written."""
    parameters, results = written_types(docstring.value)
    for section in docstring.parsed:
        title = section.kind.value.replace("-", " ")
        if title in PARAMETER_SECTIONS:
            for entry in section.value:
                kind = as_written(parameters.get(entry.name))
                if kind is not None:
                    entry.annotation = kind
        elif title in RESULT_SECTIONS:
            for entry, written in zip(section.value, results[title]):
                kind = as_written(written)
                if kind is not None:
                    entry.annotation = kind


def join_shared_entries(parameters, has_default):
    """``parameters`` with each run of equal descriptions joined into one entry.

    ``has_default(name)`` says whether the signature gives parameter ``name`` a default (a
    joined row shows "see signature" then, and "required" only when none has one)."""
    joined = []
    for parameter in parameters:
        previous = joined[-1] if joined else None
        if previous is not None and previous[0].description == parameter.description:
            previous.append(parameter)
        else:
            joined.append([parameter])
    rows = []
    for run in joined:
        if len(run) == 1:
            rows.append(run[0])
            continue
        annotations = {str(p.annotation) for p in run}
        defaults = [p for p in run if p.value is not None or has_default(p.name)]
        rows.append(griffe.DocstringParameter(
            ", ".join(p.name for p in run), description=run[0].description,
            annotation=run[0].annotation if len(annotations) == 1 else None,
            value=SEE_SIGNATURE if defaults else None))
    return rows


def signature_defaults(obj):
    """``has_default(name)`` for :func:`join_shared_entries`: whether the signature of
    ``obj`` (a function, or a class through its ``__init__``) gives ``name`` a default."""
    def has_default(name):
        try:
            parameter = obj.parameters[name.lstrip("*")]
        except (AttributeError, KeyError):
            return False
        return parameter.default is not None or parameter.kind.value.startswith("variadic")
    return has_default


def tidy(obj):
    """Types as written, then shared entries joined, in ``obj``'s parsed docstring."""
    if obj.docstring is None:
        return
    keep_written_types(obj.docstring)
    for section in obj.docstring.parsed:
        if section.kind is griffe.DocstringSectionKind.parameters:
            section.value[:] = join_shared_entries(section.value, signature_defaults(obj))


class DocstringTables(griffe.Extension):
    """Docstring types as written and one row per shared entry (see the module docstring).

    Each object is tidied once the package is loaded: a dataclass's parameters exist then."""

    def on_package(self, *, pkg, **kwargs):
        tidy(pkg)

    def on_object(self, *, obj, **kwargs):
        tidy(obj)
