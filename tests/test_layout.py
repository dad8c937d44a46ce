"""The package's layout holds: the record's journey runs one way, capture → record →
delivery → stores, with the command line on top; no module imports in a cycle (a
function-local or type-checking import counts too); none uses another module's
private names; none grows past 500 lines.

Read from the source with ``ast``, so an import hidden in a function is seen.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "majordomo_log"
# Highest first: a layer may import its own modules and any lower layer's, never a
# higher one's. Top-level modules (the package's face, schema, errors, logging) are
# outside the layers.
LAYERS = ("cli", "capture", "delivery", "record", "stores")
# What capture (the caller's hot path) must never pull in.
CAPTURE_NEVER = ("majordomo_log.record.pricing", "majordomo_log.stores")
MAX_LINES = 500
# What the dashboard (read-only) must never pull in.
DASHBOARD_NEVER = (
    "majordomo_log.capture",
    "majordomo_log.delivery",
    "majordomo_log.logging_llm",
    "majordomo_log.cli.demo",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import statement."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            # `from . import x` imports the module x
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            for sub in submodules:
                yield f"{target}.{sub}", [], node.lineno
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                yield target, rest, node.lineno


def internal(target: str) -> str | None:
    """The package module an import resolves to, if it is one of ours."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


GRAPH = {
    name: {
        (t, tuple(names), line) for target, names, line in imports(name) if (t := internal(target))
    }
    for name in MODULES
}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[1] in LAYERS else None


def test_the_package_is_read() -> None:
    assert len(MODULES) > 40 and all(GRAPH[m] for m in ("majordomo_log", "majordomo_log.cli.main"))


def test_no_import_cycle() -> None:
    edges = {m: {t for t, _, _ in GRAPH[m] if t != m and t != "majordomo_log"} for m in MODULES}
    # A package's __init__ importing its own modules is how a package shows its names.
    for m in MODULES:
        if MODULES[m].name == "__init__.py":
            edges[m] = {t for t in edges[m] if not t.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(MODULES):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_no_module_imports_the_package_face() -> None:
    # majordomo_log/__init__.py imports everything: importing it back is a cycle.
    offenders = [
        (m, line)
        for m in MODULES
        if m != "majordomo_log"
        for t, _, line in GRAPH[m]
        if t == "majordomo_log"
    ]
    assert offenders == []


def test_imports_run_down_the_layers() -> None:
    upward = [
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
        for m in MODULES
        for t, _, line in GRAPH[m]
        if (a := layer(m)) is not None and (b := layer(t)) is not None and b < a
    ]
    assert upward == []


def test_capture_never_imports_pricing_or_stores() -> None:
    reached = [
        f"{m}:{line} imports {t}"
        for m in MODULES
        if m.startswith("majordomo_log.capture")
        for t, _, line in GRAPH[m]
        if t.startswith(CAPTURE_NEVER)
    ]
    assert reached == []


def test_the_dashboard_only_reads() -> None:
    """The dashboard reads the log through the stores and the CLI's queries: it never
    imports the capture, the writer or the wrapper."""
    reached = [
        f"{m}:{line} imports {t}"
        for m in MODULES
        if m.startswith("majordomo_log.dashboard")
        for t, _, line in GRAPH[m]
        if t.startswith(DASHBOARD_NEVER)
    ]
    assert reached == []


def test_no_module_takes_another_modules_private_names() -> None:
    reached = [
        f"{m}:{line} takes {t}.{n}"
        for m in MODULES
        for t, names, line in GRAPH[m]
        if t != m
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert reached == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_500_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: a module this long has two jobs"


def test_the_architecture_page_names_only_modules_that_exist() -> None:
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", page))
    missing = [
        path
        for path in named
        if not (PACKAGE / path).exists() and not (PACKAGE.parent / path).exists()
    ]
    assert len(named) > 30 and missing == []
