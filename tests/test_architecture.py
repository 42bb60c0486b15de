"""The import rule (docs/architecture.md): no cycles, imports point one way, the proxy process stays lean.

Every `import exporter…` in the package counts, at module level or inside a function (a lazy
import is still a dependency); only imports under `if TYPE_CHECKING:` are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "exporter"

# Modules everyone may import; they import nothing of the package but each other.
LEAVES = ("exporter.config", "exporter.labels", "exporter.events", "exporter.jsonpath",
          "exporter.metrics.definitions", "exporter.predlog", "exporter")

# What each part may import, besides the leaves and itself. Longest prefix wins.
ALLOWED: dict[str, tuple[str, ...]] = {
    "exporter.cli": ("exporter.sidecar", "exporter.baseline", "exporter.worker.checks", "exporter.worker.replay",
                     "exporter.demo",
                     "exporter.batch"),
    # `batch`: the worker's extraction and analyzers over files, in the CLI's process
    "exporter.batch": ("exporter.worker", "exporter.adapters", "exporter.analyzers", "exporter.drift",
                       "exporter.baseline", "exporter.metrics", "exporter.predlog"),
    "exporter.__main__": ("exporter.cli",),
    # the proxy process: never the worker's packages (numpy, scipy, payload parsing)
    "exporter.sidecar": ("exporter.proxy", "exporter.collectors", "exporter.metrics", "exporter.sources"),
    # sources of exchanges besides the proxy (tail); they run in the proxy process
    "exporter.sources": ("exporter.proxy", "exporter.metrics"),
    "exporter.proxy": ("exporter.metrics",),
    "exporter.collectors": ("exporter.metrics",),
    "exporter.metrics": (),
    # the analysis worker process (started as `python -m exporter.worker`)
    # (proxy.stats: the worker renders the proxy's traffic counters from the snapshot a scrape sends)
    "exporter.worker": ("exporter.adapters", "exporter.analyzers", "exporter.drift", "exporter.baseline",
                        "exporter.metrics", "exporter.proxy.stats"),
    "exporter.analyzers": ("exporter.adapters", "exporter.drift", "exporter.baseline", "exporter.metrics"),
    "exporter.adapters": (),
    "exporter.drift": ("exporter.baseline",),
    "exporter.baseline": (),
    # the demo is an application of the whole package
    "exporter.demo": ("exporter",),
}

# Modules that run in the proxy process, and third-party packages they must never load.
PROXY_ENTRY = "exporter.sidecar.startup"
HEAVY = ("numpy", "scipy", "pyarrow", "aiohttp")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, name: str) -> set[str]:
    """Package modules `path` imports (absolute and relative), TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "exporter")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] == "exporter":
                for alias in node.names:  # `from exporter.x import y` may name a submodule y
                    sub = f"{target}.{alias.name}"
                    found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                              or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    return {module_name(p): imports_of(p, module_name(p)) for p in sorted(root.rglob("*.py"))}


def _part(module: str, table: dict[str, tuple[str, ...]] | tuple[str, ...]) -> str | None:
    keys = table if isinstance(table, tuple) else tuple(table)
    matches = [k for k in keys if module == k or module.startswith(k + ".")]
    return max(matches, key=len) if matches else None


def violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            if source in LEAVES:
                if target not in LEAVES:
                    out.append(f"{source} -> {target}: a leaf imports only other leaves")
                continue
            if target in LEAVES:
                continue
            part = _part(source, ALLOWED)
            if part is None:
                out.append(f"{source}: not placed in the import rule (add it to ALLOWED)")
                continue
            allowed = (part, *ALLOWED[part])
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                out.append(f"{source} -> {target}: {part} may import only {', '.join(ALLOWED[part]) or 'leaves'}")
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_imports_point_one_way() -> None:
    assert violations(graph()) == []


def test_the_checks_catch_a_planted_cycle_and_a_wrong_way_import(tmp_path: Path) -> None:
    edges = graph()
    planted = {**edges, "exporter.baseline.format": edges["exporter.baseline.format"] | {"exporter.drift.methods"}}
    assert any("exporter.baseline.format" in c and "exporter.drift.methods" in c for c in cycles(planted))
    wrong = {**edges, "exporter.proxy.stats": edges["exporter.proxy.stats"] | {"exporter.analyzers.columns"}}
    assert any(v.startswith("exporter.proxy.stats -> exporter.analyzers.columns") for v in violations(wrong))
    leaf = {**edges, "exporter.config": edges["exporter.config"] | {"exporter.drift.methods"}}
    assert any(v.startswith("exporter.config -> exporter.drift.methods") for v in violations(leaf))
    # and the parser sees a lazy import inside a function
    module = tmp_path / "exporter" / "m.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from exporter.drift.methods import METHODS\n    return METHODS\n")
    assert imports_of(module, "exporter.m") == {"exporter.drift.methods"}


@pytest.mark.parametrize("entry", [PROXY_ENTRY, "exporter.cli"])
def test_the_proxy_process_loads_no_numpy_scipy_or_aiohttp(entry: str) -> None:
    code = (f"import sys, {entry}\n"
            f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "", f"{entry} loads {result.stdout.strip()}"
