"""A diffusion training stopped by time_budget_s says how far it got and how long the rest would take."""

from __future__ import annotations

from synthaug.diffusion._train_result import budget_message


def test_budget_message_gives_progress_and_an_estimate():
    line = budget_message("ddpm", 20, 2420, 60.0)  # 3 s per step
    assert "step 20 of 2420 (0.8%)" in line
    assert "the other 2400 steps need about 2.0 h more" in line  # 2400 * 3 s = 7200 s
    assert "under-trained" in line and "time_budget_s" in line
    assert "about 60 s more" in budget_message("ddpm", 10, 20, 60.0)
    assert "need about" not in budget_message("ddpm", 0, 20, 0.0)  # no step done: no rate to estimate from


def test_device_auto_on_cpu_says_so_once(monkeypatch):
    import warnings

    import pytest

    torch = pytest.importorskip("torch")
    from synthaug.diffusion import _loading

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(_loading, "_CPU_FALLBACK_SAID", [])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _loading.resolve_device("auto").type == "cpu"
        assert _loading.resolve_device(None).type == "cpu"
        assert _loading.resolve_device("cpu").type == "cpu"  # asked for: nothing to say
    assert [str(w.message) for w in seen if "device=auto" in str(w.message)] == [
        "device=auto: torch sees no CUDA or MPS device, so this generator runs on the CPU "
        "(much slower; a CPU-only torch build also does this)"]


def test_a_base_model_that_cannot_load_says_what_to_do_in_synthaug_words(monkeypatch):
    import pytest

    diffusers = pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from synthaug._errors import GenerationError
    from synthaug.diffusion import _loading

    def refuse(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in "
                      "the cached files. Check your internet connection or see how to run the library in offline "
                      "mode. If you were trying to load it from 'https://huggingface.co/models', make sure you "
                      "don't have a local directory with the same name. Otherwise, pass `local_files_only=True` "
                      "and check the stacktrace above.")

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", classmethod(refuse))
    with pytest.raises(GenerationError) as info:
        _loading.load_pipeline("StableDiffusionPipeline", "org/model", device="cpu", dtype=None)
    text = str(info.value)
    assert "couldn't connect to 'https://huggingface.co'" in text
    assert "local_files_only" not in text and "stacktrace" not in text
    assert "-o base_model=/path/to/folder" in text and "huggingface-cli download org/model" in text
    assert "HF_HUB_OFFLINE=1" in text


def test_bitsandbytes_cpu_kernel_notice_is_dropped(caplog):
    import logging

    from synthaug.diffusion._loading import silence_cpu_kernel_notice

    silence_cpu_kernel_notice()
    silence_cpu_kernel_notice()  # idempotent
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger="bitsandbytes.backends.cpu.ops"):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure", "x")
        logger.warning("a real problem")
    assert [r.getMessage() for r in caplog.records] == ["a real problem"]
