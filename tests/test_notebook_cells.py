"""A cell that fails on purpose must not stop a learner's Run All in JupyterLab; the cells that only check the
lesson start collapsed, so a learner reads the lesson, not its asserts."""

import ast
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
    # (No lesson raises on purpose at present: each prints the one-line cause, as lesson 15's XLA cell does.)
    commented = [(name, i) for name, i, cell in cells if "NBVAL_RAISES_EXCEPTION" in cell.source]
    assert not commented, f"use the raises-exception tag instead of the comment in: {commented}"


def _is_check(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.Assert):
        return True
    call = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(call, ast.Call) and ast.unparse(call.func).startswith("np.testing.")


def only_checks(source: str) -> bool:
    """Asserts (and np.testing calls), with at most as many plain assignments that prepare them: nothing shown."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    checks = sum(map(_is_check, body))
    others = [s for s in body if not _is_check(s)]
    return checks > 0 and all(isinstance(s, ast.Assign) for s in others) and checks >= len(others)


def test_cells_that_only_check_start_collapsed_and_nothing_else_does():
    """JupyterLab collapses a cell's input on "jupyter": {"source_hidden": true}; the site's myst-nb reads the
    "hide-input" tag (a click opens either). Lesson code and output stay open. The first code cell, which
    installs the kit on Colab or Binder and does nothing elsewhere (tests/test_hosted.py), starts collapsed."""
    wrong = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "code":
                continue
            hidden = cell.metadata.get("jupyter", {}).get("source_hidden", False)
            tagged = "hide-input" in cell.metadata.get("tags", [])
            collapsed = only_checks(cell.source) or cell.get("id") == "install-the-kit"
            if collapsed != hidden or hidden != tagged:
                wrong.append((path.name, i, cell.source.splitlines()[0][:60]))
    assert not wrong, wrong
    assert only_checks("x = f()\nassert x > 0") and not only_checks("print(1)\nassert True")
