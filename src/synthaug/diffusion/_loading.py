"""Choosing the device and dtype, and loading a base pipeline from a hub id or a folder."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._errors import GenerationError, InvalidOptionsError
from .._optional import require

__all__ = ["autocast_dtype", "load_pipeline", "load_vae", "loading_advice", "quiet_libraries", "resolve_device",
           "resolve_dtype", "short_reason", "silence_cpu_kernel_notice"]

def _not_kernel_notice(record: logging.LogRecord) -> bool:
    """False for bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" warning."""
    return "kernels-community" not in str(record.msg)


def silence_cpu_kernel_notice() -> None:
    """Drop bitsandbytes' warning that an optional CPU kernel from the Hub is missing: it is printed
    at import on CPUs with AVX512-BF16, asks for a package synthaug does not use, and changes nothing."""
    bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if _not_kernel_notice not in bnb.filters:
        bnb.addFilter(_not_kernel_notice)


silence_cpu_kernel_notice()

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def resolve_device(device: str | None) -> Any:
    """The ``torch.device`` a ``device`` option means: ``"auto"`` (or ``None``) is the best
    available one, cuda > mps > cpu; an explicit device that is not available is an error."""
    torch = require("torch", purpose="diffusion generators")
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        _note_cpu_fallback()
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise InvalidOptionsError(f"option device={device!r}: {exc} (use auto, cuda, cuda:N, mps or cpu)") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionsError(f"option device={device!r} but no CUDA GPU is available to torch; "
                                  "use device='cpu' or 'auto'")
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidOptionsError(f"option device={device!r} but MPS is not available; use 'cpu' or 'auto'")
    return chosen


_CPU_FALLBACK_SAID: list[bool] = []  # once per process


def _note_cpu_fallback() -> None:
    """Say once per process that ``device=auto`` found no GPU and runs on the CPU."""
    if _CPU_FALLBACK_SAID:
        return
    _CPU_FALLBACK_SAID.append(True)
    import warnings

    warnings.warn("device=auto: torch sees no CUDA or MPS device, so this generator runs on the CPU "
                  "(much slower; a CPU-only torch build also does this)", UserWarning, stacklevel=3)


def resolve_dtype(dtype: str, device: Any) -> Any:
    """The torch dtype of base weights: ``dtype``, or float16 on GPU / float32 on CPU for ``"auto"``."""
    import torch

    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    return getattr(torch, _DTYPES[dtype])


def autocast_dtype(mixed_precision: str, weight_dtype: Any, device: Any) -> Any | None:
    """The autocast dtype for training forward passes, or None for full precision."""
    import torch

    if mixed_precision == "no":
        return None
    if mixed_precision == "auto":
        return None if device.type == "cpu" or weight_dtype == torch.float32 else weight_dtype
    return torch.float16 if mixed_precision == "fp16" else torch.bfloat16


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence diffusers/transformers loading bars and chatty loggers for the duration."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = {name: logging.getLogger(name).level for name in ("diffusers", "transformers", "bitsandbytes", "peft")}
    bars = (dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled())
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if bars[0]:
            dlog.enable_progress_bar()
        if bars[1]:
            tlog.enable_progress_bar()


#: Phrases of diffusers/huggingface_hub errors that speak to a Python caller (keywords a CLI user
#: cannot pass, "the stacktrace above" that the CLI does not show): the reason is cut there.
_CALLER_ONLY = ("If you were trying", "Check your internet", "Otherwise", "local_files_only", "stacktrace",
                "trust_remote_code", "make sure", "Make sure", "`from_pretrained`", "cache_dir")


