"""What can go wrong while a mapping is applied.

::

    PermanentError (bridge.errors)
    └── MappingFailed        the document cannot be mapped: the delivery is dead-lettered
    ValueProblem             internal: a transform could not convert one value
    └── UnknownValue         internal: a value table said ``unknown: error``
    SkipChange               internal: a table said ``unknown: skip``

Only :class:`MappingFailed` leaves :meth:`FlowMapping.apply`; the internal ones carry the
reason to the rule that knows its file, line and name.
"""

from __future__ import annotations

from bridge.errors import BridgeError, PermanentError


class MappingFailed(PermanentError):
    """A source document cannot be mapped; the message names file, line, rule and value.

    The same source state fails the same way on every attempt, hence permanent: the
    dispatcher dead-letters it, support fixes the mapping or the data and replays.
    """

    def __init__(self, location: str, rule: str, reason: str) -> None:
        super().__init__(f"{location}: {rule}: {reason}")
        self.location = location  # "mappings/x.yaml:14"
        self.rule = rule  # "fields[3] Status"
        self.reason = reason  # "status: 'weird' is not in table 'statuses'"


class ValueProblem(BridgeError):
    """A transform cannot convert the value it was given (the rule's ``invalid`` decides)."""


class UnknownValue(ValueProblem):
    """A value is missing from a table whose rule for unknown values is ``error``."""


class SkipChange(BridgeError):
    """A value table with ``unknown: skip`` met a value it does not list."""
