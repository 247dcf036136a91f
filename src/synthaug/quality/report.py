"""Deprecated alias of :mod:`synthaug.quality.assessment` (renamed so it is not confused with
:mod:`synthaug.evaluate.report`); it will be removed in a later release."""

from __future__ import annotations

import warnings

from .assessment import *  # noqa: F403
from .assessment import (  # noqa: F401
    DEFAULT_FILTER,
    REASONS,
    __all__,
    load_report,
    render_markdown,
    write_report,
)

warnings.warn("synthaug.quality.report is deprecated; import from synthaug.quality.assessment "
              "(or use synthaug.quality_report)", DeprecationWarning, stacklevel=2)
