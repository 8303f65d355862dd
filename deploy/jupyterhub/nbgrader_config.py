# The global nbgrader_config.py of a hub with LLM Labs courses: every server on the hub reads it
# (instructors' and students'). Install it as /etc/jupyter/nbgrader_config.py, or in the folder
# courses.toml's `jupyter_config_dir` names. Course settings (course id, time limits, the
# grading kernel) are in each course directory's own nbgrader_config.py (`llmlabs course init`).
import os

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821 (provided by nbgrader)

# A user's courses are their JupyterHub groups: nbgrader-COURSE (students), formgrade-COURSE
# (instructors). The Assignment List shows a student only their courses' assignments.
c.Authenticator.plugin_class = JupyterHubAuthPlugin
# One exchange for all courses, a folder per course in it (EXCHANGE/COURSE/{outbound,inbound,feedback}).
c.Exchange.path_includes_course = True
# Set by jupyterhub_config.py from courses.toml (not an nbgrader variable).
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
