"""Entry point of the `llmlabs-grader` kernel: the environment is set, then ipykernel runs.

Kept as its own module so that resource limits and sandboxing have one place to live.
"""

from __future__ import annotations

import os
import sys

from graders.kernel import KERNEL_ENV


def main() -> None:
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    from ipykernel import kernelapp

    sys.argv = ["ipykernel_launcher", *sys.argv[1:]]
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
