"""Sales reports dropped as files (issue 18): each document accrues points at the master by
the rules, once, however often its file is dropped.

``documents`` (what a report holds, parsed), ``source`` (the protocol a files connector
offers), ``accruals`` (the owed-call handler that accrues one document), ``watcher`` (polls
a source: reads each new file, owes its documents, moves it aside, records it).
"""
