"""Library code logs through ``logging``; only ``kd3d/cli`` prints (issue 10, item 7)."""
import ast
from pathlib import Path

import kd3d

PKG = Path(kd3d.__file__).resolve().parent


def _print_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]


def test_only_the_cli_prints():
    offenders = [f"{p.relative_to(PKG.parent)}:{line}"
                 for p in sorted(PKG.rglob("*.py")) if "cli" not in p.relative_to(PKG).parts[:1]
                 for line in _print_calls(p)]
    assert not offenders, f"print() outside kd3d/cli (use logging): {offenders}"


def test_the_scanner_finds_a_print(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import sys\n\ndef g():\n    print('x', file=sys.stderr)\n")
    assert _print_calls(f) == [4]
