"""Throughput of ``AugmentedDataset.to_tf`` vs ``keras.utils.image_dataset_from_directory``.

Both read the same class folder once per round (no cache, no shuffle), decode with ``tf.io``,
resize to ``--size`` (bilinear), batch and prefetch. Prints images/s and the ratio
adapter / Keras (target >= 1.0), measured in the same run.

    OMP_NUM_THREADS=1 python benchmarks/adapters_tf.py [--data FOLDER] [--size 64]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from adapters_common import best_rate, image_folder, parse_args  # noqa: E402


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    import keras

    from synthaug import AugmentedDataset, Dataset

    root = image_folder(args.data)
    size = (args.size, args.size)
    reference = keras.utils.image_dataset_from_directory(root, image_size=size, batch_size=args.batch_size,
                                                         shuffle=False, verbose=False)
    ours = AugmentedDataset(Dataset.from_folder(root)).to_tf(size, args.batch_size, shuffle=False)

    def count(ds) -> int:
        return sum(int(labels.shape[0]) for _, labels in ds)

    rates = best_rate({"keras image_dataset_from_directory": lambda: count(reference),
                       "synthaug to_tf": lambda: count(ours)}, args.rounds)
    print(f"{count(ours)} images from {root}, {args.size}x{args.size} px, batch {args.batch_size}")
    for name, rate in rates.items():
        print(f"  {name:36s} {rate:8.1f} images/s")
    ratio = rates["synthaug to_tf"] / rates["keras image_dataset_from_directory"]
    print(f"ratio adapter / keras: {ratio:.2f} (target >= 1.0)")


if __name__ == "__main__":
    main()
