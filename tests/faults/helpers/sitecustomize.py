"""Imported by Python at start-up when this folder is on PYTHONPATH: no network in this process.

The fault tests put tests/faults/helpers first on PYTHONPATH of the ``engine`` subprocesses they
start; attempts are logged to $TUNELOOP_NET_GUARD_LOG.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netguard  # noqa: E402

sys.path.pop(0)
netguard.install(os.environ.get(netguard.LOG_ENV))
