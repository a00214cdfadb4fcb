"""The built site in Debian's chromium, headless, from file://: what a visitor would see and run."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bi_bench.harness.site import build
from results_factory import FORGED, FORGED_CASE, PAYLOAD, SCRIPT_PAYLOAD, VALIDATED, write_leaderboard

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (dev extras)")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    return build(write_leaderboard(root / "results"), root / "out")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def errors() -> list[str]:
    """Console errors and uncaught exceptions of `page`."""
    return []


@pytest.fixture
def page(browser: Browser, errors: list[str]) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1400, "height": 900})
    opened.on("console", lambda message: message.type == "error" and errors.append(message.text))
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    opened.close()


def model_names(page: Page) -> list[str]:
    return page.locator("#leaderboard tbody tr:not([hidden]) td.model a").all_inner_texts()


def test_index_lists_each_validated_model_once_without_errors(page: Page, index: Path, errors: list[str]) -> None:
    page.goto(index.as_uri())
    assert sorted(model_names(page)) == sorted(VALIDATED)
    assert page.locator("#synthetic-table tbody tr").count() == 1
    assert errors == []


def test_forged_file_is_not_listed_and_its_rejection_is_explained(page: Page, index: Path,
                                                                   errors: list[str]) -> None:
    page.goto(index.as_uri())
    assert FORGED not in page.locator("main").inner_text()
    page.locator("#rejected a", has_text="see which").click()
    row = page.locator("#rejected-table tbody tr", has_text="forged-claims-everything-7b")
    assert row.count() == 1
    assert row.locator("td.reason").inner_text() == f"cases: '{FORGED_CASE}' (index 1) is missing"
    assert errors == []


def test_sorting_and_filtering(page: Page, index: Path, errors: list[str]) -> None:
    page.goto(index.as_uri())
    params = page.locator("#leaderboard thead th", has_text="Params").locator("button")
    params.click()
    assert model_names(page) == [VALIDATED[0], VALIDATED[1], PAYLOAD]  # 135M, 600M, 7B
    params.click()
    assert model_names(page) == [PAYLOAD, VALIDATED[1], VALIDATED[0]]
    page.locator('input[data-filter="leaderboard"]').fill("qwen")
    assert model_names(page) == [VALIDATED[1]]
    assert page.locator('output[data-count="leaderboard"]').inner_text() == "1 of 3 shown"
    assert errors == []


def test_html_in_a_model_id_is_shown_as_text_and_never_runs(page: Page, index: Path, errors: list[str]) -> None:
    """On the index, the model page and the run page: the payload's onerror would set window.__pwned."""
    page.goto(index.as_uri())
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert PAYLOAD in model_names(page)
    page.locator("#leaderboard td.model a", has_text="onerror").click()
    page.wait_for_selector(".plot .main-svg")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("h1 .model-id").inner_text() == PAYLOAD
    labels = page.locator(".plot").last.locator(".xtick text").all_text_contents()  # throughput bars: hardware
    assert any(SCRIPT_PAYLOAD in label for label in labels)
    page.locator("#runs tbody a").first.click()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator(".crumbs").inner_text().count(PAYLOAD) == 1
    assert errors == []


def test_model_page_draws_its_plots(page: Page, index: Path, errors: list[str], tmp_path: Path) -> None:
    model_page = next((index.parent / "models").glob("huggingfacetb-*.html"))
    page.goto(model_page.as_uri())
    page.wait_for_selector(".plot .main-svg")
    assert page.locator(".plot").count() == 5
    assert page.locator(".plot svg.main-svg").count() >= 5
    assert page.locator(".plot .bars path").count() >= 4  # the throughput and first-divergence bars
    assert errors == []
    screenshot = tmp_path / "model-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000


def test_verdict_badges_wear_the_colours_of_verdict_styles(page: Page, index: Path, errors: list[str]) -> None:
    """The badge colours come from harness.results.metrics.VERDICT_STYLES (through the generated verdicts.css)."""
    from bi_bench.harness.results.metrics import VERDICT_STYLES

    page.goto(index.as_uri())
    badge = page.locator(".badge.pass").first
    colours = badge.evaluate("b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]")
    style = VERDICT_STYLES["pass"]
    assert colours == [rgb(style.text), rgb(style.background)]
    assert errors == []


def rgb(hex_colour: str) -> str:
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"
