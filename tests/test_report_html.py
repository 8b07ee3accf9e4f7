"""report: one self-contained HTML page from result files; checked as text, and in a real headless browser.

The browser tests drive Debian's chromium with selenium (``make test`` installs both). Without them the tests
fail where ``CI`` is set, so CI can never pass by skipping them, and skip on a developer machine.
"""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from convbench.cli.main import app
from convbench.results.html import write_report

runner = CliRunner()

ENV = {
    "schema_version": 2,
    "cpu": "Test CPU 9000",
    "cores": 2,
    "os": "Linux-test",
    "python": "3.11.7",
    "torch": "2.14.1",
    "onnxruntime": "1.32.0",
    "convbench": "0.1.0",
    "git_commit": "0123abc",
    "git_dirty": "no",
    "host": "benchhost",
    "timestamp": "2026-12-02T15:53:26+00:00",
}
# Registered models with published top-1 (CNN-MoD Table 1), in an order that is not sorted by latency.
MODELS = (
    ("resnet75-mod", "mod", 33.0, 3.47, False, ""),
    ("resnet50", "resnet", 40.0, 4.12, False, ""),
    ("resnet86-mod", "mod", 38.0, 3.90, True, "trial 2: CV 12% > 10%"),
    ("resnet50-mod", "mod", 27.0, 2.59, False, ""),
)


def result_rows(runtimes=("onnxruntime", "torch"), run_id="20261202T155326-7eb1b280"):
    rows = []
    for runtime, scale in zip(runtimes, (1.0, 3.0), strict=False):
        for model, family, ms, gmacs, noisy, reason in MODELS:
            median = ms * scale
            rows.append(
                {
                    **ENV,
                    "run_id": run_id,
                    "model": model,
                    "family": family,
                    "device": "cpu",
                    "runtime": runtime,
                    "threads": 1,
                    "batch_size": 1,
                    "resolution": 224,
                    "precision": "fp32",
                    "gmacs": gmacs,
                    "params_m": 20.0,
                    "median_ms": median,
                    "median_low_ms": median * 0.99,
                    "median_high_ms": median * 1.01,
                    "baseline": "resnet50",
                    "speedup": 40.0 / ms,
                    "speedup_low": 40.0 / ms * 0.98,
                    "speedup_high": 40.0 / ms * 1.02,
                    "verdict": "baseline" if model == "resnet50" else "faster",
                    "noisy": noisy,
                    "noisy_reason": reason,
                    "config_key": f"device=cpu runtime={runtime} threads=1",
                }
            )
    return rows


def write_csv(path: Path, rows) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def no_plots(monkeypatch):
    """Tests of the tables skip drawing (matplotlib takes seconds per figure); the plot tests draw."""
    monkeypatch.setattr("convbench.results.html.svg_plot", lambda path, prefix: (None, []))


@pytest.fixture
def compare_csv(tmp_path):
    return write_csv(tmp_path / "compare.csv", result_rows())


