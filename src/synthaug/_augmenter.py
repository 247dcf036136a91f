"""The augmenter: plan -> concepts -> fit -> generate, into a crash-safe store.

``SyntheticAugmenter(...).fit_resample(data)`` reads the data (:mod:`synthaug._inputs`),
plans the synthetic counts (the ``policy``), turns the classes to fill into concepts (the
``concepts`` strategy, :mod:`synthaug._concepts`), checks and claims the output folder
(:mod:`synthaug._outdir`), fits the generator and generates what the store lacks
(:mod:`synthaug._store`). The layers are drawn in docs/architecture.md. It returns an :class:`~synthaug._augmented.AugmentedDataset`;
:func:`upsample` is the one-liner.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._artifacts import file_digest
from ._augmented import AugmentedDataset, synthetic_samples
from ._concepts import ConceptStrategy, training_contexts, validate_concepts
from ._dataset import Dataset, Sample
from ._errors import InvalidParameterError
from ._generation import fit_generator, generate_missing
from ._generator import Concept, Generator, GeneratorOptions
from ._inputs import RunInputs, check_no_leakage, fingerprinted, folder_signature, read_inputs, signature_holds
from ._outdir import RunState, claim_output, input_roots, open_run_folder, storage_error
from ._parameters import resolve_generator, unsplit_notice, validate_seed, validate_workers
from ._policy import MinorityUpsampling, Plan, Policy, make_policy
from ._progress import NULL_PROGRESS, Progress
from ._store import Store, check_layout
from ._subgroups import SubgroupAssignment

__all__ = ["SyntheticAugmenter", "upsample", "check_no_leakage"]  # check_no_leakage: from ._inputs

PLAN_FORMAT = 1


class SyntheticAugmenter:
    """Balance a dataset with synthetic images from a generator.

    Parameters
    ----------
    generator:
        A registered generator name (``"classic"``, ``"lora-sd15"``, …), class or instance.
    policy:
        A :class:`~synthaug._policy.Policy` (default ``MinorityUpsampling("auto")``).
    generator_options:
        Options for the generator (validated by its ``Options`` model).
    out_dir:
        Output folder (``OUT/<class>/<id>.png``, ``manifest.jsonl``, ``plan.json``).
    random_state:
        Run seed; each image's seed derives from (run seed, class, concept, index).
    work_dir:
        Where fitted artifacts go; default ``OUT.synthaug/fits/<generator>``.
    overwrite:
        Replace an existing run with a different plan in ``out_dir`` (its images are deleted),
        or a run whose ``plan.json`` is damaged.
    verify:
        On a rerun, decode every listed image too (a full check); without it a rerun checks
        each listed file's size and SHA-256 against the manifest. Mismatches are regenerated.
    strict:
        Unreadable input images are an error instead of a warning.
    progress:
        A :class:`~synthaug._progress.Progress` to report to.
    concepts:
        How the classes to fill become concepts (:mod:`synthaug._concepts`): ``ByClass()``
        (default: one concept per class) or ``Subgroups.auto(...)`` / ``Subgroups.k(K)`` /
        ``Subgroups.from_csv(FILE, COLUMN)``: each sub-group becomes a concept
        ``"<class>~<group>"`` with its own fitted artifact and a share of the class's quota
        proportional to its size.
    workers:
        Worker processes for a CPU generator with ``parallel_generation`` (``classic``);
        default: the usable CPU cores, at most 8. The output is the same for any value
        (see :mod:`synthaug._generation_pool`).
    metadata:
        CSV of per-image attributes a diffusion ``prompt_template`` may name (:mod:`synthaug._metadata`).
    """

    def __init__(
        self,
        generator: str | Generator | type[Generator] = "classic",
        policy: Policy | str | None = None,
        *,
        generator_options: GeneratorOptions | Mapping[str, Any] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        random_state: int = 0,
        work_dir: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        verify: bool = False,
        strict: bool = False,
        progress: Progress | None = None,
        concepts: ConceptStrategy | None = None,
        workers: int | None = None,
        metadata: str | os.PathLike[str] | None = None,
    ) -> None:
        self.generator_spec = generator
        self.metadata = Path(metadata) if metadata is not None else None
        self.generator_options = generator_options
        self.policy = make_policy(policy) if policy is not None else MinorityUpsampling("auto")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.random_state = validate_seed(random_state)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.overwrite = bool(overwrite)
        self.verify = bool(verify)
        self.strict = bool(strict)
        self.progress = progress or NULL_PROGRESS
        self._generator: Generator | None = None
        #: Processes for a ``parallel_generation`` generator (default: the usable cores, capped).
        self.workers = validate_workers(workers)
        #: How classes become concepts (see ``concepts``).
        self.concept_strategy = validate_concepts(concepts)
        #: What the last :meth:`fit_resample` found in the output folder (e.g. images that no
        #: longer matched the manifest and were generated again), as sentences.
        self.run_notices_: list[str] = []
        self._loaded: tuple[object, tuple[Dataset, dict[str, Dataset]]] | None = None
        self._roots: tuple[object, set[str]] | None = None  # (the _loaded entry they belong to, roots)
        self._signature: Any = None  # the folders _loaded was read from, as they were (a Signature)

    @property
    def subgroups_(self) -> SubgroupAssignment | None:
        """The sub-groups found by the last :meth:`concepts` call (``None`` without sub-groups)."""
        return getattr(self.concept_strategy, "found_", None)

    # -- inputs ----------------------------------------------------------------------
    @property
    def generator(self) -> Generator:
        """The generator instance (created, and its options validated, on first use)."""
        if self._generator is None:
            self._generator = resolve_generator(self.generator_spec, self.generator_options)
        return self._generator

    def _splits(self, data: str | os.PathLike[str] | Dataset,
                held_out: Mapping[str, Sequence[Sample]] | None = None) -> tuple[Dataset, dict[str, Dataset]]:
        """The training and held-out datasets, read again when a folder they came from changed."""
        source = data if isinstance(data, Dataset) else os.fspath(data) if isinstance(data, (str, os.PathLike)) else id(data)
        key = (source, id(held_out))
        if self._loaded is None or self._loaded[0] != key or not signature_holds(self._signature):
            read = read_inputs(data, strict=self.strict, held_out=held_out)
            self._signature = folder_signature(data, [read[0], *read[1].values()])
            self._loaded = (key, read)
        return self._loaded[1]

    # -- planning ----------------------------------------------------------------------
    def plan(self, data: str | os.PathLike[str] | Dataset) -> Plan:
        """The plan for ``data``'s training images; loads no model."""
        train, _ = self._splits(data)
        return self.policy.plan(train.counts())

    def notices(self, data: str | os.PathLike[str] | Dataset) -> list[str]:
        """What a user should read about ``data`` and its plan (skipped files, empty
        classes, ties), as data: independent of Python's warning filter."""
        train, held_out = self._splits(data)
        seen: dict[str, None] = {}
        for ds in (train, *held_out.values()):
            seen.update(dict.fromkeys(ds.notices))
        seen.update(dict.fromkeys(self.plan(data).notices))
        if not held_out and getattr(self.generator, "learns_from_images", True):
            seen[unsplit_notice(self.generator.name)] = None
        return list(seen)

    def concepts(self, train: Dataset, plan: Plan) -> tuple[list[Concept], dict[str, int]]:
        """Concepts to serve and their quotas, from :attr:`concept_strategy`.

        One concept per class that needs images, or one per sub-group of such a class, the
        class's quota shared in proportion to group sizes (sums exactly). Concepts with a
        quota of 0 are left out.
        """
        needed = {label: cp.synthetic for label, cp in plan.classes.items() if cp.synthetic > 0}
        by_class = train.paths_by_class()
        concepts, quotas = self.concept_strategy.concepts(by_class, needed, generator=self.generator,
                                                          seed=self.random_state, progress=self.progress)
        return training_contexts(concepts, by_class, train.root, self.metadata), quotas

    def _run_description(self, plan: Plan, concepts: Sequence[Concept], quotas: Mapping[str, int],
                         images: Mapping[str, str]) -> dict[str, Any]:
        """The run recorded in ``plan.json``, each concept's training set by content included."""
        g, strategy = self.generator, self.concept_strategy
        extra = {"subgroups": strategy.describe()} if strategy.active else {}
        if self.metadata is not None:  # other metadata: another run (prompts and captions change)
            extra["metadata_sha256"] = file_digest(self.metadata)
        return {
            "generator": {"name": g.name, "options": g.options.model_dump(mode="json")},
            "policy": dict(plan.policy),
            "seed": self.random_state,
            "classes": {k: v.to_dict() for k, v in plan.classes.items()},
            "concepts": {c.name: {"label": c.label, "synthetic": quotas[c.name], "n_train_images": len(c.images),
                                  "training_images": images[c.name], "training_set": c.fingerprint}
                         for c in concepts},
            **extra,
        }

    # -- output folder -------------------------------------------------------------------
    def _check_out_dir(self, data: object, inputs: RunInputs) -> tuple[Store, RunState]:
        """Raise if the output folder cannot take this run; return its store and state
        (see :func:`~synthaug._outdir.open_run_folder`)."""
        if self.out_dir is None:
            raise InvalidParameterError("out_dir", None, "a folder to write synthetic images to")
        return open_run_folder(self.out_dir, inputs.run, inputs=self._input_roots(data, inputs), overwrite=self.overwrite)

    def _input_roots(self, data: object, inputs: RunInputs) -> set[str]:
        """:func:`~synthaug._outdir.input_roots` of this run's inputs (the datasets :meth:`_splits`
        last read), found once per read."""
        if self._roots is None or self._roots[0] is not self._loaded:
            self._roots = (self._loaded, input_roots(data, [inputs.train, *inputs.held_out.values()]))
        return self._roots[1]

    def prepare(self, data: str | os.PathLike[str] | Dataset, *,
                held_out: Mapping[str, Sequence[Sample]] | None = None) -> Plan:
        """Validate the data, the generator options and the output folder; return the plan.

        Writes nothing and loads no model: the CLI calls it before showing the plan.
        """
        inputs = self._run_inputs(data, held_out)
        self._check_out_dir(data, inputs)
        return inputs.plan

    def _run_inputs(self, data: str | os.PathLike[str] | Dataset,
                    held_out: Mapping[str, Sequence[Sample]] | None = None) -> RunInputs:
        """Data -> plan -> concepts: training and held-out data, the plan, the concepts with
        their quotas, and the run description."""
        train, held = self._splits(data, held_out)
        plan = self.policy.plan(train.counts())
        concepts, quotas = self.concepts(train, plan)
        check_layout(train.classes, [c.name for c in concepts])
        concepts, images = fingerprinted(concepts, train.root, self.generator)
        return RunInputs(train, held, plan, concepts, quotas, self._run_description(plan, concepts, quotas, images))

    # -- the flow ------------------------------------------------------------------------
    def fit_resample(self, data: str | os.PathLike[str] | Dataset, *,
                     held_out: Mapping[str, Sequence[Sample]] | None = None) -> AugmentedDataset:
        """Plan, fit, generate what is missing, and return real + synthetic samples.

        ``held_out`` gives real-only validation/test samples in memory (``{"val": ...,
        "test": ...}``) beside training-only ``data``; they are leakage-checked as a split
        root's are, never reach the generator, and come back as the result's val/test.

        Re-running with the same arguments generates nothing new; an interrupted run resumes.
        """
        from ._distributed import current_context

        ctx = current_context()
        self.run_notices_ = []
        inputs = self._run_inputs(data, held_out)
        with contextlib.ExitStack() as claim:
            # every rank checks before any rank writes, so all see the same folder and error;
            # the main process holds the one-writer lock for the whole run
            ctx.phase("checking the output folder", lambda: self._check_out_dir(data, inputs))
            ctx.phase("claiming the output folder",
                      lambda: claim.enter_context(claim_output(self.out_dir)) if ctx.is_main else None)
            try:
                return self._write_run(data, ctx, inputs)
            except OSError as exc:
                raise storage_error(exc, self.out_dir) from exc

    def _write_run(self, data: Any, ctx: Any, inputs: RunInputs) -> AugmentedDataset:
        """The writing part of :meth:`fit_resample`, run while the output folder is claimed:
        prepare the folder, fit, generate what is missing, merge."""
        from ._version import __version__

        train, held_out, plan, concepts, quotas, run = (inputs.train, inputs.held_out, inputs.plan, inputs.concepts,
                                                        inputs.quotas, inputs.run)
        store, state = ctx.phase("checking the claimed output folder", lambda: self._check_out_dir(data, inputs))

        def prepare_output() -> None:  # main process only
            if state == "stale":
                store.clear()
            if state != "same":
                store.write_plan({"format": PLAN_FORMAT, "synthaug_version": __version__, **plan.to_dict(), "run": run})
            for label in train.classes:  # every class has a folder, so folder readers number classes alike
                (store.root / label).mkdir(parents=True, exist_ok=True)
            if self.concept_strategy.active:
                self.concept_strategy.write_files(store.sidecar / "subgroups")
            store.recover()
            bad = store.verify(full=self.verify)
            if bad:
                shown = ", ".join(f"{r['file']} ({r['problem']})" for r in bad[:10])
                self.run_notices_.append(f"verify: {len(bad)} listed image(s) do not match the manifest and are "
                                         f"generated again: {shown}")

        ctx.phase("preparing the output folder", prepare_output if ctx.is_main else lambda: None)
        todo = store.missing_indices(quotas)
        pending = [c for c in concepts if todo[c.name]]
        if pending:
            to_fit = self._fit_set(train, concepts, pending)
            mine = self._concepts_to_fit(to_fit, ctx)
            ctx.phase("fitting", lambda: self._fit(mine, store) if mine else None)
            if ctx.distributed and mine != to_fit:
                self._fit(to_fit, store)  # every artifact exists now: this only loads/reuses them
            writer = Store(store.root, part=ctx.rank) if ctx.distributed else store
            ctx.phase("generating", lambda: self._generate(pending, todo, writer, ctx))
            ctx.phase("merging manifests", store.merge_parts if ctx.is_main else lambda: None)
        records = store.records()
        return AugmentedDataset(
            self._real_used(train, plan),
            synthetic_samples(store.root, records),
            classes=train.classes,
            val=held_out.get("val"),
            test=held_out.get("test"),
            plan=plan.to_dict(),
        )

    def _fit_set(self, train: Dataset, concepts: list[Concept], pending: list[Concept]) -> list[Concept]:
        """The concepts handed to ``fit``: the pending ones; or, for a generator that
        ``fits_all_classes`` (one joint model), every concept of the run plus one concept per
        class that needs no images, the same set on every run so the model is reused."""
        if not self.generator.fits_all_classes:
            return pending
        covered = {c.label for c in concepts}
        rest = [Concept(label, label, tuple(paths)) for label, paths in sorted(train.paths_by_class().items())
                if label not in covered and paths]
        return [*concepts, *fingerprinted(rest, train.root, self.generator)[0]]

    def _concepts_to_fit(self, pending: list[Concept], ctx: Any) -> list[Concept]:
        """The concepts this process fits: a round-robin share when each concept is fitted
        independently, all of them on every process when the processes train each concept
        together (``fit_scope == "data"``), all of them on the main process otherwise."""
        from ._distributed import shard

        if not ctx.distributed or self.generator.fit_scope == "data":
            return pending
        if self.generator.fit_scope == "concept":
            return shard(pending, ctx.rank, ctx.world_size)
        return pending if ctx.is_main else []

    def _real_used(self, train: Dataset, plan: Plan) -> Dataset:
        """The real samples kept: all of them, or a seeded subset in ``replace`` mode."""
        if all(c.real_used == c.real for c in plan.classes.values()):
            return train
        rng = random.Random(self.random_state)
        keep: set[Path] = set()
        for label, paths in train.paths_by_class().items():
            chosen = sorted(paths)
            rng.shuffle(chosen)
            keep.update(chosen[: plan.classes[label].real_used])
        return Dataset([s for s in train if s.path in keep], root=train.root)

    def work_dir_for(self, store: Store) -> Path:
        return self.work_dir or store.sidecar / "fits" / self.generator.name

    def _fit(self, concepts: list[Concept], store: Store) -> None:
        work_dir = self.work_dir_for(store)
        work_dir.mkdir(parents=True, exist_ok=True)
        fit_generator(self.generator, concepts, work_dir, store, progress=self.progress)

    def _generate(self, concepts: list[Concept], todo: Mapping[str, list[int]], store: Store, ctx: Any = None) -> None:
        """Generate this process's share of the missing images (all of them in one process)."""
        generate_missing(self.generator, concepts, todo, store, run_seed=self.random_state, workers=self.workers,
                         work_dir=self.work_dir_for(store), progress=self.progress, ctx=ctx)


def upsample(
    data: str | os.PathLike[str] | Dataset,
    out_dir: str | os.PathLike[str],
    *,
    generator: str | Generator | type[Generator] = "classic",
    strategy: Any = "auto",
    generator_options: GeneratorOptions | Mapping[str, Any] | None = None,
    random_state: int = 0,
    **kwargs: Any,
) -> AugmentedDataset:
    """Fill the rare classes of ``data`` up to the majority count, in one line.

    >>> import synthaug
    >>> balanced = synthaug.upsample("data/", "synthetic/")  # doctest: +SKIP
    """
    return SyntheticAugmenter(
        generator,
        MinorityUpsampling(strategy),
        generator_options=generator_options,
        out_dir=out_dir,
        random_state=random_state,
        **kwargs,
    ).fit_resample(data)
