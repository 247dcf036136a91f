"""Overhead of synthaug's diffusion engine on the tiny SD1.5 model (CPU is fine).

Prints two ratios, each measured within this one run (rounds interleaved, medians taken):

1. generation: synthaug ``LoraSD15Generator.generate`` time / a direct diffusers pipeline
   call with the same seeds, prompt, negative prompt and steps, on the same pipeline with the
   same LoRA loaded (target <= 1.05). It also checks the images are pixel-identical.
2. training: LoRA steps per second with cached VAE latents / encoding every step.

    OMP_NUM_THREADS=1 python benchmarks/diffusion_overhead.py [--resolution 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=4, help="images per generation round")
    parser.add_argument("--inference-steps", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--train-batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="a diffusers SD1.x folder (default: tiny random)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from synthaug.diffusion.generation import cpu_generators
    from synthaug.testing import make_concepts, tiny_sd15
    from synthaug_lora_sd15 import LoraSD15Generator

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="synthaug-bench-"))
    model = args.model or tiny_sd15(tmp / "tiny-sd15")
    concepts = make_concepts(tmp / "data", n_concepts=1, n_images=8, size=args.resolution)
    base = {"base_model": str(model), "resolution": args.resolution, "num_inference_steps": args.inference_steps,
            "validation_images": 0, "checkpoint_every": 0, "max_train_steps": args.train_steps,
            "train_batch_size": args.train_batch_size}

    # -- training: cached latents vs encoding every step --------------------------------
    rates: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for cached in (True, False) if r % 2 == 0 else (False, True):
            gen = LoraSD15Generator(base, cache_latents=cached)
            gen.fit(concepts, tmp / f"train-{cached}-{r}")
            rates[cached].append(gen.artifact(concepts[0])["training"]["steps_per_second"])
            gen.close()
    cached_rate, uncached_rate = statistics.median(rates[True]), statistics.median(rates[False])

    # -- generation: synthaug vs a direct pipeline call ----------------------------------
    gen = LoraSD15Generator(base)
    gen.fit(concepts, tmp / "train-True-0")
    seeds = list(range(1000, 1000 + args.seeds))
    list(gen.generate(concepts[0], seeds[:1]))  # load the adapter, warm up
    pipe, o = gen.pipeline, gen.options
    prompt = gen.prompt_for(concepts[0])

    def direct() -> list:
        images = []
        with torch.inference_mode():
            for seed in seeds:  # the same batching as synthaug's default batch_size=1
                images += pipe(prompt=[prompt], negative_prompt=[o.negative_prompt], generator=cpu_generators([seed]),
                               num_inference_steps=o.num_inference_steps, guidance_scale=o.guidance_scale,
                               height=o.resolution, width=o.resolution).images
        return images

    def ours() -> list:
        return [g.image for g in gen.generate(concepts[0], seeds)]

    times: dict[str, list[float]] = {"synthaug": [], "diffusers": []}
    outputs = {}
    for r in range(args.rounds):
        order = (("diffusers", direct), ("synthaug", ours))
        for name, fn in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    identical = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(outputs["synthaug"], outputs["diffusers"]))
    ratio = statistics.median(times["synthaug"]) / statistics.median(times["diffusers"])

    print(f"model: {model} resolution={args.resolution} rounds={args.rounds} torch threads={torch.get_num_threads()}")
    print(f"generation: synthaug {statistics.median(times['synthaug']):.3f}s vs diffusers "
          f"{statistics.median(times['diffusers']):.3f}s for {len(seeds)} images x {args.inference_steps} steps; "
          f"identical images: {identical}")
    print(f"generation time ratio synthaug/diffusers: {ratio:.3f} (target <= 1.05)")
    print(f"training: {cached_rate:.2f} steps/s with cached latents vs {uncached_rate:.2f} steps/s encoding every step "
          f"(batch {args.train_batch_size}, {args.resolution}px)")
    print(f"training speed ratio cached/uncached: {cached_rate / uncached_rate:.3f}")


if __name__ == "__main__":
    main()
