"""The one-page ``report.html`` of ``synthaug report`` and ``synthaug evaluate``.

Unit tests read the HTML; the browser tests load it from ``file://`` in real headless
Chromium (Debian's ``chromium`` package, driven by Playwright's Python package with
``executable_path``; no browser download). They assert no console error, no network request,
every ``<img>`` decoded and a screenshot that is not blank.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from synthaug._cli import main
from synthaug.testing import make_image_folder

CHROMIUM = "/usr/bin/chromium"
LONG_CLASS = "pigmented_benign_keratosis_and_seborrheic_lesions"  # longer than any former truncation


@pytest.fixture(scope="module")
def quality_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synthaug report`` run on a tiny data set balanced with the classic generator."""
    root = tmp_path_factory.mktemp("quality")
    data = make_image_folder(root / "data", {"a": 10, "b": 4, "c": 3})
    assert main(["balance", str(data), "--out", str(root / "synthetic"), "-q"]) == 0
    assert main(["report", str(data), str(root / "synthetic"), "--out", str(root / "report"), "-q"]) == 0
    return root / "report"


@pytest.fixture(scope="module")
def evaluation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synthaug evaluate`` with a 2-step small CNN (seconds on a CPU)."""
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    root = tmp_path_factory.mktemp("evaluation")
    data = make_image_folder(root / "data", {"a": 14, "b": 8, LONG_CLASS: 6})
    code = main(["evaluate", str(data), "--out", str(root / "eval"), "--splits", "2", "--val", "0.25", "--test",
                 "0.25", "-e", "upsample", "-g", "classic", "--positive", "b", "--steps", "2", "--eval-every", "1", "--image-size", "16",
                 "--model", "small-cnn", "--batch-size", "8", "--threads", "1", "--quiet"])
    assert code == 0
    return root / "eval"


def _imgs(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', html)


def _no_external_references(html: str) -> None:
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:", "#")), f"report.html refers to {attr[:60]!r}"


def test_quality_page_has_tables_charts_and_no_image_of_the_data_by_default(quality_dir: Path) -> None:
    report = json.loads((quality_dir / "report.json").read_text())
    html = (quality_dir / "report.html").read_text()
    _no_external_references(html)
    assert _imgs(html) == []  # grids show the data: opt-in only
    for figure in report["figures"]:
        assert figure in html  # ... but the page says which grids were left out and how to embed them
    assert "--images" in html
    for label, c in report["classes"].items():
        assert re.search(rf"<td>{label}</td>\s*<td class=\"num\">{c['n_real']}</td>\s*<td class=\"num\">"
                         rf"{c['n_synthetic']}</td>", html)
    assert html.count("<svg") == 2 and html.count("<rect") >= len(report["classes"])
    assert "<title>synthaug quality report</title>" in html and "Versions: python" in html


def test_the_page_shows_the_command_line(tmp_path: Path) -> None:
    """The CLI passes the command it runs (also in-process, as here); a later library call in
    the same process shows none."""
    from synthaug._html_report import write_html_report

    data = make_image_folder(tmp_path / "data dir", {"a": 6, "b": 3})
    assert main(["balance", str(data), "--out", str(tmp_path / "synthetic"), "-q"]) == 0
    out = tmp_path / "report"
    assert main(["report", str(data), str(tmp_path / "synthetic"), "--out", str(out), "-q"]) == 0
    html = (out / "report.html").read_text()
    assert f"<pre>synthaug report &#39;{data}&#39; {tmp_path / 'synthetic'} --out {out} -q</pre>" in html
    assert "<pre>synthaug" not in write_html_report(out).read_text()


def test_html_command_embeds_the_grids_on_request(quality_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(quality_dir, tmp_path / "copy")
    assert main(["html", str(copy), "--images"]) == 0
    html = (copy / "report.html").read_text()
    figures = json.loads((copy / "report.json").read_text())["figures"]
    assert len(_imgs(html)) == len(figures) > 0
    import base64

    from PIL import Image

    first = base64.b64decode(_imgs(html)[0].split(",", 1)[1])
    assert Image.open(io.BytesIO(first)).size == Image.open(copy / figures[0]).size


def test_evaluation_page_has_every_experiment_plot_and_the_command(evaluation_dir: Path) -> None:
    report = json.loads((evaluation_dir / "report.json").read_text())
    html = (evaluation_dir / "report.html").read_text()
    _no_external_references(html)
    assert len(_imgs(html)) == len(report["plots"]) >= 3  # matplotlib plots are embedded (no data pixels)
    for name, e in report["experiments"].items():
        assert f"<td>{name}</td>" in html
        assert f"{e['test']['accuracy']['mean'] * 100:.2f} ± {e['test']['accuracy']['std'] * 100:.2f}" in html
    for label in report["classes"]:
        assert f">{label}</text>" in html
    assert "<title>synthaug evaluation</title>" in html


def test_evaluation_page_says_everything_report_md_says(evaluation_dir: Path) -> None:
    """Warnings, the small-sample notes, the clinical tables and their notes: report.md and
    report.html carry the same sentences; class names are whole."""
    from html import unescape

    from synthaug._evaluate.report import warning_texts
    from synthaug._evaluate.report_clinical import clinical_tables, verdict_notes

    report = json.loads((evaluation_dir / "report.json").read_text())
    md = (evaluation_dir / "report.md").read_text()
    page = unescape((evaluation_dir / "report.html").read_text())
    texts = warning_texts(report) + verdict_notes(report)
    assert any("may be under-trained" in t for t in texts) and any("Too few runs" in t for t in texts)
    for text in texts:
        assert text in md
        assert text.replace("**", "").replace("`", "") in page
    tables = clinical_tables(report)
    assert [t["title"] for t in tables][-1] == "b vs rest (test, %)"
    for table in tables:
        assert f"## {table['title']}" in md and f"<h2>{table['title']}</h2>" in page
        if table.get("note"):
            assert table["note"] in md and table["note"] in page
    assert "test images per split" in page and "(too few runs)" in page
    assert re.search(r"<dt>device</dt><dd>(cpu|cuda:\d+) \(asked: --device auto\), precision fp32</dd>", page)
    assert f">{LONG_CLASS}</text>" in page and f"<td>{LONG_CLASS}</td>" in page
    assert not re.search(r"\w…</text>", page)  # no truncated label


def test_missing_keys_a_verdict_table_and_recorded_versions_render(tmp_path: Path) -> None:
    from synthaug._html_report import render_html_report

    report = {"experiments": {"baseline": {}, "upsample": {"test": {"accuracy": {"mean": 0.5}}}},
              "versions": {"synthaug": "9.9.9", "torch": "1.2.3"},
              "verdicts": [{"experiment": "upsample", "metric": "balanced_accuracy", "mean": 0.02, "ci_low": -0.01,
                            "ci_high": 0.05, "wilcoxon_p": 0.0004, "verdict": "no evidence", "n": 6}]}
    html = render_html_report(report, tmp_path)
    row = re.search(r"<tr><td>upsample</td><td class=\"num\">balanced accuracy</td>(.*?)</tr>", html)
    assert row, html
    assert [c for c in re.findall(r">([^<]*)</td>", row.group(1))] == ["+2.00", "[-1.00, +5.00]", "&lt;0.001", "6",
                                                                        "no evidence"]
    assert "50.00" in html and "synthaug 9.9.9, torch 1.2.3" in html
    # an unknown verdict shape is still shown, key by key
    html = render_html_report({**report, "verdicts": {"upsample": {"decision": "keep"}}}, tmp_path)
    assert "<th>decision</th>" in html and "<td class=\"num\">keep</td>" in html


def test_a_folder_without_report_json_is_a_clear_error(tmp_path: Path) -> None:
    from synthaug._errors import DatasetError
    from synthaug._html_report import write_html_report

    with pytest.raises(DatasetError, match="report.json"):
        write_html_report(tmp_path)
    (tmp_path / "report.json").write_text('{"something": 1}')
    with pytest.raises(DatasetError, match="neither an evaluation"):
        write_html_report(tmp_path)


# -- in a real browser --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed with apt-get when absent (as root); skips with the reason otherwise."""
    pytest.importorskip("playwright.sync_api", reason="the browser test drives Chromium with `playwright` (dev extra)")
    if not os.path.exists(CHROMIUM):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(f"{CHROMIUM} is absent and cannot be installed here (needs root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"`apt-get install chromium` failed: {done.stderr.strip()[-300:]}")
    return CHROMIUM


#: Tables must fit this viewport (a laptop) without sideways scrolling or hidden columns.
VIEWPORT = {"width": 1280, "height": 900}
_TOO_WIDE = """() => Array.from(document.querySelectorAll('table')).filter(t =>
    t.getBoundingClientRect().right > window.innerWidth || t.scrollWidth > t.clientWidth + 1
    || t.parentElement.scrollWidth > t.parentElement.clientWidth + 1).map(t => t.closest('section').innerText.slice(0, 60))
    .concat(document.documentElement.scrollWidth > window.innerWidth ? ['the page scrolls sideways'] : [])"""


def _load_in_chromium(page_path: Path, executable: str) -> tuple[list[str], list[str], list[int], bytes]:
    """Open ``page_path`` from file://; return (console errors, requests, image widths, screenshot PNG).
    A table wider than the 1280 px viewport is reported as a console error."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            widths = page.evaluate("Array.from(document.images, i => i.complete ? i.naturalWidth : 0)")
            errors += [f"table wider than {VIEWPORT['width']} px: {t}" for t in page.evaluate(_TOO_WIDE)]
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    return errors, requests, widths, shot


def _assert_not_blank(png: bytes) -> None:
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert pixels.shape[0] >= 600 and pixels.std() > 10, "the screenshot is blank"
    assert (pixels < 128).mean() > 0.01  # text, bars and tables drew dark pixels


@pytest.mark.slow
@pytest.mark.parametrize("with_images", [False, True], ids=["default", "images"])
def test_quality_page_renders_in_chromium(quality_dir: Path, chromium: str, tmp_path: Path, with_images: bool) -> None:
    folder = shutil.copytree(quality_dir, tmp_path / "report")
    if with_images:
        assert main(["html", str(folder), "--images"]) == 0
    errors, requests, widths, shot = _load_in_chromium(folder / "report.html", chromium)
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert len(widths) == (len(json.loads((folder / "report.json").read_text())["figures"]) if with_images else 0)
    assert all(w > 0 for w in widths), widths
    _assert_not_blank(shot)


@pytest.mark.slow
def test_evaluation_page_renders_in_chromium(evaluation_dir: Path, chromium: str) -> None:
    errors, requests, widths, shot = _load_in_chromium(evaluation_dir / "report.html", chromium)
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert len(widths) >= 3 and all(w > 0 for w in widths), widths
    _assert_not_blank(shot)


def test_classifier_line_shows_alpha_only_for_mobilenet_and_whole_epochs() -> None:
    from synthaug._html_report.context import classifier_summary

    small = {"backend": "torch", "model": "small-cnn", "alpha": 0.25, "image_size": 64, "epochs": 30.0}
    assert classifier_summary(small) == "backend torch, model small-cnn, image_size 64, epochs 30"
    mobile = {**small, "model": "mobilenet", "epochs": 2.5}
    assert classifier_summary(mobile) == "backend torch, model mobilenet, alpha 0.25, image_size 64, epochs 2.5"


def test_quality_page_has_the_overall_line_and_how_to_read_it(quality_dir: Path) -> None:
    from html import unescape

    from synthaug._quality.render import HOW_TO_READ, overall_line

    report = json.loads((quality_dir / "report.json").read_text())
    page = unescape((quality_dir / "report.html").read_text())
    md = (quality_dir / "report.md").read_text()
    assert HOW_TO_READ in md and HOW_TO_READ.replace("*", "") in page
    if "fd" in report["overall"]:
        assert overall_line(report["overall"]) in md and overall_line(report["overall"]) in page
