"""Fixtures of the lora-sdxl tests: the tiny SDXL model, quick options, small concepts, and one
generator fitted with rank 8, alpha 4 and exported in both layouts."""

from __future__ import annotations

from synthaug.testing import diffusion_plugin_fixtures, tiny_sdxl

tiny_model, quick, concepts, fitted = diffusion_plugin_fixtures(
    "synthaug_lora_sdxl:LoraSDXLGenerator", tiny_sdxl, fitted_options={"export_format": "kohya", "alpha": 4.0})
