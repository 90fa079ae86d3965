"""The one error the population engine raises; the command line turns it into its exit code."""

from __future__ import annotations


class PopulationError(Exception):
    """A population run cannot go on. ``bad_input`` is True for the caller's input (a folder,
    policy, place table or lookup it named), False for a failure while running."""

    def __init__(self, message: str, *, bad_input: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.bad_input = bad_input
