"""The generated parts of the site's reference pages: the API from the docstrings, the command line from its parser.

``site/conf.py`` replaces a page's marker line with what these return, so the reference follows the code:

- ``<!-- API mlkit.train -->`` becomes an autosummary table of ``mlkit.train.__all__`` and an autodoc entry for each
  name in it, once for the whole site: a name that ``mlkit`` re-exports is described on the ``mlkit`` page and
  linked from the others; a module in ``__all__`` with no page of its own gets a section of its public members.
- ``<!-- CLI -->`` becomes a section per command of ``python -m mlkit``, with its ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
from functools import cache
from types import ModuleType

# The modules with a reference page of their own (docs/api/<last part>.md), in the order names are placed:
# a name goes to the first of these that lists it.
API_PAGES = ("mlkit", "mlkit.data", "mlkit.train", "mlkit.infer", "mlkit.serve")


def directive(name: str, argument: str = "", *body: str, **options: str) -> str:
    """An reStructuredText directive (autodoc's output is reStructuredText, so MyST pages hold it in eval-rst)."""
    lines = [f".. {name}:: {argument}".rstrip(), *(f"   :{key}: {value}".rstrip() for key, value in options.items())]
    return "\n".join([*lines, "", *(f"   {line}" for line in body), ""])


def eval_rst(*blocks: str) -> str:
    return "\n".join(["```{eval-rst}", *blocks, "```", ""])


class _Annotation(str):
    """An annotation that ``inspect`` prints as written (``int``), not as the string it is (``'int'``)."""

    def __repr__(self) -> str:
        return str(self)


def init_signature(cls: type) -> str:
    """``cls(...)``'s parameters, read from ``__init__``: a flax.nnx module's metaclass hides them behind
    ``(*args, **kwargs)``, which is all autodoc would show."""
    signature = inspect.signature(cls.__init__)
    parameters = [
        p.replace(annotation=_Annotation(p.annotation)) if isinstance(p.annotation, str) else p
        for p in list(signature.parameters.values())[1:]
    ]
    return str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))


def entry(name: str, obj: object) -> str:
    """The autodoc directive that describes ``obj``, known as ``name`` (its full dotted name)."""
    if inspect.isclass(obj):
        hidden = str(inspect.signature(obj)).startswith("(*args")
        return directive("autoclass", name + (init_signature(obj) if hidden else ""), members="")
    if callable(obj):
        return directive("autofunction", name)
    # A constant has no docstring of its own (autodoc would show its type's: dict's, say), so: its value, or its type.
    value = repr(obj)
    return directive("py:data", name, **({"value": value} if len(value) <= 80 else {"type": type(obj).__name__}))


def public_members(module: ModuleType) -> list[str]:
    """What ``from module import *`` gives, or else the public names defined in the module itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
    ]


@cache
def api_pages() -> dict[str, str]:
    """The MyST text that each module in ``API_PAGES`` shows below its page's title."""
    placed: dict[int, str] = {}  # id of an object -> the full name it is described under
    plan: dict[str, tuple[list[str], list[str], list[ModuleType]]] = {}
    for page in API_PAGES:
        module = importlib.import_module(page)
        rows, entries, submodules = [], [], []
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                rows.append(obj.__name__.removeprefix(f"{page}."))  # autosummary wants it relative to the page's module
                if obj.__name__ not in API_PAGES:
                    submodules.append(obj)
            elif id(obj) in placed:
                rows.append(f"~{placed[id(obj)]}")
            else:
                placed[id(obj)] = f"{page}.{name}"
                if inspect.isclass(obj) or callable(obj):  # a constant's row would show its type's docstring
                    rows.append(name)
                entries.append(entry(f"{page}.{name}", obj))
        plan[page] = (rows, entries, submodules)
    pages = {}
    for page, (rows, entries, submodules) in plan.items():
        text = [
            eval_rst(
                directive("automodule", page),
                directive("currentmodule", page),
                directive("autosummary", "", *rows, nosignatures=""),
            )
        ]
        text += [eval_rst(e) for e in entries]
        for submodule in submodules:
            members = [name for name in public_members(submodule) if id(getattr(submodule, name, None)) not in placed]
            for name in members:
                placed.setdefault(id(getattr(submodule, name)), f"{submodule.__name__}.{name}")
            options = {"members": ", ".join(members)} if members else {}  # an empty :members: would mean all
            text += [f"## {submodule.__name__}\n", eval_rst(directive("automodule", submodule.__name__, **options))]
        pages[page] = "\n".join(text)
    return pages


def command_line() -> str:
    """A section per command of ``python -m mlkit``: its one-line help, then its ``--help`` as the terminal shows it."""
    from mlkit.__main__ import build_parser

    columns, os.environ["COLUMNS"] = os.environ.get("COLUMNS"), "88"  # argparse wraps at this width: the page's
    try:
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {action.dest: action.help or "" for action in commands._choices_actions}
        sections = [f"```text\n{parser.format_usage().strip()}\n```\n"]
        for name, command in commands.choices.items():
            summary = helps.get(name, "").capitalize()
            sections.append(f"## {name}\n\n{summary}.\n\n```text\n{command.format_help().rstrip()}\n```\n")
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(sections)


def borrowed_signature(app, what, name, obj, options, signature, return_annotation):
    """autodoc-process-signature: no signature for a class whose constructor is another library's (a FastAPI
    application, say): autodoc would print that library's whole ``__init__``, which is not ours to document."""
    if what == "class" and inspect.isclass(obj):
        owner = next((cls for cls in obj.__mro__ if "__init__" in vars(cls)), object)
        if owner is not object and not owner.__module__.startswith("mlkit"):
            return "", return_annotation
    return None
