"""Errors whose message already says what went wrong and what to do about it."""


class LearnerError(Exception):
    """Shown in a notebook as its message alone: a traceback would bury the advice."""

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of printing the traceback
        return [f"❌ {self}"]


class StoppedByYou(LearnerError):
    """■ (Kernel → Interrupt) ended a loop cleanly. The cell ends as an error all the same, so that JupyterLab
    runs none of the cells queued after it (Run All): they would act on a half-finished loop."""

    def _render_traceback_(self) -> list[str]:
        return [f"■ {self}"]
