"""A cell that fails on purpose must not stop a learner's Run All in JupyterLab."""

from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_cells_that_raise_on_purpose_say_so_with_the_tag_jupyterlab_reads():
    """JupyterLab's Run All goes on past an error only in a cell tagged "raises-exception" (without it every
    cell after the first error stays unrun); nbval and the site's executor read the same tag. nbval's own
    comment marker is not enough, and both at once is an error for nbval, so the tag is the one way."""
    cells = [
        (path.name, i, cell)
        for path in sorted(NOTEBOOKS.glob("*.ipynb"))
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
        if cell.cell_type == "code"
    ]
    tagged = [(name, i) for name, i, cell in cells if "raises-exception" in cell.metadata.get("tags", [])]
    assert tagged  # lesson 15 shows that strings cannot enter XLA
    commented = [(name, i) for name, i, cell in cells if "NBVAL_RAISES_EXCEPTION" in cell.source]
    assert not commented, f"use the raises-exception tag instead of the comment in: {commented}"
