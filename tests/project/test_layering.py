"""The layering is a rule that CI enforces: `lint-imports` (run by `make test`) keeps the contracts in
pyproject.toml and refuses an import that points the wrong way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
PACKAGES = ("controlplane", "approvals", "skills", "incidents", "plugins", "learning", "governance")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / "pyproject.toml")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_layering_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_an_import_pointing_upwards_is_refused(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    services = tree / "controlplane" / "ledger" / "services.py"
    services.write_text(services.read_text() + "\nimport incidents.models  # noqa: E402\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "Apps depend downwards only BROKEN" in result.stdout
    assert "controlplane.ledger is not allowed to import incidents" in result.stdout


def test_sibling_domain_apps_may_not_import_each_other(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    (tree / "learning" / "leak.py").write_text("import incidents.models  # noqa: F401\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "learning is not allowed to import incidents" in result.stdout


def test_an_app_importing_the_celery_module_is_refused(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    (tree / "approvals" / "leak.py").write_text("from controlplane.celery import app  # noqa: F401\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "approvals is not allowed to import controlplane.celery" in result.stdout
