"""Shared test set-up: the Hypothesis profiles and the repository root."""

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

# The suite tests the pure-Python path, even where `make native` has built the compiled one
# (some tests hand the engine's parts stand-ins that compiled classes would refuse);
# tests/test_native.py checks the compiled build against it, and CPSIM_NATIVE=1 set by the
# caller (as that test does for the golden outputs) runs the suite compiled.
os.environ.setdefault("CPSIM_NATIVE", "0")

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium_executable() -> str:
    """Debian's Chromium (or $CPSIM_CHROMIUM).

    When it is missing the test is skipped with the fix, except in CI (``CI`` set, as
    ``.ci/run`` does), where a skipped browser test would hide a broken page: it fails.
    """
    path = os.environ.get("CPSIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        why = (f"Chromium is not installed (looked for {path}). Pages are tested in a "
               "real browser: run `make browser` (as root: apt-get update && apt-get "
               "install -y chromium), or set CPSIM_CHROMIUM to a Chromium executable.")
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven by Playwright (skipped without Chromium, except in CI)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The playwright package is missing: install the dev extra "
                    "(`pip install -e '.[dev]'`, which `make test` does).", pytrace=False)
    executable = chromium_executable()
    with sync_playwright() as p:
        try:
            launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:
            pytest.fail(f"Chromium at {executable} did not start: {exc}", pytrace=False)
        yield launched
        launched.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests driving a real browser are slow: `make test-fast` leaves them out."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
