"""Bonus rules per cart line (issue 18): the rules file, its look-ups, and the exact spread
of a write-off over the lines. Pure code: no I/O but reading the file."""
