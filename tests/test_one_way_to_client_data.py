"""There is one way to client data from a front end: consent's selectors and services and the firewall.

No module under api/ or web/ (nor any later front end) touches a client-data model's manager, reaches any
model through `_default_manager` or `_base_manager`, runs raw SQL, or asks guardian for objects itself
(docs/architecture.md, "The one way to a referral"). The checker reads the source (AST), so a violation is
caught whether or not a test ever reaches the line; the last tests plant violations and show it fails on them.
"""

import ast
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = ("api", "web")
# Every model of these apps is client data or its access log.
CLIENT_DATA_APPS = ("consent", "access")
MANAGERS = {"objects", "_default_manager", "_base_manager"}
ANY_MODEL_MANAGERS = {"_default_manager", "_base_manager"}
# Called as methods (a queryset's .raw() or .extra(), a connection's .cursor()), or named (RawSQL).
RAW_SQL_METHODS = {"raw", "extra", "cursor"}
RAW_SQL_NAMES = {"RawSQL"}
GUARDIAN_LOOKUPS = {"get_objects_for_user", "get_objects_for_group", "ObjectPermissionChecker"}


def client_data_models() -> set[str]:
    return {model.__name__ for label in CLIENT_DATA_APPS for model in apps.get_app_config(label).get_models()}


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> model name, for `from x import Model as Alias`."""
    return {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def violations(source: str, filename: str, models: set[str]) -> list[str]:
    """Where this source reaches client data other than through consent's selectors, services and firewall."""
    tree = ast.parse(source, filename=filename)
    names = _imported_names(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr in MANAGERS:
            owner = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
            if node.attr in ANY_MODEL_MANAGERS or names.get(owner, owner) in models:
                found.append(f"{where}: {owner}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RAW_SQL_METHODS:
            found.append(f"{where}: .{node.func.attr}() (raw SQL)")
        elif isinstance(node, ast.Name) and node.id in RAW_SQL_NAMES | GUARDIAN_LOOKUPS:
            found.append(f"{where}: {node.id}")
        elif isinstance(node, ast.ImportFrom) and any(alias.name in RAW_SQL_NAMES | GUARDIAN_LOOKUPS for alias in node.names):
            found.append(f"{where}: imports {', '.join(alias.name for alias in node.names)}")
    return found


def scan(root: Path, packages=FRONT_ENDS) -> list[str]:
    models = client_data_models()
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(root)), models)
    return found


def test_no_front_end_module_reaches_client_data_itself():
    found = scan(ROOT)
    assert not found, "api/ and web/ reach client data only through consent's selectors, services and firewall: " + "; ".join(
        found
    )


def test_the_client_data_models_include_the_referral_its_records_and_the_log():
    assert {"Referral", "Client", "ConsentRecord", "Withdrawal", "AccessEvent", "ReferralUserObjectPermission"} <= (
        client_data_models()
    )


PLANTED = {
    "a referral queryset": "from consent.models import Referral\nrows = Referral.objects.filter(status='active')\n",
    "an aliased model": "from consent.models import Client as C\nrows = C.objects.all()\n",
    "a model by its module": "from consent import models\nrows = models.ConsentRecord.objects.all()\n",
    "the default manager": "def rows(model):\n    return model._default_manager.all()\n",
    "the access log": "from consent.access.models import AccessEvent\nrows = AccessEvent.objects.all()\n",
    "raw SQL": "from django.db import connection\nwith connection.cursor() as c:\n    c.execute('select 1')\n",
    "a raw query": "from consent.models import Referral as R\nrows = R.objects.raw('select * from consent_referral')\n",
    "a guardian lookup": "from guardian.shortcuts import get_objects_for_user\nrows = get_objects_for_user(u, 'x')\n",
}


@pytest.mark.parametrize("planted", PLANTED, ids=list(PLANTED))
def test_it_finds_a_planted_violation(planted):
    assert violations(PLANTED[planted], "api/leak.py", client_data_models())


def test_it_fails_on_a_module_planted_in_a_front_end(tmp_path):
    (tmp_path / "api").mkdir()
    (tmp_path / "web").mkdir()
    (tmp_path / "api" / "fine.py").write_text("from consent import selectors\nrows = selectors.referral_detail()\n")
    assert scan(tmp_path) == []
    (tmp_path / "web" / "leak.py").write_text(PLANTED["a referral queryset"])
    assert scan(tmp_path) == ["web/leak.py:2: Referral.objects"]


def test_it_lets_a_front_end_read_what_is_not_client_data():
    source = "from colocation.models import Site\nsites = Site.objects.all()\n"
    assert violations(source, "api/sites.py", client_data_models()) == []
