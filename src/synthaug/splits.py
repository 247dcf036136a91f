"""Deprecated alias of :mod:`synthaug.splitting` (renamed so it is not confused with
:mod:`synthaug.evaluate.splits`); it will be removed in a later release."""

from __future__ import annotations

import warnings

from .splitting import *  # noqa: F403
from .splitting import __all__  # noqa: F401

warnings.warn("synthaug.splits is deprecated; import from synthaug.splitting (or use synthaug.split_dataset)",
              DeprecationWarning, stacklevel=2)
