"""Data-parallel training of one concept (``-o parallel=data``) over 2 CPU processes (gloo).

- the CLI run completes, writes the planned images, saves each adapter once (trained, 2 ranks);
- one data-parallel step equals one single-process step on the two ranks' batches concatenated;
- a run resumed from a checkpoint written by rank 0 ends with the uninterrupted run's weights.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from .test_augmenter import check_output
from .test_distributed import balance

pytest.importorskip("accelerate")
pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow

#: Options of every tiny run (the learning rate is high so that 2 steps move the weights visibly).
TINY = {"resolution": 32, "num_inference_steps": 2, "validation_images": 0, "learning_rate": 1e-3,
        "max_train_steps": 4, "checkpoint_every": 0, "rank": 2}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthaug._plugins import list_generators
    from synthaug.testing import tiny_sd15

    if "lora-sd15" not in list_generators():
        pytest.skip("the lora-sd15 plugin is not installed (pip install -e plugins/synthaug-lora-sd15)")
    return tiny_sd15(tmp_path_factory.mktemp("ddp") / "sd15")


def test_data_parallel_balance_trains_the_concept_on_both_ranks(tiny_folder: Path, tiny_model: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--generator", "lora-sd15", "-o", f"base_model={tiny_model}", "-o", "parallel=data",
            "-o", "max_train_steps=3", "-o", "checkpoint_every=2", "-o", "resolution=32",
            "-o", "num_inference_steps=2", "-o", "validation_images=0", "--target", "c=5"]
    done = balance(tiny_folder, out, *args, processes=2)
    assert done.returncode == 0, done.stderr
    check_output(out, {"c": 2})
    from safetensors.torch import load_file

    folder = tmp_path / "out.synthaug" / "fits" / "lora-sd15" / "c"
    artifact = json.loads((folder / "artifact.json").read_text())
    assert artifact["options"]["parallel"] == "data"
    assert artifact["training"]["processes"] == 2 and artifact["training"]["steps"] == 3
    assert not (folder / "checkpoints").exists()  # rank 0 removed them after saving
    weights = load_file(folder / "pytorch_lora_weights.safetensors")
    up = [w for k, w in weights.items() if "lora_B" in k]  # peft layout: lora_B is the up matrix
    assert up and any(bool(w.abs().max() > 0) for w in up)  # an untrained adapter has zero up-weights


def _teardown_worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank: join the gloo group, let a function capture it as a default (as
    ``torch.distributed.nn.functional`` does when imported after the group exists), close it."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch.distributed as dist

    from synthaug import _distributed

    ctx = _distributed.current_context()
    ctx.barrier()

    def captured(tensor, group=dist.group.WORLD):  # noqa: B008 - the pattern under test
        return group

    def gloo_threads() -> list[str]:
        names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
        return sorted(n for n in names if "gloo" in n)

    alive = gloo_threads()
    _distributed._close_process_group()
    Path(out, f"rank-{rank}.json").write_text(json.dumps({"before": alive, "after": gloo_threads(),
                                                           "default": captured.__defaults__[0] is None}))


def test_closing_the_group_stops_its_threads_even_when_a_default_captured_it(tmp_path: Path) -> None:
    """The teardown at exit leaves no gloo thread running into interpreter finalization."""
    import torch.multiprocessing as mp

    mp.spawn(_teardown_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = json.loads((tmp_path / f"rank-{rank}.json").read_text())
        assert result["before"], "the gloo group runs no named thread: the check cannot see a leak"
        assert result["after"] == [] and result["default"], result


def test_repeated_data_parallel_runs_exit_cleanly(tmp_path: Path, tiny_model: Path) -> None:
    """The 2-process run exits 0 every time, with no C++ abort at teardown (issue 21, item 12).

    A finished rank used to die now and then with SIGABRT ("terminate called without an active
    exception") while the interpreter shut down; see ``synthaug._distributed.close``.
    """
    from synthaug.testing import make_image_folder

    data = make_image_folder(tmp_path / "data", {"a": 4, "c": 2}, size=16)
    args = ["--generator", "lora-sd15", "-o", f"base_model={tiny_model}", "-o", "parallel=data",
            "-o", "max_train_steps=1", "-o", "resolution=32", "-o", "num_inference_steps=1",
            "-o", "validation_images=0", "--target", "c=3"]
    for run in range(3):
        out = tmp_path / f"out{run}"
        done = balance(data, out, *args, processes=2, env={"PYTHONFAULTHANDLER": "1"})
        assert done.returncode == 0, f"run {run}: {done.stderr[-3000:]}"
        assert "terminate called" not in done.stderr, f"run {run}: {done.stderr[-3000:]}"
        assert len(list((out / "c").glob("*.png"))) == 1


# -- gradient averaging and resume, at the Trainer level ---------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _trainer(generator, concept, folder: Path):
    from synthaug.diffusion._training import Trainer

    pipe = generator.pipeline
    return Trainer(generator, pipe, concept, prompt=generator.prompt_for(concept), folder=folder,
                   options=generator.options)


def _weights(trainer) -> dict:
    return {k: v.detach().clone() for k, v in trainer.params.items()}


def _rank_worker(rank: int, world: int, port: int, model: str, images: list[str], out: str) -> None:
    """One rank: 4 data-parallel steps (checkpoint after 2), then a new trainer resumed from step 2."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    from synthaug._distributed import current_context
    from synthaug._generator import Concept
    from synthaug_lora_sd15 import LoraSD15Generator

    ctx = current_context()
    assert ctx.world_size == world and ctx.rank == rank
    generator = LoraSD15Generator(base_model=model, parallel="data", **TINY)
    concept = Concept("c", "c", tuple(Path(p) for p in images))
    root = Path(out)
    results = {}

    trainer = _trainer(generator, concept, root / "run")
    trainer.prepare()
    results.update({f"init/{k}": v for k, v in _weights(trainer).items()})
    with trainer._training_mode():
        trainer.train_step(1)
        results.update({f"step1/{k}": v for k, v in _weights(trainer).items()})
        trainer.train_step(1)
        trainer.save_checkpoint(2, {"probe_loss_start": None})
        trainer.train_step(1)
        trainer.train_step(1)
    results.update({f"straight/{k}": v for k, v in _weights(trainer).items()})
    ctx.barrier()  # rank 0 has written the checkpoint
    generator.finish_training(generator.pipeline, concept)
    resumed = _trainer(generator, concept, root / "run")  # an "interrupted" run restarting at step 2
    result = resumed.run()
    assert result.resumed_from_step == 2 and result.steps == 4 and result.processes == world
    results.update({f"resumed/{k}": v for k, v in _weights(resumed).items()})
    save_file({k: v.contiguous() for k, v in results.items()}, str(root / f"rank-{rank}.safetensors"))
    import torch.distributed as dist

    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_results(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list]:
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    from synthaug.testing import make_image_folder

    root = tmp_path_factory.mktemp("ranks")
    images = sorted(str(p) for p in (make_image_folder(root / "data", {"c": 4}) / "c").iterdir())
    mp.spawn(_rank_worker, args=(2, _free_port(), str(tiny_model), images, str(root / "out")), nprocs=2, join=True)
    return root, [load_file(root / "out" / f"rank-{r}.safetensors") for r in range(2)], images


def _part(state: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + "/")}


