"""The errors a user sees. The CLI prints each as one ``lrsc: error:`` line and exits with its
``exit_code``: 2 when something must change before the command can do what was asked (a bad
value, an unwritable folder, an unreachable cluster), 1 when the work ran and part of it failed."""


class LrscError(Exception):
    """An error the user can act on; the message says what went wrong and what to do."""

    exit_code = 2


class ConfigError(LrscError, ValueError):
    """A parameter is unknown, of the wrong type, or out of range; the message says which and how to fix it."""


class EngineError(LrscError):
    """An engine cannot take the work: a Dask scheduler out of reach, ``sbatch`` missing or refusing the jobs."""


class RunsFailed(LrscError, RuntimeError):
    """Some runs of a sweep raised; the message names how many and the first one's error, in one line."""

    exit_code = 1


class ChapterFailed(LrscError, RuntimeError):
    """A chapter's notebook raised while it executed; the message names the cell and the kept notebook."""

    exit_code = 1
