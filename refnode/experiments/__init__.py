"""The paper's experiments, one module each, run by ``refnode reproduce NAME``."""
