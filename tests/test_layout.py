"""The layout's rules, read from the source: which layer may import which, and no import cycles.

Every ``import`` statement of every module counts, at the top of a file or inside a
function, so a lazy import cannot hide an arrow that points the wrong way.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mlkit

PACKAGE = Path(mlkit.__file__).resolve().parent
UI = ("mlkit.lessons", "ipywidgets", "matplotlib", "IPython")
SERVING = ("fastapi", "starlette", "uvicorn", "httpx", "aiohttp", "orjson", "prometheus_client", "swagger_ui_bundle")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports: ``from mlkit.train import parallel`` counts as ``mlkit.train.parallel``."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return found


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# (modules the rule is about, what they must not import, why)
RULES = [
    (("mlkit.data",), ("mlkit.models", "mlkit.train", "mlkit.infer", "mlkit.serve", "mlkit.tools"), "data comes first"),
    (("mlkit.models",), ("mlkit.train", "mlkit.infer", "mlkit.serve", "optax"), "a model holds no optimiser code"),
    (("mlkit.train",), ("mlkit.infer", "mlkit.serve", "mlkit.tools"), "training does not need inference"),
    (("mlkit.infer",), ("mlkit.train", "optax", "mlkit.serve", "mlkit.tools"), "inference runs without training"),
    (("mlkit.bench",), ("mlkit.train", "mlkit.infer", "mlkit.serve", "mlkit.tools"), "timing is a tool for all"),
    (("mlkit.serve",), ("mlkit.train", "optax", "mlkit.tools"), "a server needs the artifact, not the training code"),
]
LIBRARY = [m for m in MODULES if not within(m, ("mlkit.lessons", "mlkit.__main__"))]


@pytest.mark.parametrize("module", LIBRARY)
def test_nothing_outside_the_lessons_imports_the_lesson_ui(module):
    wrong = sorted(i for i in imports(module) if within(i, UI))
    assert not wrong, f"{module} imports {wrong}: only mlkit.lessons (and the command line) may use the lesson UI"


def test_only_the_server_its_tools_and_lessons_import_the_serving_stack():
    """The serving stack is the ``serve`` extra: training and inference must work without it."""
    allowed = ("mlkit.serve", "mlkit.tools", "mlkit.lessons", "mlkit.__main__")
    wrong = {m: sorted(i for i in imports(m) if within(i, SERVING)) for m in MODULES if not within(m, allowed)}
    wrong = {m: i for m, i in wrong.items() if i}
    assert not wrong, f"only mlkit.serve, mlkit.tools, the lessons and the command line may import it: {wrong}"


@pytest.mark.parametrize(("layer", "forbidden", "why"), RULES, ids=[r[0][0] for r in RULES])
def test_arrows_point_down(layer, forbidden, why):
    wrong = {m: sorted(i for i in imports(m) if within(i, forbidden)) for m in MODULES if within(m, layer)}
    wrong = {m: i for m, i in wrong.items() if i}
    assert not wrong, f"{why}, but: {wrong}"


def test_no_import_cycles():
    graph = {m: {i for i in imports(m) if i in MODULES and i != m} for m in MODULES}
    # A package's __init__ only re-exports its submodules; a submodule importing a sibling
    # through the package is not a cycle of ideas, so edges into a package's own __init__
    # from inside that package are dropped.
    graph = {
        m: {i for i in deps if not (MODULES[i].name == "__init__.py" and m.startswith(i + "."))}
        for m, deps in graph.items()
    }
    state: dict[str, str] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for dep in sorted(graph[m]):
            if state.get(dep) == "open":
                cycle = [*path[path.index(dep) :], dep] if dep in path else [m, dep]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_rules_see_real_imports():
    """The parser finds what the files really import (else the rules above would pass on nothing)."""
    assert "mlkit.train.parallel" in imports("mlkit.train.loop")
    assert "ipywidgets" in imports("mlkit.lessons.widgets")
    assert "mlkit.models" in imports("mlkit.infer.predictor")
    assert len(LIBRARY) > 20


def test_public_names_are_explicit_and_visible():
    assert set(mlkit.__all__) <= set(dir(mlkit))
    assert all(getattr(mlkit, name) is not None for name in mlkit.__all__)
    assert mlkit.__version__ == __import__("importlib.metadata").metadata.version("mlkit-course")


def test_importing_mlkit_changes_no_jax_setting_and_loads_no_ui_or_server():
    code = (
        "import jax, sys\n"
        "before = jax.config.values['jax_compilation_cache_dir']\n"
        "import mlkit\n"
        "assert jax.config.values['jax_compilation_cache_dir'] == before, 'import changed the JAX cache setting'\n"
        f"ui = [m for m in {('matplotlib', 'ipywidgets', 'mlkit.lessons', *SERVING)!r} if m in sys.modules]\n"
        "assert not ui, f'import mlkit loaded {ui}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
