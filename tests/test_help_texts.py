"""Help texts say what the commands do (issue 24, "the first hour")."""

from __future__ import annotations

import pytest

from synthaug._cli import main


def _help(capsys, *command: str) -> str:
    assert main([*command, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())  # click wraps lines


def test_evaluate_help_explains_classic_and_the_new_options(capsys):
    text = _help(capsys, "evaluate")
    assert "the experiment 'classic' is upsample always with the generator 'classic'" in text
    assert "without them: the classic generator, as balance does" in text
    for option in ("--device", "--precision", "--positive", "--fractions"):
        assert option in text


@pytest.mark.parametrize(("command", "phrase"), [
    (("html",), "embedded only with --images"),
    (("report",), "SYNTHETIC.synthaug/rejected/"),
    (("split",), "Seed of the random stratified assignment"),
    (("split",), "splits.json"),
])
def test_help_matches_behaviour(capsys, command, phrase):
    assert phrase in _help(capsys, *command)


def test_report_prints_the_path_of_report_html(tmp_path, capsys):
    from synthaug.testing import make_image_folder

    data = make_image_folder(tmp_path / "data", {"a": 6, "b": 3}, size=16)
    assert main(["balance", str(data), "--out", str(tmp_path / "synthetic"), "-q"]) == 0
    assert main(["report", str(data), str(tmp_path / "synthetic"), "--out", str(tmp_path / "report")]) == 0
    out = "".join(capsys.readouterr().out.split())  # rich may wrap a long path
    assert f"report.html:{tmp_path / 'report' / 'report.html'}" in out
    assert (tmp_path / "report" / "report.html").is_file()


@pytest.mark.parametrize("command", ["balance", "report", "filter", "evaluate", "split", "plan"])
def test_one_style_of_defaults(capsys, command):
    text = _help(capsys, command)
    assert "(default" not in text and "default)" not in text  # click's "[default: …]" only