def short_reason(exc: BaseException) -> str:
    """The library's reason in one line, cut before advice meant for Python callers."""
    text = " ".join(str(exc).split())
    cut = min((i for i in (text.find(p) for p in _CALLER_ONLY) if i > 0), default=len(text))
    text = text[:cut].strip().rstrip(".,;:") or type(exc).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def loading_advice(option: str, value: str) -> str:
    """What to do when a model cannot be loaded, in terms of synthaug's options and the shell."""
    return (f"Either give a local folder (-o {option}=/path/to/folder, e.g. made with "
            f"`huggingface-cli download {value} --local-dir FOLDER`), or download it into the Hugging Face cache "
            f"while online (`huggingface-cli download {value}`) and then set HF_HUB_OFFLINE=1 to use the cache "
            "without network calls")


def _source(base_model: str) -> str:
    path = Path(base_model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise InvalidOptionsError(
                f"option base_model={base_model!r}: the folder has no model_index.json; give a folder written by "
                "a diffusers pipeline's save_pretrained() (or a hub id such as stable-diffusion-v1-5/stable-diffusion-v1-5)"
            )
        return str(path)
    if not _HUB_ID.match(base_model) or base_model.startswith((".", "~")):
        raise InvalidOptionsError(
            f"option base_model={base_model!r}: no such folder, and not a hub id like 'org/name'"
        )
    return base_model


def load_pipeline(
    pipeline_class: str,
    base_model: str,
    *,
    device: Any,
    dtype: Any,
    variant: str | None = None,
    scheduler: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Load ``diffusers.<pipeline_class>`` from a hub id or a local folder, on ``device`` in ``dtype``.

    ``extra`` goes to ``from_pretrained`` (e.g. ``safety_checker=None``). ``scheduler`` names a
    diffusers scheduler class to sample with. Progress bars of the pipeline are disabled.
    """
    require("transformers", purpose="diffusion generators")
    diffusers = require("diffusers", purpose="diffusion generators")
    source = _source(base_model)
    with quiet_libraries():
        cls = getattr(diffusers, pipeline_class)
    kwargs: dict[str, Any] = {"dtype": dtype, **dict(extra or {})}
    if variant:
        kwargs["variant"] = variant
    try:
        with quiet_libraries():
            pipe = cls.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise GenerationError(
            f"cannot load base_model={base_model!r} as a {pipeline_class}: {short_reason(exc)}. "
            + loading_advice("base_model", base_model)
        ) from exc
    if scheduler:
        scheduler_cls = getattr(diffusers, scheduler, None)
        if scheduler_cls is None or not hasattr(scheduler_cls, "from_config") or "Scheduler" not in scheduler:
            raise InvalidOptionsError(
                f"option scheduler={scheduler!r}: not a diffusers scheduler class (e.g. DPMSolverMultistepScheduler, "
                "EulerDiscreteScheduler, DDIMScheduler)"
            )
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_vae(vae: str, *, dtype: Any) -> Any:
    """An ``AutoencoderKL`` from a hub id (e.g. ``madebyollin/sdxl-vae-fp16-fix``) or a local folder.

    A folder may hold the VAE itself (``config.json``) or be a pipeline folder with a ``vae/``
    subfolder. Pass the result as ``vae=`` to :func:`load_pipeline`'s ``extra``.
    """
    diffusers = require("diffusers", purpose="option vae")
    path = Path(vae).expanduser()
    kwargs: dict[str, Any] = {"dtype": dtype}
    if path.exists():
        if (path / "vae" / "config.json").is_file():
            kwargs["subfolder"] = "vae"
        elif not (path / "config.json").is_file():
            raise InvalidOptionsError(
                f"option vae={vae!r}: the folder has no config.json (nor vae/config.json); give a folder written by "
                "AutoencoderKL.save_pretrained() or a hub id such as madebyollin/sdxl-vae-fp16-fix"
            )
        source = str(path)
    elif _HUB_ID.match(vae) and not vae.startswith((".", "~")):
        source = vae
    else:
        raise InvalidOptionsError(f"option vae={vae!r}: no such folder, and not a hub id like 'org/name'")
    try:
        with quiet_libraries():
            return diffusers.AutoencoderKL.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise GenerationError(
            f"cannot load vae={vae!r} as an AutoencoderKL: {short_reason(exc)}. " + loading_advice("vae", vae)
        ) from exc
