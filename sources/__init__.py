"""Documents that arrive by themselves: watched folders, SMB shares and IMAP mailboxes, kept
in sync (issue #18).

``base`` (the ``Source`` Protocol and its types), ``folder``, ``smb`` and ``imap`` (its three
implementations; ``tree`` and ``mail`` are what they share), ``config`` (what a source is),
``credentials`` (encrypted at rest), ``factory`` (kind → implementation), ``sync`` (rounds,
schedule, outcomes) and ``tasks`` (Celery beat and the embedded ticker).
"""
