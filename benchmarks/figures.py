"""Where every benchmark puts its figures: a JSON file that `make bench` gathers into build/bench.json."""

import json
from pathlib import Path


def write_figures(path: Path | None, figures: dict) -> None:
    """Write `figures` to `path` (nothing when no path was asked for)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"Figures written to {path}")
