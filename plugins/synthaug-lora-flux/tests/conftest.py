"""Fixtures of the lora-flux tests: the tiny FLUX.1-dev model, quick options, small concepts, one fitted generator."""

from __future__ import annotations

from synthaug.testing import diffusion_plugin_fixtures, tiny_flux

tiny_model, quick, concepts, fitted = diffusion_plugin_fixtures(
    "synthaug_lora_flux:LoraFluxGenerator", tiny_flux, dtype="float32", max_sequence_length=16)
