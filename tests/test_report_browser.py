"""The HTML report in a real headless Chromium: offline, usable, and inert to markup.

Drives Debian's /usr/bin/chromium through Playwright (never `playwright install`),
with a fresh profile per test. Skipped with the reason when Chromium or Playwright
is missing, unless CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleetcompat.evaluate import (
    COMPATIBLE,
    ERROR,
    INCOMPATIBLE,
    NOT_EVALUATED,
    evaluate_targets,
)
from fleetcompat.report import write_report
from fleetcompat.store import Store
from tests.test_evaluate import independent_verdicts
from tests.test_report import HOSTILE, hostile_fleet

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Visit:
    """A page opened in Chromium, with what it logged, asked for and popped up."""

    page: Any
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A report of a fleet with hostile names, and the expected cell counts."""
    tmp = tmp_path_factory.mktemp("report")
    store = Store(tmp / "fleet.db")
    targets = hostile_fleet(store)
    run = evaluate_targets(store, targets)
    files = write_report(store, run.run_id, tmp / "out")
    verdicts = list(independent_verdicts(store, targets).values())
    counts = {v: verdicts.count(v) for v in (COMPATIBLE, INCOMPATIBLE, ERROR)}
    counts[NOT_EVALUATED] = verdicts.count(NOT_EVALUATED)
    store.close()
    return files.html, counts


@pytest.fixture
def visit(report: tuple[Path, dict[str, int]], tmp_path: Path) -> Iterator[Visit]:
    """The report opened in a fresh headless Chromium profile."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        _unavailable(f"Chromium not found at {CHROMIUM} (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")

    html, _ = report
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
        )
        page = context.new_page()
        seen = Visit(page)
        page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: seen.console.append(f"pageerror: {e}"))
        page.on("request", lambda r: seen.requests.append(r.url))

        def on_dialog(dialog: Any) -> None:
            seen.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(html.as_uri())
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        yield seen
        context.close()


def test_loads_offline_with_no_console_errors(visit: Visit, report) -> None:
    html, _ = report

    assert visit.console == []
    assert visit.requests == [html.as_uri()]


def test_summary_counts_agree_with_validating_every_pair(visit: Visit, report) -> None:
    _, counts = report

    cells = visit.page.locator("table.totals td").all_text_contents()

    assert [int(c) for c in cells] == [
        counts[COMPATIBLE],
        counts[INCOMPATIBLE],
        counts[ERROR],
        counts[NOT_EVALUATED],
    ]


def test_host_search_narrows_the_matrix_to_matching_groups(visit: Visit) -> None:
    page = visit.page
    before = page.locator("#m-table tr").count()

    page.fill("#m-host", "dpdk-1")

    assert before > 3
    assert page.locator("#m-table tr").count() == 2  # header and one group
    assert "dpdk-0 and 1 more" in page.locator("#m-table").inner_text()


def test_verdict_filter_keeps_rows_with_that_verdict(visit: Visit) -> None:
    page = visit.page

    before = page.locator("#m-table tr").count()

    page.select_option("#m-filter", "N")

    rows = page.locator("#m-table tr")
    assert 2 <= rows.count() < before
    for i in range(1, rows.count()):
        assert rows.nth(i).locator("td.cell.N").count() >= 1


def test_clicking_a_cell_shows_the_failing_expressions(visit: Visit) -> None:
    page = visit.page
    page.fill("#m-host", "dpdk-0")
    page.fill("#m-image", "cuda")

    page.locator("#m-table td.cell").first.click()

    detail = page.locator("#detail-body").inner_text()
    assert "module nvidia not loaded" in detail
    assert "no PCI device with vendor 10de, class one of 0300, 0302" in detail
    assert '{op: "In", value: ["0300" "0302"]}' in detail
    assert "matchExpression" in detail


def test_image_page_groups_hosts_one_change_away(visit: Visit) -> None:
    page = visit.page
    page.fill("#i-search", "cuda")

    page.locator("#i-table button.link").first.click()

    detail = page.locator("#detail-body").inner_text()
    assert "kernel.loadedmodule: nvidia_uvm" in detail
    assert "gpu-nodriver-0" in detail


def test_injected_markup_in_host_and_spec_values_stays_inert(visit: Visit) -> None:
    page = visit.page
    page.fill("#h-search", "onerror")
    page.locator("#h-table button.link").first.click()
    host_text = page.locator("#detail-body").inner_text()
    page.fill("#i-search", "onerror")
    page.locator("#i-table button.link").first.click()
    image_text = page.locator("#detail-body").inner_text()

    assert HOSTILE in host_text  # shown as text, the OS pretty name
    assert "</script><script>alert(2)</script>" in image_text
    assert visit.dialogs == []
    assert page.evaluate("document.querySelectorAll('img, svg[onload], b').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert visit.console == []


def test_a_host_page_has_a_link_of_its_own(visit: Visit, report) -> None:
    html, _ = report
    page = visit.page

    page.goto(html.as_uri() + "#host=dpdk-1")
    page.wait_for_selector("body[data-ready=true]")

    assert page.locator("#detail-title").inner_text() == "Host dpdk-1"
    assert "module nvidia not loaded" in page.locator("#detail-body").inner_text()
    page.locator("#detail-body button.link", has_text="cuda-inference").first.click()
    assert page.url.endswith("#image=cuda-inference%3A12.4")
    assert visit.console == []


def test_images_sort_least_compatible_first(visit: Visit) -> None:
    page = visit.page

    page.select_option("#m-colsort", "worst")

    first = page.locator("#m-table th.img").first.inner_text()
    last = page.locator("#m-table th.img").last.inner_text()
    assert first in ("cuda-inference:12.4", "onnx-avx512:1.17", HOSTILE)
    assert last == "python-service:3.12"


def test_a_host_link_opened_afresh_scrolls_its_page_into_view(
    visit: Visit, report
) -> None:
    html, _ = report
    page = visit.page
    page.set_viewport_size({"width": 1000, "height": 600})
    page.goto("about:blank")

    page.goto(html.as_uri() + "#host=dpdk-1")
    page.wait_for_selector("body[data-ready=true]")

    assert page.locator("#detail-title").inner_text() == "Host dpdk-1"
    top = page.evaluate("document.getElementById('detail').getBoundingClientRect().top")
    assert 0 <= top < 600


def test_matrix_links_count_one_host_in_the_singular(visit: Visit) -> None:
    page = visit.page

    page.fill("#m-host", "down")

    links = page.locator("#m-table td.group button.link").all_inner_texts()
    assert links == ["1 host"]
