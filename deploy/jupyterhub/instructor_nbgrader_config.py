# ~/.jupyter/nbgrader_config.py of a course's instructor account: nbgrader in the instructor's
# server (the formgrader at /user/NAME/formgrader, the terminal) works on the course directory
# ~/COURSE_ID and reads its nbgrader_config.py (written by `llmlabs course init`).
import os

c = get_config()  # noqa: F821 (provided by nbgrader)

# Set by jupyterhub_config.py from courses.toml (not an nbgrader variable).
course_id = os.environ.get("NBGRADER_COURSE_ID")
if course_id:
    c.CourseDirectory.root = os.path.join(os.path.expanduser("~"), course_id)
    load_subconfig(os.path.join(c.CourseDirectory.root, "nbgrader_config.py"))  # noqa: F821
