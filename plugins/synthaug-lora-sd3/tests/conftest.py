"""Fixtures of the lora-sd3 tests: the tiny SD3.5 model, quick options, small concepts, one fitted generator."""

from __future__ import annotations

from synthaug.testing import diffusion_plugin_fixtures, tiny_sd3

tiny_model, quick, concepts, fitted = diffusion_plugin_fixtures(
    "synthaug_lora_sd3:LoraSD3Generator", tiny_sd3, dtype="float32", max_sequence_length=16)
