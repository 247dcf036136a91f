"""synthaug's diffusion engine on the REAL-SIZE SD1.5 (random weights), each figure a ratio to a baseline run here.

The model: the SD1.5 UNet (859.5 M parameters), its VAE and the CLIP-L text encoder, built from
their published configs with random weights (``real_models.py``; nothing is downloaded) and
cached under ``benchmarks/results/models`` (gitignored). Figures, all measured in this process:

1. training: lora-sd15 steps/s (its own ``Trainer.train_step``) against a re-expression, step by
   step, of the loop of diffusers' ``examples/text_to_image/train_text_to_image_lora.py`` (VAE
   encode + latent sample, Gaussian noise, uniform timesteps, ``add_noise``, text encoder every
   step, UNet, MSE on epsilon, clipping at 1.0, AdamW lr 1e-4 wd 1e-2, LoRA r=8 alpha=8 gaussian on
   to_q/to_k/to_v/to_out.0): the same model, resolution, batch, rank and precision, both adapters
   on one UNet, switched with ``set_adapter``, steps interleaved. synthaug is timed with
   ``cache_latents`` on and off. Targets: >= 1.0 on CPU at 256 px; GPU at 512 px: >= 1.0 uncached,
   >= 1.3 cached.
2. caching: cached / uncached steps/s, and the VAE's share of an uncached step (VAE encode time /
   (VAE encode + cached step)) at 256 px (512 and 1024 px without ``--quick``).
3. generation: synthaug ``generate`` / a direct ``pipe(prompt, num_inference_steps, generator=...)``
   with the same seeds, steps and LoRA (target <= 1.05; images must be identical), and images/s
   of synthaug's ``generate_images`` at batch 1 and batch 4.
4. memory: CPU peak RSS of each phase (sampled every 20 ms); CUDA ``max_memory_allocated``.

CPU times are CPU seconds of this process (one torch thread), so other processes on a shared
machine do not count; CUDA times are synchronised wall-clock seconds.

    nice python benchmarks/real_size.py --device cpu --quick        # < 10 min on a 2-core CPU
    python benchmarks/real_size.py --device cuda --quick --json benchmarks/results/real-size-cuda.json
    python benchmarks/real_size.py --device cpu --tiny --quick      # tiny model: checks the script
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

GIB = 2**30
RANK = 8
TARGETS = {"cpu_vs_reference": 1.0, "gpu_uncached_vs_reference": 1.0, "gpu_cached_vs_reference": 1.3,
           "generation_overhead": 1.05}


# -- clocks and memory ------------------------------------------------------------------------
class Clock:
    """CPU seconds of this process (CPU), or synchronised wall-clock seconds (CUDA)."""

    def __init__(self, device: Any) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self) -> float:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    def time(self, fn: Callable[[], Any]) -> float:
        start = self()
        fn()
        return self() - start


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@contextmanager
def peak_memory(device: Any, into: dict[str, float], key: str) -> Iterator[None]:
    """Store the phase's peak in GiB: sampled RSS (CPU) or ``max_memory_allocated`` (CUDA)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield
        into[key] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        return
    peak, stop = [_rss_bytes()], threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        into[key] = round(max(peak[0], _rss_bytes()) / GIB, 2)


