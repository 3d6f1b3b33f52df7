"""No function in the project's own code runs past 60 lines (docs/architecture.md, "Habits").

Complexity is held by ruff's mccabe limit in `make lint`; length is held here, where the checker can be shown a
planted violation. Migrations are generated, so they are left out.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "bench", "colocation", "config", "consent", "tests", "web")
MAX_LINES = 60


def long_functions(source: str, name: str = "<source>") -> list[str]:
    """Every function or method in `source` longer than MAX_LINES, decorators and docstring included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > MAX_LINES:
                found.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return found


def _project_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_no_function_in_the_project_is_longer_than_60_lines():
    found = [hit for path in _project_modules() for hit in long_functions(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []


def test_the_check_finds_a_planted_long_function_and_passes_a_short_one():
    body = "\n".join(f"    x{n} = {n}" for n in range(MAX_LINES))
    planted = f"@decorated\ndef too_long():\n{body}\n"
    short = "def short():\n    return 1\n"
    assert long_functions(planted, "planted.py") == [f"planted.py:2 too_long ({MAX_LINES + 2} lines)"]
    assert long_functions(short) == []
