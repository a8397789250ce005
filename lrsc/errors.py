"""The one error type a user sees for bad input; the CLI turns it into exit code 2."""


class ConfigError(ValueError):
    """A parameter is unknown, of the wrong type, or out of range; the message says which and how to fix it."""


class RunsFailed(RuntimeError):
    """Some runs of a sweep raised; the message names how many and the first one's error, in one line."""
