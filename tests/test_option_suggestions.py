"""An unknown generator option (-o KEY=VALUE) names the closest valid one."""

from __future__ import annotations

import pytest

from synthaug._errors import InvalidOptionsError
from synthaug._plugins import get_generator


def test_a_misspelt_option_gets_a_did_you_mean():
    classic = get_generator("classic")
    with pytest.raises(InvalidOptionsError, match=r"unknown option 'max_rotaton' \(did you mean 'max_rotation'\?\)"):
        classic(max_rotaton=5)
    with pytest.raises(InvalidOptionsError) as info:
        classic(zzzz=1)
    assert "unknown option 'zzzz'" in str(info.value) and "did you mean" not in str(info.value)


def test_the_cli_prints_the_suggestion(tmp_path, capsys):
    from synthaug._cli import main
    from synthaug.testing import make_image_folder

    data = make_image_folder(tmp_path / "d", {"a": 3, "b": 2}, size=8)
    assert main(["balance", str(data), "--out", str(tmp_path / "o"), "-g", "classic", "-o", "max_rotaton=5", "-q"]) == 2
    assert "did you mean 'max_rotation'" in capsys.readouterr().err
