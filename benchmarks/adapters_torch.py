"""Throughput of ``AugmentedDataset.to_torch_loader`` vs a plain PIL folder-loading loop.

Both read every image of a class folder once per round, resize it to ``--size`` (bilinear) and
produce float32 CxHxW tensors in [0, 1] in batches; single process, one thread. Prints images/s
and the ratio adapter / plain loop (target >= 1.0), measured in the same run.

    OMP_NUM_THREADS=1 python benchmarks/adapters_torch.py [--data FOLDER] [--size 64]
"""

from __future__ import annotations

from adapters_common import best_rate, image_folder, parse_args


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    import numpy as np
    import torch
    from PIL import Image

    from synthaug import AugmentedDataset, Dataset

    torch.set_num_threads(1)
    root = image_folder(args.data)
    dataset = Dataset.from_folder(root)
    classes = dataset.classes
    files = [(s.path, classes.index(s.label)) for s in dataset]
    size = (args.size, args.size)

    def plain_loop() -> int:
        n = 0
        for start in range(0, len(files), args.batch_size):
            images, labels = [], []
            for path, label in files[start: start + args.batch_size]:
                image = Image.open(path).convert("RGB").resize(size, Image.Resampling.BILINEAR)
                images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255)
                labels.append(label)
            batch = torch.stack(images), torch.tensor(labels)
            n += len(batch[1])
        return n

    loader = AugmentedDataset(dataset).to_torch_loader(batch_size=args.batch_size, image_size=args.size,
                                                       shuffle=False)

    def adapter() -> int:
        return sum(len(labels) for _, labels in loader)

    rates = best_rate({"plain PIL loop": plain_loop, "synthaug to_torch_loader": adapter}, args.rounds)
    print(f"{len(files)} images from {root}, {args.size}x{args.size} px, batch {args.batch_size}")
    for name, rate in rates.items():
        print(f"  {name:26s} {rate:8.1f} images/s")
    print(f"ratio adapter / plain loop: {rates['synthaug to_torch_loader'] / rates['plain PIL loop']:.2f} (target >= 1.0)")


if __name__ == "__main__":
    main()
