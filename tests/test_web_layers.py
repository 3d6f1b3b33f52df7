"""The web pages sit beside the API on the same domain code: neither imports the other, and no page reaches a
model's manager itself (client data comes only through consent.access.firewall and the consent services)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_web_never_imports_the_api_nor_the_api_the_web():
    crossing = [f"{path}: {name}" for package, other in (("web", "api"), ("api", "web"))
                for path, names in imported_modules(package).items()
                for name in names if name == other or name.startswith(other + ".")]  # fmt: skip
    assert not crossing, crossing


def test_no_page_uses_a_model_manager_itself():
    uses = []
    for path in (ROOT / "web").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("objects", "_default_manager", "_base_manager"):
                uses.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not uses, f"pages must reach data through consent's selectors, services and firewall: {uses}"
