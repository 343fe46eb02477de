"""The paper's experiments, run by ``refnode reproduce NAME``.

Each experiment's logic is a module here (:mod:`.table1`, :mod:`.cnf`, :mod:`.latent`); its
command is listed in :data:`refnode.commands.reproduce.EXPERIMENTS`. What they share (atomic
figure and JSON writes, the training loop with checkpoints and a progress bar, mean ± sd
over seeds, checked arguments and output paths) is in :mod:`.common` and :mod:`.common_cli`.
"""
