"""Subcommands of the ``refnode`` command (see :mod:`refnode.cli`)."""
