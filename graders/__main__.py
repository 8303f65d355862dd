"""`python -m graders`: the `llmlabs` command without its console script."""

import sys

from graders.cli import main

# Guarded: `llmlabs grade` starts Dask workers with multiprocessing's "spawn", which
# imports the parent's main module (this one) in each worker.
if __name__ == "__main__":
    sys.exit(main())
