"""Errors the command line reports as one line (kept apart so light commands import nothing heavy)."""


class ControllerError(RuntimeError):
    """An agent refused or failed; the message names the agent."""
