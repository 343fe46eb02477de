"""``refnode reproduce NAME``: run one of the paper's experiments.

Each experiment is a module in :mod:`refnode.experiments` with the same three names as a
command (``HELP``, ``configure(parser)``, ``run(args)``).
"""

HELP = "reproduce an experiment of the paper (table1, cnf, latent)"

#: Experiments in the order they are listed.
EXPERIMENTS = ("table1", "cnf", "latent")


def available_experiments():
    """The experiment modules that exist in this installation, by name."""
    from refnode.cli import import_available
    return import_available("refnode.experiments", EXPERIMENTS)


def configure(parser):
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, module in available_experiments().items():
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))


def run(args):
    return available_experiments()[args.experiment].run(args)
