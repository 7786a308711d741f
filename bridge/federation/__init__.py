"""Signed federation lists: a network may take the domains whose people it bridges out from a
list that the operator of its federation signs (as TI-Messenger's federation list is), instead
of (or besides) its ``allowed_domains``.

`bridge.federation.document` reads and checks one list (pure), `bridge.federation.source`
fetches it from a file or an HTTPS URL, `bridge.federation.lists` keeps the list in force for
each network (re-read periodically, the last good one kept in the store) and
`bridge.federation.commands` is ``passerelle federation-list`` for operators.
"""
