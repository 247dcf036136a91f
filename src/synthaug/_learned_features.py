"""Learned feature spaces from local files: DINOv2, CLIP and other transformers vision models,
and Inception-v3 from a weight file. Nothing is ever downloaded.

- ``dinov2:FOLDER``: a DINOv2 checkpoint folder (``config.json`` with ``model_type`` dinov2,
  e.g. a saved ``facebook/dinov2-base``); the feature is the normalised CLS token
  (``pooler_output``), as in FD_DINOv2 (Stein et al., NeurIPS 2023).
- ``clip:FOLDER``: a CLIP checkpoint folder (``model_type`` clip); the feature is the projected
  image embedding. :meth:`ClipFeatures.text_features` embeds prompts (for prompt similarity).
- ``hf:FOLDER``: any transformers vision model (ViT, …): ``pooler_output``, or the mean of the
  last hidden states when the model has no pooler.
- ``inception:FILE``: Inception-v3 from a weight file: a torch-fidelity / pytorch-fid FID
  Inception file through torch-fidelity, or a torchvision ``inception_v3`` state dict through
  torchvision (whichever package is installed and matches the file's keys).

Models are loaded with ``local_files_only=True`` (so ``HF_HUB_OFFLINE`` and a machine without
network behave the same). Images are preprocessed by the folder's image processor
(``preprocessor_config.json``) when it has one, otherwise resized to the model's
``image_size`` and normalised with the model family's mean and spread. The device is chosen
like the generators' (``auto``: cuda > mps > cpu, :func:`synthaug.diffusion.resolve_device`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import InvalidParameterError, MissingDependencyError

__all__ = ["ClipFeatures", "HFVisionFeatures", "InceptionFileFeatures", "checkpoint_folder"]

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def checkpoint_folder(name: str, argument: str | None, model_types: Sequence[str] | None) -> tuple[Path, dict]:
    """The checkpoint folder ``argument`` and its config; a clear error naming the path otherwise."""
    wanted = f"{name}:/path/to/a/local/checkpoint/folder (with config.json)"
    if not argument:
        raise InvalidParameterError("features", name, wanted, "nothing is downloaded: give the folder")
    folder = Path(argument).expanduser()
    if not folder.is_dir():
        raise InvalidParameterError("features", f"{name}:{argument}", wanted,
                                    f"checkpoint folder {str(folder)!r} does not exist or is not a folder")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InvalidParameterError("features", f"{name}:{argument}", wanted,
                                    f"{str(config_file)!r} is missing: not a transformers checkpoint folder")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidParameterError("features", f"{name}:{argument}", wanted,
                                    f"cannot read {str(config_file)!r}: {exc}") from exc
    found = config.get("model_type")
    if model_types is not None and found not in model_types:
        raise InvalidParameterError("features", f"{name}:{argument}", wanted,
                                    f"{str(folder)!r} holds a {found!r} model, not {' or '.join(model_types)}")
    return folder, config


def _config_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in ("config.json", "preprocessor_config.json"):
        if (folder / file).is_file():
            digest.update((folder / file).read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}:{weights.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _device(device: str) -> Any:
    from .diffusion import resolve_device

    return resolve_device(device)


class _TorchImageFeatures:
    """Shared batching: load images, preprocess, run :meth:`_embed`, return float64 rows."""

    batch_size = 32
    name = ""

    def __init__(self, folder: Path, config: dict, device: str) -> None:
        self.folder = folder
        self.identity = f"{self.name}:{_config_hash(folder)}"
        self._device_option = device
        self._size = int(config.get("image_size") or config.get("vision_config", {}).get("image_size") or 224)
        self._model: Any = None
        self._processor: Any = None

    def _load_processor(self) -> None:
        if (self.folder / "preprocessor_config.json").is_file():
            from transformers import AutoImageProcessor

            self._processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True)

    def _pixels(self, images: list[Any]) -> Any:
        import numpy as np
        import torch
        from PIL import Image

        if self._processor is not None:
            return self._processor(images=images, return_tensors="pt")["pixel_values"]
        mean, std = np.array(self._norm[0]), np.array(self._norm[1])
        arrays = [(np.asarray(im.resize((self._size, self._size), Image.Resampling.BICUBIC), dtype=np.float32) / 255
                   - mean) / std for im in images]
        return torch.from_numpy(np.stack(arrays).astype(np.float32)).permute(0, 3, 1, 2).contiguous()

    def extract(self, paths: Sequence[Path]) -> Any:
        import numpy as np
        import torch

        from ._imageio import load_image

        if self._model is None:
            self._load()
        rows = []
        for start in range(0, len(paths), self.batch_size):
            images = [load_image(Path(p)) for p in paths[start : start + self.batch_size]]
            pixels = self._pixels(images).to(self.device, dtype=next(self._model.parameters()).dtype)
            with torch.no_grad():
                rows.append(self._embed(pixels).float().cpu().numpy().astype(np.float64))
        return np.concatenate(rows) if rows else np.zeros((0, 0))


def _require_transformers(name: str) -> None:
    import importlib.util

    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
        raise MissingDependencyError(f"{name} features need torch and transformers (pip install transformers torch)")


class HFVisionFeatures(_TorchImageFeatures):
    """A transformers vision model from a local folder: pooled output (DINOv2: the CLS token)."""

    _norm = _IMAGENET

    def __init__(self, name: str, argument: str | None, device: str = "auto",
                 model_types: Sequence[str] | None = None) -> None:
        _require_transformers(name)
        self.name = name
        folder, config = checkpoint_folder(name, argument, model_types)
        super().__init__(folder, config, device)

    def _load(self) -> None:
        from transformers import AutoModel

        self.device = _device(self._device_option)
        self._model = AutoModel.from_pretrained(self.folder, local_files_only=True).eval().to(self.device)
        self._load_processor()

    def _embed(self, pixels: Any) -> Any:
        out = self._model(pixel_values=pixels)
        pooled = getattr(out, "pooler_output", None)
        return pooled if pooled is not None else out.last_hidden_state.mean(1)


class ClipFeatures(_TorchImageFeatures):
    """CLIP from a local folder: projected image embeddings, and :meth:`text_features` of prompts."""

    name = "clip"
    _norm = _CLIP

    def __init__(self, argument: str | None, device: str = "auto") -> None:
        _require_transformers("clip")
        folder, config = checkpoint_folder("clip", argument, ("clip",))
        super().__init__(folder, config, device)

    def _load(self) -> None:
        from transformers import CLIPModel

        self.device = _device(self._device_option)
        self._model = CLIPModel.from_pretrained(self.folder, local_files_only=True).eval().to(self.device)
        self._load_processor()

    def _embed(self, pixels: Any) -> Any:
        out = self._model.get_image_features(pixel_values=pixels)
        return out if hasattr(out, "float") else out.pooler_output

    def text_features(self, prompts: Sequence[str]) -> Any:
        """Projected text embeddings ``(len(prompts), d)`` of ``prompts`` (the folder's tokenizer)."""
        import numpy as np
        import torch
        from transformers import AutoTokenizer

        if self._model is None:
            self._load()
        tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        tokens = tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self._model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        out = out if hasattr(out, "float") else out.pooler_output
        return out.float().cpu().numpy().astype(np.float64)


class InceptionFileFeatures:
    """2048-d Inception-v3 pool features from a weight file (torch-fidelity or torchvision format)."""

    name = "inception"
    batch_size = 32

    def __init__(self, argument: str, device: str = "auto") -> None:
        self.path = Path(argument).expanduser()
        if not self.path.is_file():
            raise InvalidParameterError("features", f"inception:{argument}", "inception:/path/to/weights.pth",
                                        f"weight file {str(self.path)!r} does not exist")
        stat = self.path.stat()
        self.identity = f"inception-file:{self.path.name}:{stat.st_size}:{stat.st_mtime_ns}"
        self._device_option = device
        self._model: Any = None

    def _load(self) -> None:
        import importlib.util

        import torch

        state = torch.load(self.path, map_location="cpu", weights_only=True)
        torchvision_format = isinstance(state, dict) and "fc.weight" in state and "AuxLogits.fc.weight" in state
        self.device = _device(self._device_option)
        if not torchvision_format and importlib.util.find_spec("torch_fidelity") is not None:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

            self._model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                      feature_extractor_weights_path=str(self.path))
            self._uint8 = True
        elif torchvision_format and importlib.util.find_spec("torchvision") is not None:
            import torchvision

            model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
            model.load_state_dict(state)
            model.fc = torch.nn.Identity()
            self._model, self._uint8 = model, False
        else:
            need = "torchvision" if torchvision_format else "torch-fidelity"
            raise MissingDependencyError(f"Inception weights {str(self.path)!r} ({'torchvision' if torchvision_format else 'FID'}"
                                         f" format) need {need} (pip install {need})")
        self._model = self._model.eval().to(self.device)

    def extract(self, paths: Sequence[Path]) -> Any:
        import numpy as np
        import torch

        from ._imageio import load_image

        if self._model is None:
            self._load()
        rows = []
        for start in range(0, len(paths), self.batch_size):
            batch = np.stack([np.asarray(load_image(Path(p)).resize((299, 299)))
                              for p in paths[start : start + self.batch_size]])
            tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device)
            with torch.no_grad():
                if self._uint8:
                    out = self._model(tensor)[0]
                else:
                    x = (tensor.float() / 255 - torch.tensor(_IMAGENET[0], device=self.device)[:, None, None]) \
                        / torch.tensor(_IMAGENET[1], device=self.device)[:, None, None]
                    out = self._model(x)
            rows.append(out.double().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 2048))
