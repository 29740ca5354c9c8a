"""Errors a user can act on. The CLI prints their message as one line and exits non-zero.

`transient` tells the worker whether the same job may succeed later without anyone changing anything:
transient errors are retried with backoff; the others fail the job at once, with their message shown to
ops (`norex customers list`). Exceptions that are not NorexErrors count as transient.
"""

from __future__ import annotations


class NorexError(Exception):
    """A failure with a one-line, actionable message."""

    exit_code = 1
    transient = True


class UsageError(NorexError):
    """Bad input from the user: a name, an argument, a file."""

    exit_code = 2
    transient = False


class NotFound(NorexError):
    exit_code = 3
    transient = False


class AlreadyExists(NorexError):
    exit_code = 4
    transient = False


class MissingPrerequisite(NorexError):
    """Something this machine lacks (a tool, a setting, a credential) that ops must provide."""

    exit_code = 5
    transient = False


def is_transient(exc: BaseException) -> bool:
    return exc.transient if isinstance(exc, NorexError) else True
