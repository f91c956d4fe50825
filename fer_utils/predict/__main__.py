"""``python -m fer_utils.predict``: see :mod:`fer_utils.predict.cli`."""

import sys

from fer_utils.predict.cli import main

sys.exit(main())
