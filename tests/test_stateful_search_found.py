"""The operation sequences the stateful search (``tests/test_stateful_search.py``) found, kept as
replay tests: each runs the rules in order on a fresh ``SearchMachine`` and checks every invariant
after each step, in seconds."""

from __future__ import annotations

import pytest

from .test_stateful_search import SearchMachine


def _replay(*steps: tuple[str, dict]) -> None:
    """Run ``steps`` (rule name, arguments) on a fresh machine, checking every invariant after each."""
    machine = SearchMachine()
    checks = [name for name, value in vars(SearchMachine).items()
              if callable(value) and hasattr(value, "hypothesis_stateful_invariant")]
    assert len(checks) == 4, checks
    try:
        for name, kwargs in steps:
            getattr(machine, name)(**kwargs)
            for check in checks:
                getattr(machine, check)()
    finally:
        machine.teardown()


@pytest.mark.slow
def test_rerun_from_another_split_root_uses_no_held_out_image() -> None:
    """Issue 21 item 1 as the search's steps: balance from split-0, then from split-1 (same counts)."""
    pytest.importorskip("torch")
    _replay(("make_data", {"counts": (8, 6, 2)}), ("split", {"seed": 0}), ("split", {"seed": 1}),
            ("balance", {"combined": False, "overwrite": False, "source": "0", "workers": 1}),
            ("balance", {"combined": False, "overwrite": False, "source": "1", "workers": 1}))


@pytest.mark.slow
def test_found_rerun_from_another_split_root_uses_no_held_out_image() -> None:
    """The shortest sequence the search found for the leak of issue 21 item 1 (with a filter between)."""
    pytest.importorskip("torch")
    _replay(("make_data", {"counts": (4, 3, 1)}), ("add_image", {"label": "a"}), ("add_image", {"label": "a"}),
            ("balance", {"combined": False, "overwrite": False, "source": "3", "workers": 1}), ("filter", {}),
            ("balance", {"combined": False, "overwrite": False, "source": "1", "workers": 1}))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["copy", "symlink"])
def test_found_a_duplicated_image_is_listed_once(how: str) -> None:
    """The shortest sequences the search found: a copy of an image, or a symlink to it, in its own
    class: the symlink is the same file (listed once); the copy is another file."""
    pytest.importorskip("torch")
    _replay(("make_data", {"counts": (4, 2, 1)}), ("duplicate_image", {"how": how, "index": 0, "label": "a"}))


@pytest.mark.slow
@pytest.mark.parametrize("steps", [
    [("duplicate_image", {"how": "copy", "index": 0, "label": "b"})],
    [("duplicate_image", {"how": "copy", "index": 0, "label": "a"}), ("split", {"seed": 3})],
], ids=["copy-into-another-class", "split-of-a-copy"])
def test_found_one_image_has_one_identity(steps: list) -> None:
    """Sequences the search found: a copy of an image in another class (distinct files: two samples to
    the readers, one file each), and a split that put an image and its copy in two of
    train/val/test (now kept in one split)."""
    pytest.importorskip("torch")
    _replay(("make_data", {"counts": (4, 2, 1)}), *steps)
