"""Errors that convbench reports to users as one clear line (never a traceback)."""

from __future__ import annotations


class ConvbenchError(Exception):
    """An error caused by the user's input or environment; the CLI prints it and exits non-zero.

    ``exit_code`` follows the Unix convention the CLI uses: 2 for bad input (unknown model, invalid
    option), 1 for a failure while doing valid work (export mismatch, unwritable path).
    """

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UserInputError(ConvbenchError):
    """Bad input: unknown model, impossible option value, missing device."""

    exit_code = 2
