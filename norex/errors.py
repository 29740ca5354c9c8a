"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class NorexError(Exception):
    """A failure with a one-line, actionable message."""

    exit_code = 1


class UsageError(NorexError):
    """Bad input from the user: a name, an argument, a file."""

    exit_code = 2


class NotFound(NorexError):
    exit_code = 3


class AlreadyExists(NorexError):
    exit_code = 4


class MissingPrerequisite(NorexError):
    exit_code = 5
