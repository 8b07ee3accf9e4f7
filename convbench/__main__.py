"""``python -m convbench``: the same CLI as the ``convbench`` command."""

from convbench.cli.main import main

main()