# -- the reference loop -----------------------------------------------------------------------
class ReferenceLoop:
    """The training step of diffusers' train_text_to_image_lora.py, re-expressed (not copied).

    Its own LoRA adapter ("reference") on the shared UNet, its own AdamW and constant schedule;
    every step encodes the images with the VAE and the prompt with the text encoder.
    """

    def __init__(self, pipe: Any, pixels: Any, prompt: str, *, autocast: Any, device: Any) -> None:
        import torch
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_scheduler

        from synthaug.diffusion._lora import add_lora, lora_config

        self.pipe, self.device, self.autocast = pipe, device, autocast
        self.weight_dtype = pipe.unet.dtype
        self.pixels = (pixels.float() / 127.5 - 1.0).to(device, self.weight_dtype)  # [-1, 1] like the script
        self.input_ids = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                        truncation=True, return_tensors="pt").input_ids.to(device)
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        add_lora(pipe.unet, lora_config(rank=RANK, alpha=RANK, target_modules=["to_k", "to_q", "to_v", "to_out.0"]),
                 adapter_name="reference", generator="benchmark")
        pipe.unet.set_adapter("reference")
        self.params = [p for n, p in pipe.unet.named_parameters() if ".reference." in n]
        for p in self.params:
            p.data = p.data.float()  # the script's cast_training_params(unet, dtype=torch.float32)
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        self.lr_scheduler = get_scheduler("constant", self.optimizer)
        fp16 = autocast == torch.float16 and device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)  # what accelerate does for fp16

    def step(self, batch: int) -> float:
        import torch
        import torch.nn.functional as F

        pipe = self.pipe
        pipe.unet.set_adapter("reference")
        index = torch.randint(len(self.pixels), (batch,))
        with torch.no_grad():
            latents = pipe.vae.encode(self.pixels[index]).latent_dist.sample()
            latents = latents * pipe.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (batch,), device=latents.device).long()
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        with torch.no_grad():
            hidden = pipe.text_encoder(self.input_ids.repeat(batch, 1))[0]
        with torch.autocast(self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            pred = pipe.unet(noisy, timesteps, hidden).sample
        loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_scheduler.step()
        self.optimizer.zero_grad()
        return float(loss.detach())


# -- phases -----------------------------------------------------------------------------------
def make_trainer(gen: Any, concept: Any, folder: Path, **overrides: Any) -> Any:
    from synthaug.diffusion._training import Trainer

    options = gen.options.model_copy(update=overrides)
    trainer = Trainer(gen, gen.pipeline, concept, prompt=gen.prompt_for(concept), folder=folder, options=options)
    trainer.prepare()
    return trainer


def training_phase(gen: Any, concept: Any, work: Path, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """synthaug cached / uncached vs the reference loop, interleaved; VAE time at this resolution."""
    from synthaug.diffusion._data import LatentSource

    pipe = gen.pipeline
    trainer = make_trainer(gen, concept, work / "train")
    cached = trainer.latents
    uncached = LatentSource(pipe.vae, cached.pixels, False, cached.device, cached.dtype)
    reference = ReferenceLoop(pipe, cached.pixels, trainer.prompt, autocast=trainer.autocast, device=trainer.device)

    def synthaug(latents: Any) -> Callable[[], Any]:
        def run() -> Any:
            pipe.unet.set_adapter("synthaug")
            trainer.source = latents  # the data source part (cached or encoding every step)
            return trainer.train_step(args.batch_size)
        return run

    variants = {"synthaug_cached": synthaug(cached), "synthaug_uncached": synthaug(uncached),
                "reference": lambda: reference.step(args.batch_size)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for name, fn in variants.items():
        fn()  # warm-up
    names = list(variants)
    for r in range(args.train_steps):
        for name in names[r % 3:] + names[: r % 3]:  # rotate who goes first
            seconds[name].append(clock.time(variants[name]))
    vae = vae_seconds(pipe, cached, args.batch_size, clock, repeats=max(2, args.train_steps))
    trainer.source = cached
    gen.finish_training(pipe, concept)  # removes both adapters
    median = {name: statistics.median(s) for name, s in seconds.items()}
    return {"seconds_per_step": {k: round(v, 3) for k, v in median.items()},
            "steps": args.train_steps, "vae_encode_seconds": round(vae, 3),
            "synthaug_uncached_vs_reference": round(median["reference"] / median["synthaug_uncached"], 3),
            "synthaug_cached_vs_reference": round(median["reference"] / median["synthaug_cached"], 3),
            "cached_vs_uncached": round(median["synthaug_uncached"] / median["synthaug_cached"], 3),
            "vae_share_of_uncached_step": round(vae / (vae + median["synthaug_cached"]), 3)}


def vae_seconds(pipe: Any, source: Any, batch: int, clock: Clock, repeats: int) -> float:
    """Median time of one VAE encode of ``batch`` training images (what an uncached step adds)."""
    import torch

    from synthaug.diffusion._data import LatentSource

    encoder = LatentSource(pipe.vae, source.pixels, False, source.device, source.dtype)
    indices = torch.arange(batch) % len(encoder)
    noise = torch.randn((batch, *encoder.latent_shape))
    encoder.sample(indices, noise)  # warm-up
    return statistics.median(clock.time(lambda: encoder.sample(indices, noise)) for _ in range(repeats))


def vae_share_sweep(gen: Any, concept: Any, work: Path, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """At each extra resolution: a cached synthaug step and one VAE encode; the VAE's share."""
    out = {}
    for resolution in args.sweep:
        trainer = make_trainer(gen, concept, work / f"sweep-{resolution}", resolution=resolution)
        trainer.train_step(args.batch_size)
        step = statistics.median(clock.time(lambda: trainer.train_step(args.batch_size)) for _ in range(2))
        vae = vae_seconds(gen.pipeline, trainer.latents, args.batch_size, clock, repeats=2)
        gen.finish_training(gen.pipeline, concept)
        out[str(resolution)] = {"cached_step_seconds": round(step, 3), "vae_encode_seconds": round(vae, 3),
                                "vae_share_of_uncached_step": round(vae / (vae + step), 3)}
    return out


def generation_phase(gen: Any, concept: Any, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """synthaug generate vs a direct pipeline call (same seed, steps, LoRA); images/s at batch 1 and 4."""
    import numpy as np
    import torch

    from synthaug.diffusion._generation import cpu_generators, generate_images

    seeds = list(range(1000, 1000 + args.seeds))
    next(iter(gen.generate(concept, seeds[:1])))  # loads the LoRA; warm-up
    pipe, o, prompt = gen.pipeline, gen.options, gen.prompt_for(concept)

    def direct(seed: int) -> Any:
        with torch.inference_mode():
            return pipe(prompt=[prompt], negative_prompt=[o.negative_prompt], generator=cpu_generators([seed]),
                        num_inference_steps=o.num_inference_steps, guidance_scale=o.guidance_scale,
                        height=o.resolution, width=o.resolution).images[0]

    def ours(seed: int) -> Any:
        return next(iter(gen.generate(concept, [seed]))).image

    best: dict[str, dict[int, float]] = {"synthaug": {}, "diffusers": {}}
    identical = True
    for r in range(args.rounds):
        for seed in seeds:
            images: dict[str, Any] = {}
            order = [("diffusers", direct), ("synthaug", ours)]
            for name, fn in order if (r + seed) % 2 == 0 else order[::-1]:
                start = clock()
                images[name] = fn(seed)
                elapsed = clock() - start
                best[name][seed] = min(elapsed, best[name].get(seed, elapsed))
            identical &= np.array_equal(np.asarray(images["synthaug"]), np.asarray(images["diffusers"]))
    total = {name: sum(t.values()) for name, t in best.items()}
    rates = {}
    for batch in (1, 4):
        batch_seeds = list(range(2000, 2000 + batch))
        seconds = clock.time(lambda: list(generate_images(pipe, batch_seeds, prompt=prompt,
                                                          negative_prompt=o.negative_prompt, batch_size=batch,
                                                          max_retries=0, call_kwargs=gen.generation_kwargs())))
        rates[f"batch_{batch}"] = round(batch / seconds, 4)
    return {"seconds": {k: round(v, 3) for k, v in total.items()}, "identical_images": bool(identical),
            "synthaug_vs_direct": round(total["synthaug"] / total["diffusers"], 3), "images_per_second": rates}


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="few steps, 256 px on CPU (512 px on CUDA), no sweep")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model instead of the real-size one")
    parser.add_argument("--cache", type=Path, default=None, help="folder of the built model (default: "
                                                                 "benchmarks/results/models)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    args.resolution = 32 if args.tiny else (512 if cuda else 256)
    args.batch_size = 1
    args.train_steps = 2 if args.quick and not cuda else (5 if args.quick else 10)
    args.inference_steps = 2 if args.quick and not cuda else 20
    args.seeds, args.rounds = (1, 2) if args.quick and not cuda else (3, 3)
    args.sweep = [] if args.quick or args.tiny else [r for r in (256, 512, 1024) if r != args.resolution]
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    import torch

    from synthaug.diffusion._loading import quiet_libraries
    from synthaug.testing import make_concepts
    from synthaug_lora_sd15 import LoraSD15Generator

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here")
    if args.device == "cpu":
        torch.set_num_threads(1)  # CPU seconds of one thread: comparable on a shared machine
    device = torch.device(args.device)
    clock = Clock(device)
    work = Path(tempfile.mkdtemp(prefix="synthaug-real-size-"))
    if args.tiny:
        from synthaug.testing import tiny_sd15
        model = tiny_sd15(work / "tiny-sd15")
    else:
        from real_models import DEFAULT_CACHE, sd15_folder
        model = sd15_folder(args.cache or DEFAULT_CACHE)
    concept = make_concepts(work / "data", n_concepts=1, n_images=4, size=args.resolution)[0]
    precision = {"dtype": "float16", "mixed_precision": "fp16"} if args.device == "cuda" else {"dtype": "float32"}
    gen = LoraSD15Generator(base_model=str(model), device=args.device, resolution=args.resolution, rank=RANK,
                            train_batch_size=args.batch_size, max_train_steps=1, num_inference_steps=args.inference_steps,
                            validation_images=0, checkpoint_every=0, optimizer="adamw", **precision)
    memory: dict[str, float] = {}
    result: dict[str, Any] = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                              "model": "tiny" if args.tiny else "sd15 real size (random weights)",
                              "resolution": args.resolution, "batch": args.batch_size, "rank": RANK,
                              "precision": precision, "torch_threads": torch.get_num_threads()}
    started, cpu_started = time.perf_counter(), time.process_time()
    with quiet_libraries():
        with peak_memory(device, memory, "load_gib"):
            gen.pipeline
        with peak_memory(device, memory, "training_gib"):
            result["training"] = training_phase(gen, concept, work, args, clock)
        result["vae_share_sweep"] = vae_share_sweep(gen, concept, work, args, clock)
        gen.fit([concept], work / "fit")
        with peak_memory(device, memory, "generation_gib"):
            result["generation"] = generation_phase(gen, concept, args, clock)
    result["peak_memory"] = memory
    result["memory_kind"] = "max_memory_allocated" if args.device == "cuda" else "peak RSS of the process"
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    return result


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    t, g = result["training"], result["generation"]
    cuda = args.device == "cuda"
    target = TARGETS["gpu_uncached_vs_reference"] if cuda else TARGETS["cpu_vs_reference"]
    print(f"model: {result['model']}, device {result['device']}, {result['resolution']} px, batch {result['batch']}, "
          f"rank {result['rank']}, {result['precision']}")
    print(f"training s/step (median of {t['steps']}): {t['seconds_per_step']}")
    print(f"training speed synthaug (encoding every step) / diffusers reference loop: "
          f"{t['synthaug_uncached_vs_reference']} (target >= {target})")
    cached_target = f" (target >= {TARGETS['gpu_cached_vs_reference']})" if cuda else ""
    print(f"training speed synthaug (cache_latents) / diffusers reference loop: {t['synthaug_cached_vs_reference']}"
          f"{cached_target}")
    print(f"caching: cached / uncached steps/s {t['cached_vs_uncached']}; VAE share of an uncached step at "
          f"{result['resolution']} px: {t['vae_share_of_uncached_step']}")
    for resolution, row in result["vae_share_sweep"].items():
        print(f"VAE share of an uncached step at {resolution} px: {row['vae_share_of_uncached_step']} ({row})")
    print(f"generation time synthaug / direct pipe(): {g['synthaug_vs_direct']} (target <= "
          f"{TARGETS['generation_overhead']}); identical images: {g['identical_images']}")
    print(f"images/s (synthaug generate_images, {args.inference_steps} steps): {g['images_per_second']}")
    print(f"peak memory ({result['memory_kind']}, GiB): {result['peak_memory']}")
    print(f"time after building/loading the model: {result['wall_seconds']} s wall, {result['cpu_seconds']} CPU s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    report(result, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
