"""``groupvit-app``: a browser page to segment and ground your own images (an optional extra, Gradio).

:mod:`groupvit.app.engine` and :mod:`groupvit.app.views` compute everything the page shows as plain
functions; :mod:`groupvit.app.ui` lays the page out; :mod:`groupvit.cli.app` starts the server.
"""
