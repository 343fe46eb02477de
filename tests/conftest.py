"""Shared test configuration: hypothesis profiles and array backends.

Profiles (select with ``HYPOTHESIS_PROFILE=thorough`` or pytest's
``--hypothesis-profile``): ``ci`` (default, a few dozen examples per property, what
.ci/run uses) and ``thorough`` (hundreds, for local runs before a release).
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
