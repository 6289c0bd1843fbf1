"""kd3d's imports run one way (DESIGN.md "Layers"), the product never imports ``kd3d.testing``,
and no two kd3d modules import each other (directly or through a longer chain).

Every ``.py`` file under ``kd3d/`` is parsed with :mod:`ast`; imports at module level *and*
inside functions count (a function-level import is still a dependency, and it is how cycles
hide), and so do registry targets written as ``"kd3d.package.module:callable"`` strings (a
registry entry imports its target when built). Layers, low to high::

    0 kd3d, kd3d.errors, kd3d.registry
    1 structures
    2 data, ops
    3 models, interop, eval
    4 distill
    5 engine
    6 cli, vis            (vis may not import engine or cli)
    7 testing             (test scaffolding; the product never imports it)

A module may import its own layer or lower ones.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "kd3d"

LAYERS = {"": 0, "errors": 0, "registry": 0, "structures": 1, "data": 2, "ops": 2, "models": 3, "interop": 3, "eval": 3, "distill": 4,
          "engine": 5, "cli": 6, "vis": 6, "testing": 7}
# extra rules on top of the layer order: importer area -> areas it must not import
FORBIDDEN = {"vis": {"engine", "cli"}}
TARGET = re.compile(r"^(kd3d(?:\.\w+)+):\w+$")  # a registry entry, e.g. "kd3d.models.lidar.presets:centerpoint_voxel"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def area(module: str) -> str:
    """``kd3d.models.lidar.presets`` -> ``models``; ``kd3d`` -> ``""``; ``kd3d.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """``(imported kd3d module, line)`` for every import in ``path`` (any nesting level), once each.

    ``from a.b import c`` names ``a.b.c`` when that is a module, else ``a.b``; relative imports
    are resolved against the importing module's package; a ``"kd3d.a.b:callable"`` string
    constant names ``kd3d.a.b``.
    """
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "kd3d"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "kd3d":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((sub if sub in modules else mod, node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TARGET.match(node.value):
            out.append((TARGET.match(node.value).group(1), node.lineno))
    return list(dict.fromkeys(out))


def graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    modules = all_modules()
    return modules, {m: imports_of(p, modules) for m, p in modules.items()}


def layering_violations() -> list[str]:
    modules, edges = graph()
    bad = []
    for src, targets in edges.items():
        a_src = area(src)
        for dst, line in targets:
            a_dst = area(dst)
            where = f"{modules[src].relative_to(ROOT)}:{line}"
            if a_dst == "testing" and a_src != "testing":
                bad.append(f"{where}: product module {src} imports {dst} (test scaffolding)")
            elif LAYERS.get(a_dst, 99) > LAYERS.get(a_src, -1) or a_dst in FORBIDDEN.get(a_src, ()):
                bad.append(f"{where}: {src} ({a_src or 'kd3d'}, layer {LAYERS.get(a_src)}) imports {dst} "
                           f"({a_dst or 'kd3d'}, layer {LAYERS.get(a_dst)})")
    return bad


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    _, edges = graph()
    adj = {m: sorted({d for d, _ in ts if d in edges and d != m}) for m, ts in edges.items()}
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for m in sorted(adj):
        if m not in index:
            visit(m)
    return comps


def test_every_area_has_a_layer():
    unknown = sorted({area(m) for m in all_modules()} - set(LAYERS))
    assert not unknown, f"kd3d subpackages without a layer in tests/test_layering.py: {unknown}"


def test_imports_run_one_way():
    bad = layering_violations()
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "import cycles among kd3d modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_checker_sees_function_level_relative_and_registry_imports(tmp_path):
    """The scanner itself: a nested import, a relative import and a registry string are found."""
    pkg = tmp_path / "kd3d" / "data"
    pkg.mkdir(parents=True)
    (tmp_path / "kd3d" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    src = pkg / "x.py"
    src.write_text("def f():\n    from kd3d.engine import trainer\n\nfrom . import y\nT = {'a': 'kd3d.testing.toy:f'}\n")
    (pkg / "y.py").write_text("")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        mods = {module_name(p): p for p in (tmp_path / "kd3d").rglob("*.py")}
        found = imports_of(src, mods)
    finally:
        ROOT = old
    assert ("kd3d.engine", 2) in found and ("kd3d.data.y", 4) in found and ("kd3d.testing.toy", 5) in found
