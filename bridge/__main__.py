"""``python -m bridge``: the same as the ``passerelle`` command."""

from bridge.cli import main

if __name__ == "__main__":  # not when a worker process imports it (multiprocessing)
    main()
