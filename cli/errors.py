"""The one error type commands raise: a one-line message for the user and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # the command could not do its job: a server unreachable or answering an error
EXIT_USAGE = 2  # bad input: arguments, a missing or malformed file (argparse uses 2 as well)


class CliError(Exception):
    """Printed as ``iport-cds: error: <message>`` (no traceback); the process exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
