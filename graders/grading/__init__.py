"""Grading: every score comes from real nbgrader (`grade.grade_submissions`), in a course
directory written by `course.init_course` — the same code behind `llmlabs course init`.

`units` (the registry), `course`, `job` + `nbgrader_child` (the nbgrader child process),
`autograde` (nbgrader's steps in-process), `assignment_cache` (the generated assignment, cached
per content hash), `submission` (refuse damaged notebooks), `audit` (static tampering
checks), `feedback` (hidden tracebacks stripped), `release` (the student version),
`grade` (the path itself).

`llmlabs grade` (a whole class, in parallel): `batch` (the coordinator), `worker` (the
task each Dask worker runs), `cluster` (LocalCluster or a scheduler), `gradebook` (the
course's gradebook, opened loudly, written by one process), `ledger` (what is already
graded; one run per course). Throughput against stock nbgrader: `graders.benchmarks.grading`.

`llmlabs report` (after grading): `report` (the class's scores, pass rates, failure lines and
flags, from the gradebook and the autograded notebooks) and `report_html` (its page).
"""
