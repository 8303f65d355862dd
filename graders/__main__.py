"""`python -m graders`: the `llmlabs` command without its console script."""

import sys

from graders.cli import main

sys.exit(main())
