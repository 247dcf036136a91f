"""Fixtures of the lora-flux tests: the tiny FLUX.1-dev model, small concepts, one fitted generator."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers")
    import torch

    from synthaug.testing import tiny_flux

    torch.set_num_threads(1)
    return tiny_flux(tmp_path_factory.mktemp("models") / "flux")


@pytest.fixture(scope="session")
def quick(tiny_model):
    """``quick(**extra)``: options for a fast CPU run on the tiny FLUX model (32 px, float32, few steps)."""

    def options(**extra) -> dict:
        return {"base_model": str(tiny_model), "resolution": 32, "dtype": "float32", "max_train_steps": 4,
                "learning_rate": 3e-2, "num_inference_steps": 3, "max_sequence_length": 16, "validation_images": 0,
                "checkpoint_every": 0, **extra}

    return options


@pytest.fixture(scope="session")
def concepts(tmp_path_factory):
    from synthaug.testing import make_concepts

    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=2, n_images=3, size=40)


@pytest.fixture(scope="session")
def fitted(quick, concepts, tmp_path_factory):
    """lora-flux fitted for 30 steps on the first concept."""
    from synthaug_lora_flux import LoraFluxGenerator

    gen = LoraFluxGenerator(quick(max_train_steps=30))
    gen.fit(concepts[:1], tmp_path_factory.mktemp("work"))
    yield gen
    gen.close()
