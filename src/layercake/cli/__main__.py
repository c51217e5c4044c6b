"""``python -m layercake.cli``: the same as the ``layercake`` command."""

import sys

from layercake.cli import main

sys.exit(main())
