"""The dashboard's page ships in the package: every file of adapters/web/static is package
data (pyproject.toml), and the application serves exactly those files."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from posbus.adapters.web.app import ASSETS, load_assets

ROOT = Path(__file__).resolve().parents[2]


def test_every_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["posbus.adapters.web"]
    files = sorted(p.name for p in (ROOT / "adapters" / "web" / "static").iterdir())
    assert files == sorted(ASSETS)
    for name in files:
        assert any(fnmatch.fnmatch(f"static/{name}", pattern) for pattern in patterns), name


def test_the_installed_package_holds_every_asset() -> None:
    assets = load_assets()
    assert sorted(assets) == sorted(ASSETS)
    assert all(assets.values())
    # The page loads only its own files: no CDN, no inline script.
    page = assets["index.html"].decode()
    assert "://" not in page
    assert "<script>" not in page
