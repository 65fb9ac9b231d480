"""The small family of errors reproml raises: each says what went wrong and what to do."""


class ReproError(Exception):
    """Base error: a message and, where one exists, the command or change that would help.

    Args:
        message: what went wrong, naming the stage, datum, file or value involved.
        hint: what the user can do about it.
    """

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class NotFound(ReproError):
    """A repo, branch, commit, file, job or pipeline that does not exist."""


class InvalidSpec(ReproError):
    """A pipeline spec that cannot be run."""


class ParameterError(ReproError):
    """A parameter that the notebook does not declare or a value of the wrong type."""


class StageFailed(ReproError):
    """A stage notebook raised; the partially executed notebook is kept.

    Args:
        message: the stage, datum and cell that failed, with the error.
        hint: where to look.
        failed_notebook: where the partially executed notebook was kept.
    """

    def __init__(self, message: str, hint: str = "", failed_notebook: str = ""):
        super().__init__(message, hint)
        self.failed_notebook = failed_notebook


class JobFailed(ReproError):
    """A pipeline job failed; its output commit was discarded and no branch moved."""


class CorruptContent(ReproError):
    """Stored content that is missing or no longer hashes to the sha256 it is stored under."""
