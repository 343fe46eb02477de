"""A griffe extension for the API pages: one row for parameters documented together.

NumPy-style docstrings may document several parameters in one entry (``f, z0, t : ...``).
griffe splits such an entry into one parameter per name, each with the whole description, so
the API table repeats the same sentence once per name. This extension joins them back: a run
of consecutive parameters with the same description becomes one row named ``f, z0, t``.
"""

import griffe

#: Shown as the default of a joined row whose parameters have defaults (see the signature).
SEE_SIGNATURE = "see signature"


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


class JoinSharedParameters(griffe.Extension):
    """Join parameters that share one docstring entry (see the module docstring)."""

    def on_function_instance(self, *, func, **kwargs):
        if func.docstring is None:
            return

        def has_default(name):
            name = name.lstrip("*")
            if name not in func.parameters:
                return False
            parameter = func.parameters[name]
            return parameter.default is not None or parameter.kind.value.startswith("variadic")

        for section in func.docstring.parsed:
            if section.kind is griffe.DocstringSectionKind.parameters:
                section.value[:] = join_shared_entries(section.value, has_default)
