"""Overhead of synthaug's diffusion engine on the tiny SD1.5 model (CPU is fine).

Prints two ratios, each measured within this one run (rounds interleaved, medians taken):

1. generation: synthaug ``LoraSD15Generator.generate`` time / a direct diffusers pipeline
   call with the same seed, prompt, negative prompt and steps, on the same pipeline with the
   same LoRA loaded (target <= 1.05), image by image, best of ``--rounds`` per image. It also
   checks the images are pixel-identical.
2. training: LoRA optimizer steps per second with cached VAE latents / encoding every step
   (the trainer's own ``train_step``, median over interleaved steps).

Times are CPU seconds of this process, so other processes on a shared machine do not skew them.

    OMP_NUM_THREADS=1 python benchmarks/diffusion_overhead.py [--resolution 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=4, help="images per generation round")
    parser.add_argument("--inference-steps", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--train-batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="a diffusers SD1.x folder (default: tiny random)")
    args = parser.parse_args()

    import torch
    from real_size import Clock, generation_phase

    from synthaug.diffusion._training import Trainer
    from synthaug.testing import make_concepts, tiny_sd15
    from synthaug_lora_sd15 import LoraSD15Generator

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="synthaug-bench-"))
    model = args.model or tiny_sd15(tmp / "tiny-sd15")
    concepts = make_concepts(tmp / "data", n_concepts=1, n_images=8, size=args.resolution)
    base = {"base_model": str(model), "resolution": args.resolution, "num_inference_steps": args.inference_steps,
            "validation_images": 0, "checkpoint_every": 0, "max_train_steps": args.train_steps,
            "train_batch_size": args.train_batch_size}
    trainers: dict[bool, Trainer] = {}

    # Times are CPU seconds of this process (time.process_time, one torch thread): on a shared
    # machine they do not count the time other processes hold the core, unlike wall-clock time.
    clock = time.process_time

    # -- training: cached latents vs encoding every step (the trainer's own step) --------
    step_seconds: dict[bool, list[float]] = {True: [], False: []}
    for cached in (True, False):
        gen = LoraSD15Generator(base, cache_latents=cached)
        trainer = Trainer(gen, gen.pipeline, concepts[0], prompt=gen.prompt_for(concepts[0]),
                          folder=tmp / f"train-{cached}", options=gen.options)
        trainer.prepare()
        trainer.train_step(args.train_batch_size)  # warm-up
        trainers[cached] = trainer
    for r in range(args.rounds * args.train_steps):
        for cached in (True, False) if r % 2 == 0 else (False, True):
            start = clock()
            trainers[cached].train_step(args.train_batch_size)
            step_seconds[cached].append(clock() - start)
    cached_rate = 1 / statistics.median(step_seconds[True])
    uncached_rate = 1 / statistics.median(step_seconds[False])
    for trainer in trainers.values():
        trainer.hooks.finish_training(trainer.pipe, concepts[0])

    # -- generation: synthaug vs a direct diffusers call, image by image (real_size.py's phase) --
    gen = LoraSD15Generator(base, max_train_steps=2)
    gen.fit(concepts, tmp / "fit")
    generation = generation_phase(gen, concepts[0], args, Clock(torch.device("cpu")))
    total, identical, ratio = generation["seconds"], generation["identical_images"], generation["synthaug_vs_direct"]

    print(f"model: {model} resolution={args.resolution} rounds={args.rounds} torch threads={torch.get_num_threads()}")
    print(f"generation: synthaug {total['synthaug']:.3f} CPU s vs diffusers {total['diffusers']:.3f} CPU s for "
          f"{args.seeds} images x {args.inference_steps} steps (best of {args.rounds} per image); "
          f"identical images: {identical}")
    print(f"generation time ratio synthaug/diffusers: {ratio:.3f} (target <= 1.05)")
    print(f"training: {cached_rate:.2f} steps/CPU-s with cached latents vs {uncached_rate:.2f} encoding every step "
          f"(batch {args.train_batch_size}, {args.resolution}px, median of {args.rounds * args.train_steps} steps)")
    print(f"training speed ratio cached/uncached: {cached_rate / uncached_rate:.3f}")


if __name__ == "__main__":
    main()
