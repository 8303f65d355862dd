# JupyterHub (6.x) for LLM Labs courses graded with nbgrader: one hub, one or more courses.
# README.md, "A course on JupyterHub", says how to set it up; tests/browser/test_jupyterhub_class.py
# runs a whole class on it. Run as root (the spawner starts each server as its Unix user):
#
#     /opt/llmlabs/bin/jupyterhub -f /etc/jupyterhub/jupyterhub_config.py
#
# Who teaches and takes what is in courses.toml beside this file (or $HUB_COURSES), following
# nbgrader's "Using nbgrader with JupyterHub": a group `formgrade-COURSE` for the course's
# instructor, `nbgrader-COURSE` for its students, JupyterHubAuthPlugin in nbgrader (global
# nbgrader_config.py), one shared exchange.
import os
import tomllib
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub)

SETTINGS = tomllib.loads(
    Path(os.environ.get("HUB_COURSES") or Path(__file__).with_name("courses.toml")).read_text()
)
COURSES = SETTINGS["courses"]
INSTRUCTORS = {course["instructor"]: course_id for course_id, course in COURSES.items()}
STUDENTS = {name for course in COURSES.values() for name in course["students"]}
if INSTRUCTORS.keys() & STUDENTS:
    raise ValueError(f"an account is both instructor and student: {sorted(INSTRUCTORS.keys() & STUDENTS)}")

# Log in with the Unix account's password (PAM); only the courses' members may.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(INSTRUCTORS) | STUDENTS

# nbgrader's course groups: JupyterHubAuthPlugin reads them to list a user's courses.
c.JupyterHub.load_groups = {
    **{f"formgrade-{cid}": {"users": [course["instructor"]]} for cid, course in COURSES.items()},
    **{f"nbgrader-{cid}": {"users": list(course["students"])} for cid, course in COURSES.items()},
}

# Each user's own server, as their own Unix user, in their home directory.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.default_url = "/lab"
# JupyterHubAuthPlugin asks the hub for the user's groups with the server's token.
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "read:users:groups!user"]
# Nothing of the hub's own environment (its virtualenv, PYTHONPATH) leaks into the servers.
c.Spawner.env_keep = ["LANG", "LC_ALL", "TZ"]


def environment_for(spawner):
    """Instructors run the full llm-labs (the answer key, `llmlabs grade`); students the
    student wheel's environment. Both read the global nbgrader_config.py."""
    name = spawner.user.name
    prefix = SETTINGS["instructor_env"] if name in INSTRUCTORS else SETTINGS["student_env"]
    spawner.cmd = [f"{prefix}/bin/python", "-m", "jupyterhub.singleuser"]
    spawner.environment.update(
        PATH=os.pathsep.join([f"{prefix}/bin", "/usr/local/bin", "/usr/bin", "/bin"]),
        JUPYTER_CONFIG_PATH=SETTINGS["jupyter_config_dir"],
        NBGRADER_EXCHANGE_ROOT=SETTINGS["exchange"],  # read by the global nbgrader_config.py
        HF_HUB_OFFLINE="1",  # everything the notebooks load is bundled
    )
    if name in INSTRUCTORS:
        spawner.environment["NBGRADER_COURSE_ID"] = INSTRUCTORS[name]  # read by ~/.jupyter/nbgrader_config.py


c.Spawner.pre_spawn_hook = environment_for
