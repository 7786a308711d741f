"""The fault suite (issue 11): numbered messages through every pair of networks while the
bridge is killed, servers go down and the database drops its connections; then the count of
what each route lost, doubled or reordered. ``make faults`` runs all of it
(`tests.faults.__main__`), ``tests/test_faults.py`` a short subset in ``make test``."""
