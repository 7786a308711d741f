"""``python -m bridge``: the same as the ``passerelle`` command."""

from bridge.cli import main

main()