class Page(HTMLParser):
    """What the tests read from a page: tables' body rows, ids, script and link tags, inline SVGs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self.headers: dict[str, list[str]] = {}
        self.ids: list[str] = []
        self.tags: dict[str, list[dict[str, str | None]]] = {}
        self._table: str | None = None
        self._in = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.setdefault(tag, []).append(attributes)
        if attributes.get("id"):
            self.ids.append(attributes["id"])
        if tag == "table":
            self._table = attributes.get("id") or ""
            self.rows[self._table] = 0
            self.headers[self._table] = []
        elif tag in ("thead", "tbody"):
            self._in = tag
        elif tag == "tr" and self._in == "tbody" and self._table is not None:
            self.rows[self._table] += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("thead", "tbody"):
            self._in = ""

    def handle_data(self, data):
        if self._in == "thead" and self._table is not None and data.strip():
            self.headers[self._table].append(data.strip())


def test_every_row_of_the_file_is_one_table_row_and_shared_settings_are_said_once(compare_csv, tmp_path, no_plots):
    """Catches rows dropped or duplicated (e.g. deduplicated by model), and columns repeating one value."""
    out = write_report([compare_csv], tmp_path / "report.html")
    text = out.read_text()
    page = Page(text)
    assert page.rows["results-0"] == len(pd.read_csv(compare_csv)) == 8
    assert page.rows["all-0"] == 8
    headers = page.headers["results-0"]
    assert "runtime" in headers  # two runtimes: a column
    assert "device" not in headers and "threads" not in headers  # one value: in the caption
    assert "all with device cpu · threads 1" in text


def test_energy_is_a_column_where_measured_and_its_reason_said_once_where_not(tmp_path, no_plots):
    """Catches measured energy hidden, or one shared "not available" reason repeated on every row."""
    measured = result_rows(runtimes=("onnxruntime",))
    for i, row in enumerate(measured):
        row.update(energy_j_per_image=0.5 + i, power_w=12.5, energy_source="rapl: package-0", energy_note="")
    missing = result_rows(runtimes=("onnxruntime",))
    for row in missing:
        row.update(energy_j_per_image=float("nan"), energy_note="energy: not available (no powercap)")
    out = write_report(
        [write_csv(tmp_path / "measured.csv", measured), write_csv(tmp_path / "missing.csv", missing)],
        tmp_path / "report.html",
    )
    text = out.read_text()
    page = Page(text)
    assert "J per image" in page.headers["results-0"] and "power W" in page.headers["results-0"]
    assert "energy counter" in page.headers["runs-0"]
    assert "J per image" not in page.headers["results-1"] and "energy" not in page.headers["results-1"]
    assert "· energy not available (no powercap)." in text


def test_text_from_files_is_escaped(tmp_path, no_plots):
    """Catches a model name or noise reason written into the page raw (script injection, broken markup)."""
    rows = result_rows(runtimes=("onnxruntime",))
    rows[0]["model"] = "<script>alert('x')</script>"
    rows[2]["noisy_reason"] = '"><img src=x onerror=alert(1)>'
    out = write_report([write_csv(tmp_path / "evil.csv", rows)], tmp_path / "report.html")
    text = out.read_text()
    assert "<script>alert" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert len(Page(text).tags["script"]) == 1  # only the page's own


def test_page_fetches_nothing(compare_csv, tmp_path):
    """Catches a CDN stylesheet or script, an external image, or a missing no-network policy."""
    text = write_report([compare_csv], tmp_path / "report.html").read_text()
    page = Page(text)
    for tag, attributes in page.tags.items():
        for attrs in attributes:
            for name in ("src", "href"):
                value = attrs.get(name) or ""
                assert not re.match(r"[a-z]+://|//", value), (tag, name, value)
    assert all(not a.get("src") for a in page.tags["script"])
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    policy = next(m for m in page.tags["meta"] if m.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in (policy["content"] or "")


def test_noisy_rows_carry_a_visible_mark_with_their_reason(compare_csv, tmp_path, no_plots):
    """Catches the noise flag dropped, shown on the wrong row, or shown without its reason."""
    text = write_report([compare_csv], tmp_path / "report.html").read_text()
    marks = re.findall(r'<td data-v="1" class="flag noisy"><span title="([^"]*)">⚠ noisy</span></td>', text)
    assert marks == ["trial 2: CV 12% &gt; 10%"] * 2  # resnet86-mod on both runtimes
    assert text.count('class="flag quiet"') == 6
    assert text.count('<td class="wrap">trial 2: CV 12% &gt; 10%</td>') == 2  # and the reason in its own cell


def test_runs_table_names_machine_versions_commit_and_settings(tmp_path, no_plots):
    """Catches provenance missing from the page, or two runs folded into one."""
    rows = result_rows(runtimes=("onnxruntime",)) + result_rows(runtimes=("torch",), run_id="second-run")
    rows[-1]["host"] = "otherhost"
    text = write_report([write_csv(tmp_path / "two.csv", rows)], tmp_path / "report.html").read_text()
    page = Page(text)
    assert page.rows["runs-0"] == 2
    for value in (
        "Test CPU 9000",
        "benchhost",
        "0123abc",
        "2.14.1",
        "1.32.0",
        "Linux-test",
        "device=cpu runtime=torch",
    ):
        assert f">{value}" in text, value
    assert "benchhost; otherhost" in text  # the second run's rows disagree on the host: both are shown
    for header in ("host", "CPU", "torch", "git commit", "settings"):
        assert header in page.headers["runs-0"]


def test_plots_are_inline_svg_with_unique_ids(compare_csv, tmp_path):
    """Catches a plot linked instead of inlined, text drawn as paths, or two SVGs whose ids collide (clip paths
    of the second figure would then cut the first's), or a reference left pointing at an unprefixed id."""
    other = write_csv(tmp_path / "other.csv", result_rows(runtimes=("openvino",)))
    text = write_report([compare_csv, other], tmp_path / "report.html").read_text()
    page = Page(text)
    assert len(page.tags["svg"]) == 2
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text
    assert re.search(r"<text[^>]*>[^<]*resnet75-mod", text)  # the model's label is text, not a glyph path
    duplicates = {i for i in page.ids if page.ids.count(i) > 1}
    assert not duplicates
    references = re.findall(r"url\(#([^)]+)\)|href=\"#([^\"]+)\"", text)
    assert references and all((a or b) in page.ids for a, b in references)


def test_a_file_without_accuracy_gets_a_note_not_a_failure(tmp_path):
    """Catches the whole report failing because one file's models have no published top-1."""
    rows = result_rows(runtimes=("onnxruntime",))
    for row in rows:
        row["model"] = "my_net.py:build_" + row["model"]
    out = write_report([write_csv(tmp_path / "own.csv", rows)], tmp_path / "report.html")
    text = out.read_text()
    assert "<svg" not in text
    assert "no plot: nothing to plot" in text


def test_json_result_files_are_read(tmp_path, no_plots):
    """Catches the report taking only CSV."""
    path = tmp_path / "rows.json"
    pd.DataFrame(result_rows()).to_json(path, orient="records")
    page = Page(write_report([path], tmp_path / "report.html").read_text())
    assert page.rows["results-0"] == 8


def invoke(*args):
    return runner.invoke(app, ["report", *[str(a) for a in args]])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_report_command_writes_the_page(compare_csv, tmp_path):
    result = invoke(compare_csv, "-o", tmp_path / "out" / "r.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_bad_input_is_one_line_exit_2_and_leaves_the_old_report(compare_csv, tmp_path):
    """Catches a traceback, a usage box, or a half-written or replaced report on bad input."""
    target = tmp_path / "report.html"
    target.write_text("old report")
    other = write_csv(tmp_path / "other.csv", [{"name": "a", "value": 1}])
    (tmp_path / "empty.csv").write_text("model,median_ms\n")
    analysis = write_csv(tmp_path / "fit.csv", [{"model": "resnet50", "measured_ms": 40.0}])  # analyze's output
    (tmp_path / "notes.txt").write_text("hello")
    cases = [
        ((), ("at least one result file",)),
        ((tmp_path / "missing.csv",), ("no result file", "missing.csv")),
        ((other,), ("other.csv", "not a convbench file")),
        ((analysis,), ("not a convbench result file", "median_ms")),
        ((tmp_path / "empty.csv",), ("has no rows",)),
        ((tmp_path / "notes.txt",), ("notes.txt",)),
        ((compare_csv, other), ("other.csv",)),  # one bad file among good ones: nothing written
    ]
    for files, fragments in cases:
        assert_one_line_error(invoke(*files, "-o", target), *fragments)
        assert target.read_text() == "old report"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.html.")]  # no temporary left


def test_unwritable_report_path_is_one_line_exit_2(compare_csv, tmp_path):
    """Catches an unwritable target found only after the plots were drawn, or reported with a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(invoke(compare_csv, "-o", blocker / "report.html"), "cannot write")
    assert_one_line_error(invoke(compare_csv, "-o", tmp_path), "give -o a .html name")
    (tmp_path / "dir.html").mkdir()
    assert_one_line_error(invoke(compare_csv, "-o", tmp_path / "dir.html"), "is a directory")
    assert_one_line_error(invoke(compare_csv, "-o", tmp_path / "r.csv"), "give -o a .html name")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_one_line_error(invoke(compare_csv, "-o", locked / "r.html"), "permission denied")


# --- in a real browser ---------------------------------------------------------------------------------------


def _find_browser() -> tuple[str, str]:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = "selenium (pip install -e '.[dev]')"
    else:
        missing = "" if browser and driver else "chromium and chromedriver (apt-get install chromium chromium-driver)"
    if missing:
        message = f"the browser test needs {missing}; `make test` installs them"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the browser test, never pass by skipping it
        pytest.skip(message)
    return str(browser), str(driver)


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = _find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _column(driver, table_id: str, header: str) -> list[str]:
    from selenium.webdriver.common.by import By

    headers = [h.text.strip() for h in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th")]
    index = headers.index(header) + 1
    cells = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr td:nth-child({index})")
    return [c.get_attribute("data-v") for c in cells]


def test_in_a_browser_loads_counts_sorts_filters_and_draws(browser, compare_csv, tmp_path):
    """In chromium from file://: no console error (a blocked fetch or a script error would log one), one table
    row per CSV row, a header click sorts that column (both ways), the filter hides rows, every plot is an SVG
    drawn at a visible size. Catches a broken script, a sort by text ("100" before "27"), a missing plot."""
    from selenium.webdriver.common.by import By

    other = write_csv(tmp_path / "other.csv", result_rows(runtimes=("openvino",)))
    out = write_report([compare_csv, other], tmp_path / "report.html")
    browser.get(out.resolve().as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    rows = browser.find_elements(By.CSS_SELECTOR, "#results-0 tbody tr")
    assert len(rows) == len(pd.read_csv(compare_csv))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results-1 tbody tr")) == len(pd.read_csv(other))

    header = "median ms (95% CI)"
    before = [float(v) for v in _column(browser, "results-0", header)]
    assert before != sorted(before)
    button = next(
        th.find_element(By.TAG_NAME, "button")
        for th in browser.find_elements(By.CSS_SELECTOR, "#results-0 thead th")
        if th.text.strip() == header
    )
    button.click()
    after = [float(v) for v in _column(browser, "results-0", header)]
    assert after == sorted(before)
    button.click()
    assert [float(v) for v in _column(browser, "results-0", header)] == sorted(before, reverse=True)
    models = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#results-0 tbody tr td:first-child")]
    assert models[0] == "resnet50" and models[-1] == "resnet50-mod"  # whole rows moved, not one column

    search = browser.find_element(By.CSS_SELECTOR, "input.filter[data-table='results-0']")
    search.send_keys("resnet86 torch")
    visible = [r for r in browser.find_elements(By.CSS_SELECTOR, "#results-0 tbody tr") if r.is_displayed()]
    assert len(visible) == 1
    assert browser.find_element(By.ID, "results-0-count").text == "1 of 8 rows"
    assert visible[0].find_element(By.CSS_SELECTOR, "td.noisy span").get_attribute("title") == "trial 2: CV 12% > 10%"

    figures = browser.find_elements(By.CSS_SELECTOR, "figure.plot")
    assert len(figures) == 2
    for figure in figures:
        svg = figure.find_element(By.TAG_NAME, "svg")
        assert svg.size["width"] > 400 and svg.size["height"] > 200
        labels = " ".join(t.get_attribute("textContent") for t in svg.find_elements(By.TAG_NAME, "text"))
        assert "resnet75-mod" in labels
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_committed_example_report_opens_cleanly(browser):
    """The README's example: catches a committed report that no longer loads, or a table that lost rows."""
    from selenium.webdriver.common.by import By

    example = Path(__file__).resolve().parent.parent / "results" / "report.html"
    if not example.is_file():
        pytest.fail("results/report.html is missing; regenerate it (README: Share a report)")
    browser.get(example.as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert browser.find_elements(By.CSS_SELECTOR, "table.sortable tbody tr")
    for svg in browser.find_elements(By.CSS_SELECTOR, "figure.plot svg"):
        assert svg.size["width"] > 400
