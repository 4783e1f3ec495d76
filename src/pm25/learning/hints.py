"""A cell run before the cells it needs: one line that says what to do, instead of a NameError traceback.

    from pm25.learning import hints
    hints.install()   # in a notebook's first code cell

Only names looked up in the notebook's own namespace get the hint; a NameError inside a library keeps
its traceback, where it helps. A reading's field name written without quotes (`key_field = boxId`)
gets the advice to write it as text. A cell run again after a later cell closed its Kafka client (the loop of
step 3 after "close the consumer") says to run the cell that creates the client first.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from kafka.errors import IllegalStateError

from pm25.data.contract import SCHEMA

READING_FIELDS = frozenset(SCHEMA["properties"])


def install() -> None:
    """Show a NameError from the notebook's cells as one ❌ line (nothing happens outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((NameError, IllegalStateError), _show)


def hint(name: str | None) -> str:
    if name in READING_FIELDS:
        return (
            f'❌ `{name}` is not defined: a field of a reading is named by text, so write it in quotes: "{name}". '
            "If you meant a variable, run the cells above this one first."
        )
    return (
        f"❌ `{name}` is not defined yet: run the cells above this one first (Run → Run All Above Selected Cell). "
        "If no cell above defines it, check its spelling."
    )


CLOSED_CLIENT = (
    "❌ This Kafka client is closed: a cell further down closed it. Run the cells that create the consumer (or "
    "producer) again, from the top of the section, then this one."
)


def _show(shell, kind: type, error: Any, trace: TracebackType, tb_offset=None) -> None:  # Any: gets IPython's attribute
    if isinstance(error, IllegalStateError):
        if "closed" in str(error):
            error._render_traceback_ = lambda: [CLOSED_CLIENT]
        shell.showtraceback((kind, error, trace), tb_offset=tb_offset)
        return
    last = trace
    while last.tb_next is not None:
        last = last.tb_next
    if last.tb_frame.f_globals is shell.user_ns:  # a name of the notebook, not of a library
        error._render_traceback_ = lambda: [hint(error.name)]  # IPython shows this instead of the traceback
    shell.showtraceback((kind, error, trace), tb_offset=tb_offset)
