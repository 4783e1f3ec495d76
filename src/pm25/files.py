"""Writing output files so that a failed run never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

# mkstemp creates files readable by their owner only; an output file gets the usual permissions instead, so that
# e.g. the host user can read what the Docker stack's notebook user (another uid) wrote. Read once: os.umask can
# only be read by setting it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """A table as CSV, atomically. RFC 4180 line ends ("\r\n"), so a text field that holds a bare
    "\r" (a box name can) is quoted rather than split into two rows."""
    write_atomically(path, table.to_csv(index=False, lineterminator="\r\n"))