def test_ranks_hold_identical_weights_after_every_step(two_rank_results) -> None:
    import torch

    _, (rank0, rank1), _ = two_rank_results
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    moved = [k for k in _part(rank0, "step1") if not torch.equal(rank0[f"step1/{k}"], rank0[f"init/{k}"])]
    assert moved, "one optimizer step changed no LoRA weight"


def test_a_data_parallel_step_is_a_step_on_the_concatenated_batch(two_rank_results, tiny_model: Path) -> None:
    import torch

    from synthaug._generator import Concept, derive_seed
    from synthaug_lora_sd15 import LoraSD15Generator

    torch.set_num_threads(1)
    root, (rank0, _), images = two_rank_results
    generator = LoraSD15Generator(base_model=str(tiny_model), **TINY)  # parallel=concepts, one process
    concept = Concept("c", "c", tuple(Path(p) for p in images))
    trainer = _trainer(generator, concept, root / "single")
    trainer.prepare()
    init = _weights(trainer)
    assert all(torch.equal(init[k], rank0[f"init/{k}"]) for k in init)
    draws = []
    for rank in (0, 1):  # each rank's own stream: seed, concept, rank
        trainer.rng = torch.Generator("cpu").manual_seed(derive_seed(generator.options.seed, "train", "c", rank))
        draws.append(trainer._draw(1))
    assert not torch.equal(draws[0][2], draws[1][2])  # the ranks drew different noise
    batch = tuple(None if a is None else torch.cat([a, b]) for a, b in zip(*draws))
    trainer._draw = lambda size: batch
    with trainer._training_mode():
        trainer.train_step(2)
    single = _weights(trainer)
    generator.finish_training(generator.pipeline, concept)
    for k, value in single.items():
        torch.testing.assert_close(rank0[f"step1/{k}"], value, rtol=1e-4, atol=1e-6)


def test_resuming_from_a_rank_zero_checkpoint_reproduces_the_uninterrupted_run(two_rank_results) -> None:
    import torch
    from safetensors.torch import load_file

    root, (rank0, _), _ = two_rank_results
    straight, resumed = _part(rank0, "straight"), _part(rank0, "resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    state = load_file(root / "out" / "run" / "checkpoints" / "step-000002" / "state.safetensors")
    assert not torch.equal(state["rng"], state["rng/1"])  # each rank's random stream is saved
