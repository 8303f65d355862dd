# Beside the global nbgrader_config.py (courses.toml's `jupyter_config_dir`): read by every
# user's server on the hub.
c = get_config()  # noqa: F821 (provided by Jupyter)

# A terminal's shell is not a login shell, so that it keeps the PATH jupyterhub_config.py gives
# the server (the user's environment first: `llmlabs`, `nbgrader`), which /etc/profile would reset.
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash"]}
