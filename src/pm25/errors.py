"""Errors whose message already says what went wrong and what to do about it."""


class LearnerError(Exception):
    """Shown in a notebook as its message alone: a traceback would bury the advice."""

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of printing the traceback
        return [f"❌ {self}"]
