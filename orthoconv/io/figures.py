"""PNG figures: matplotlib on the non-interactive Agg backend, optional (the JSON carries the numbers)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def finish_figure(figure, path, title: str = "", dpi: int = 110) -> Path:
    """Give ``figure`` its ``title``, lay it out, save it as ``path`` and close it; returns the path."""
    plt = pyplot()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
