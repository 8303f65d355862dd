"""LLM Labs: auto-graded notebooks for large-model engineers, graded by real nbgrader.

The package has four parts, one per reader:

- `graders.notebook`, for test cells and learners: `setup`, assertions, measurements,
  bundled data, perplexity; the stable API that released notebooks import.
- `graders.grading`, for instructors, self-learners and the CLI: the unit registry,
  course directories, the nbgrader job, submission checks, audit, feedback, release,
  and `grade_submissions`, the one grading path; `llmlabs grade` runs the same nbgrader
  steps for a whole class on Dask workers (`batch`).
- `graders.sandbox`, for whoever reviews security: the kernel launcher, limits,
  cgroups, bubblewrap, what the kernel may see, the in-kernel guard.
- `graders.authoring`, for unit authors and the test suite: the notebook builder, lint,
  the reference reader, the benchmarks' set-up, mutants, the shared mutant kernel,
  mutation grading.

Above them, `graders.benchmarks` measures llmlabs itself (grading throughput, the
sandbox's cost); nothing imports it.

Shared by all four: `cli` (the `llmlabs` command), `settings` (every `LLMLABS_*`
variable), `errors` (`LLMLabsError` and its kinds), `cells` (nbgrader cell metadata),
`paths` (where `curriculum/` and `datasets/` are), `processes` (die with the parent).

Only `graders.notebook` (and its modules) is a stable import path; everything else may
move between versions.
"""

__version__ = "0.1.0"
