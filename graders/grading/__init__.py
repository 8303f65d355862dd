"""Grading: every score comes from real nbgrader (`grade.grade_submissions`), in a course
directory written by `course.init_course` — the same code behind `llmlabs course init`.

`units` (the registry), `course`, `job` + `nbgrader_child` (the nbgrader child process),
`submission` (refuse damaged notebooks), `audit` (static tampering checks), `feedback`
(hidden tracebacks stripped), `release` (the student version), `grade` (the path itself).
"""
