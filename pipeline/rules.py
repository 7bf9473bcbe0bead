"""Rules every stage applies the same way, defined once (kernel: imports only ``errors``).

Each of these existed two or three times with differences (a case id valid for a query could be
refused by ``hold add``; the OS user was ``uid 1000`` in one record and ``uid:1000`` in another).
A stage that needs one of them imports it from here; no other module spells them.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re

from pipeline.errors import UsageError

# A case or request id: what an incident ticket system issues (``INC-2026-042``, ``jira:SEC/17``,
# ``case#12``). The first character is alphanumeric so that an id is never read as an option.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,79}")
ID_RULE = "letters, digits and . _ : / # - (max 80, starting with a letter or digit)"

# Bytes of a rejected line kept, after scrubbing, in the quarantine (the rest is cut, and a token
# the cut would split is dropped whole). The reader of oversized lines keeps the same prefix.
REJECT_TEXT_LIMIT = 2048


def check_id(value: str, kind: str = "case") -> str:
    """A case or request id, validated (exit 2 with the rule when it is not one)."""
    if not ID_RE.fullmatch(value):
        raise UsageError(f"invalid {kind} id {value!r}: {ID_RULE}")
    return value


def os_user() -> str:
    """The operating-system user running the command, as recorded in audit, holds and deletions."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid still identifies the account
        return f"uid:{os.getuid()}"


def check_range(date_from: dt.date | None, date_to: dt.date | None) -> None:
    """``--from`` must not be after ``--to`` (both are inclusive UTC event dates)."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise UsageError(f"--from {date_from} is after --to {date_to}")
