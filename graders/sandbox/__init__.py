"""The sandbox: the security boundary around untrusted notebooks, reviewable on its own.

`launcher` is the `llmlabs-grader` kernel's entry point; `limits` (Limits, the mode),
`bwrap` (the bubblewrap command), `cgroup` (memory and process caps), `guard` (installed
inside the kernel: output cap, monkeypatching undone and reported), `visibility` (what of
the file system the kernel sees: never the answer key). Its cost is measured by
`graders.benchmarks.sandbox`.
It never downgrades silently: what it could not apply is logged and reported.
"""
