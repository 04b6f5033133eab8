"""``python -m revenge.cli``, for when the console script is not on PATH."""

import sys

from revenge.cli import main

sys.exit(main())
