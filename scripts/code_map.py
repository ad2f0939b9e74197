"""Measure the package's shape: longest functions, largest modules, import cycles.

    python scripts/code_map.py                # the table for docs/architecture.md
    python scripts/code_map.py --top 15 --package bioseqnn

Read from the source alone (ast: nothing is imported or run). An import cycle is a set of
modules that import one another, directly or through others (strongly connected
components of the import graph, imports inside functions included: they still tie the
modules together, even if later).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def functions(tree: ast.AST) -> list[tuple[int, str, int]]:
    """(body lines, qualified name, lines) of every function and method: the body without
    the signature and the docstring, which say what a function does, not how long it
    takes to read its steps."""
    found: list[tuple[int, str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                body = child.body
                if (
                    len(body) > 1
                    and isinstance(body[0], ast.Expr)
                    and isinstance(getattr(body[0], "value", None), ast.Constant)
                ):
                    body = body[1:]  # the docstring
                total = child.end_lineno - child.lineno + 1
                found.append((child.end_lineno - body[0].lineno + 1, name, total))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def imports(name: str, path: Path, tree: ast.AST, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # 'from . import models' imports the module, not the package's own names: the
            # package counts only for names that are no module of it
            names = [f"{base}.{alias.name}" for alias in node.names]
            targets = names if all(n in known for n in names) else [base, *names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
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
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", type=Path, default=Path("bioseqnn"))
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args(argv)
    found = modules(args.package)
    trees = {n: ast.parse(path.read_text(encoding="utf-8")) for n, path in found.items()}
    sizes = sorted(
        ((len(found[n].read_text(encoding="utf-8").splitlines()), n) for n in found), reverse=True
    )
    longest = sorted(
        ((lines, f"{n}.{f}", first) for n, t in trees.items() for lines, f, first in functions(t)),
        reverse=True,
    )
    graph = {n: imports(n, found[n], t, set(found)) for n, t in trees.items()}
    print(
        f"{len(found)} modules, {sum(s for s, _ in sizes)} lines; median module "
        f"{sorted(s for s, _ in sizes)[len(sizes) // 2]} lines"
    )
    over = [name for lines, name, _ in longest if lines > 60]
    print(f"functions over 60 body lines: {len(over)}")
    print("\n| longest functions | body lines | with signature and docstring |\n|---|---:|---:|")
    for lines, name, total in longest[: args.top]:
        print(f"| `{name}` | {lines} | {total} |")
    print("\n| largest modules | lines |\n|---|---:|")
    for lines, name in sizes[: args.top]:
        print(f"| `{name}` | {lines} |")
    loops = cycles(graph)
    print(f"\nimport cycles: {len(loops)}")
    for loop in loops:
        print("- " + " <-> ".join(loop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
