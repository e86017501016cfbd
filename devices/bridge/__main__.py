"""``python -m devices.bridge`` runs the bridge's command line (see :mod:`devices.bridge.cli`)."""

import sys

from devices.bridge.cli import main

sys.exit(main())
