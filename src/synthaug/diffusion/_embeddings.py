"""Textual-inversion embeddings in the AUTOMATIC1111 formats (which ComfyUI reads too).

A1111 (``modules/textual_inversion/textual_inversion.py``) and ComfyUI (``comfy/sd1_clip.py``,
``load_embed``) read an embedding from ``embeddings/<name>.pt`` or ``<name>.safetensors``;
the prompt word is the file name. They accept:

- ``.pt``: A1111's own dict ``{"string_to_token": {"*": 265}, "string_to_param": {"*": vectors},
  "name", "step", "sd_checkpoint", "sd_checkpoint_name"}``; both take the single tensor of
  ``string_to_param``, A1111 also reads ``step``, ``sd_checkpoint`` and ``sd_checkpoint_name``;
- ``.safetensors``: exactly one tensor, by convention named ``emb_params`` (A1111 refuses a file
  with several tensors, ComfyUI takes the first).

The tensor is ``(num_vectors, hidden_size)``. :func:`save_a1111_embedding` writes both files.

The ``.pt`` file is written in torch's legacy (non-zip) serialization. A1111 checks every
``.pt`` before loading it (``modules/safe.py``, ``check_pt``): a zip file may hold only the
entries ``<name>/data.pkl``, ``<name>/version`` and ``<name>/data/<n>``, and current
``torch.save`` also writes ``.format_version``, ``.storage_alignment``, ``byteorder`` and
``.data/serialization_id``, so A1111 refused such a file as "may be malicious". The legacy
format is not a zip: A1111 reads its five pickles with its restricted unpickler (which allows
the tensor rebuild and ``OrderedDict`` this dict needs), and ``torch.load(weights_only=True)``
(ComfyUI) reads it too. Legacy rather than a hand-made zip with only the allowed entries,
because torch writes and reads it itself (no zip layout of ours to keep in step with torch).
Importing this module does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["A1111_TENSOR_KEY", "a1111_embedding_names", "save_a1111_embedding"]

#: The tensor name of an A1111-style safetensors embedding.
A1111_TENSOR_KEY = "emb_params"
#: A1111's fixed placeholder entry in ``string_to_token`` (the token id of ``*`` in CLIP's vocabulary).
_STAR_TOKEN_ID = 265


def a1111_embedding_names(name: str) -> tuple[str, str]:
    """The two file names written for embedding ``name``: ``<name>.safetensors`` and ``<name>.pt``."""
    return f"{name}.safetensors", f"{name}.pt"


def save_a1111_embedding(folder: str | Path, name: str, vectors: Any, *, step: int | None = None,
                         checkpoint_name: str | None = None) -> list[Path]:
    """Write ``vectors`` (``(n, dim)`` or ``(dim,)``) as ``<name>.safetensors`` and ``<name>.pt`` in ``folder``.

    ``name`` is the word users type in A1111/ComfyUI prompts (``embedding:<name>`` in ComfyUI);
    ``step`` and ``checkpoint_name`` (the base model) are recorded where A1111 reads them.
    """
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    tensor = vectors.detach().float().cpu().reshape(-1, vectors.shape[-1]).contiguous().clone()
    st_name, pt_name = a1111_embedding_names(name)
    metadata = {"name": name, **({"step": str(step)} if step is not None else {}),
                **({"sd_checkpoint_name": checkpoint_name} if checkpoint_name else {})}
    save_file({A1111_TENSOR_KEY: tensor}, str(folder / st_name), metadata=metadata)
    torch.save({"string_to_token": {"*": _STAR_TOKEN_ID}, "string_to_param": {"*": tensor}, "name": name,
                "step": step, "sd_checkpoint": None, "sd_checkpoint_name": checkpoint_name}, folder / pt_name,
               _use_new_zipfile_serialization=False)  # A1111's allow-list refuses the zip format's extra entries
    return [folder / st_name, folder / pt_name]
