"""Command-line entry points (console scripts in pyproject.toml): ``groupvit-demo``,
``groupvit-analyze``, ``groupvit-convert``, ``groupvit-ground``, ``groupvit-eval-grounding``. Each
module has a ``main(argv) -> int``."""
