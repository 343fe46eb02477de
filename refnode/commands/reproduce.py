"""``refnode reproduce NAME``: run one of the paper's experiments.

Each experiment's command is a module with the same three names as a command (``HELP``,
``configure(parser)``, ``run(args)``), listed in :data:`EXPERIMENTS`. Its logic lives in
:mod:`refnode.experiments` (see :mod:`refnode.experiments.common` for the pattern).
"""

HELP = "reproduce an experiment of the paper (table1, cnf, cnf-curves, latent)"

#: Experiments in the order they are listed: name -> the module of its command.
EXPERIMENTS = {
    "table1": "refnode.commands.reproduce_table1",
    "cnf": "refnode.commands.reproduce_cnf",
    "cnf-curves": "refnode.commands.reproduce_cnf_curves",
    "latent": "refnode.commands.reproduce_latent",
}


def available_experiments():
    """The experiment command modules, by name (a module that fails to import is an error)."""
    from refnode.cli import import_modules
    return import_modules(EXPERIMENTS)


def configure(parser):
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, module in available_experiments().items():
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))


def run(args):
    return available_experiments()[args.experiment].run(args)
