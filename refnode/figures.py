"""Where a tutorial's figures go, and how they are shown.

A tutorial runs two ways, and each figure must reach the reader both ways:

* **in Jupyter** (a notebook from ``refnode tutorials --notebooks DIR``, or the documentation
  site), the figure appears inline under the cell that makes it;
* **as a script** (``python tutorials/04_the_adjoint_method.py``), the figure is written to
  a file and its path printed.

Either way the figure is saved, and where it goes is explicit: the directory named by the
environment variable ``REFNODE_FIGURES`` when it is set (``REFNODE_FIGURES=figures`` is the
way to replace the committed figures), otherwise a new temporary directory. A tutorial run
never writes over ``figures/`` unless asked to.

Nothing here picks a matplotlib backend: Jupyter's kernel uses its inline backend, and
headless runs set ``MPLBACKEND=Agg`` in the environment.
"""

import os
import sys
import tempfile

#: The environment variable that names the directory figures are written to.
FIGURES_ENV = "REFNODE_FIGURES"


def figure_directory(prefix="refnode-figures-"):
    """The directory to write figures to, created if needed.

    Parameters
    ----------
    prefix : str
        Name prefix of the temporary directory made when ``$REFNODE_FIGURES`` is unset.

    Returns
    -------
    str
        ``$REFNODE_FIGURES`` if set and non-empty, else a fresh temporary directory.
    """
    chosen = os.environ.get(FIGURES_ENV, "").strip()
    if chosen:
        os.makedirs(chosen, exist_ok=True)
        return chosen
    return tempfile.mkdtemp(prefix=prefix)


def in_notebook():
    """True inside a Jupyter kernel (where rich output such as images can be displayed)."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_file(path):
    """Display an image file inline when running in Jupyter; elsewhere print its path.

    Parameters
    ----------
    path : str
        A PNG file (for example one that an experiment's plotting function wrote).
    """
    if in_notebook():
        from IPython.display import Image, display
        display(Image(filename=path))
    else:
        print("wrote", path)


def show(fig, path, dpi=100):
    """Save ``fig`` to ``path``, close it, and display the saved image inline in Jupyter.

    Closing the figure after saving keeps Jupyter's inline backend from drawing it a second
    time, and keeps a script from accumulating open figures.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str
        Where the PNG goes (normally inside :func:`figure_directory`).
    dpi : int
        Resolution of the saved file.
    """
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    show_file(path)
