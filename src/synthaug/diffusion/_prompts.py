"""Attribute prompts: a ``prompt_template`` naming metadata columns (``--metadata``, ``metadata=``).

With a concept that carries per-image ``attributes`` (:mod:`synthaug._metadata`) and a template
naming their columns, e.g. ``"a dermoscopic image of {dx} on the {localization}, age {age}"``:

- training captions each image with its own row (:func:`training_captions`);
- generation gives each new image the row of one of the concept's training images, chosen by
  the image's seed (the empirical joint distribution of the attributes), and records it
  (:func:`sampled_attributes`).

Without attributes, or with a template naming only ``{concept}``, nothing changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import InvalidOptionsError
from .._generator import Concept, derive_seed
from .._metadata import check_attributes, fill_template, template_fields

__all__ = ["attribute_fields", "captions_digest", "sampled_attributes", "training_captions"]


def attribute_fields(template: str, concept: Concept) -> list[str]:
    """The metadata columns ``template`` uses for ``concept`` (checked), or ``[]`` for none; a template
    naming columns without metadata is an :class:`~synthaug.InvalidOptionsError`."""
    if not concept.attributes:
        named = [f for f in template_fields(template) if f != "concept"]
        if named:
            raise InvalidOptionsError(f"option prompt_template={template!r} names {', '.join(named)} but no metadata "
                                      "was given: pass the CSV with --metadata FILE.csv (or metadata=), or use only "
                                      "{concept}")
        return []
    return check_attributes(template, concept.name, concept.label, concept.images, concept.attributes)


def training_captions(generator: Any, concept: Concept) -> list[str] | None:
    """Each training image's caption (aligned with ``concept.images``), or None when the
    template uses no metadata column."""
    fields = attribute_fields(generator.template_for(concept), concept)
    if not fields:
        return None
    return [generator.prompt_for(concept, {f: row[f] for f in fields}) for row in concept.attributes]


def captions_digest(captions: Sequence[str] | None) -> str | None:
    """SHA-256 of the training captions (in the artifact: changed metadata means a new fit)."""
    return None if captions is None else hashlib.sha256(json.dumps(list(captions)).encode()).hexdigest()


def sampled_attributes(template: str, concept: Concept, seed: int) -> dict[str, str]:
    """The attributes of the new image of ``seed``: the row of the training image its seed picks
    (uniformly; a pure function of the seed), restricted to the template's columns."""
    fields = attribute_fields(template, concept)
    if not fields:
        return {}
    row = concept.attributes[derive_seed(int(seed), "attributes", "", 0) % len(concept.attributes)]
    return {f: row[f] for f in fields}


def fill(prompt: str, attributes: Mapping[str, str]) -> str:
    """``prompt`` with the attribute values filled in."""
    return fill_template(prompt, attributes)
