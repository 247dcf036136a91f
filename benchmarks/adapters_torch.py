"""Throughput of ``AugmentedDataset.to_torch_loader`` vs a plain PIL loop and a plain DataLoader.

All read every image of a class folder once per round, resize it to ``--size`` (bilinear) and
produce float32 CxHxW tensors in [0, 1] in batches, one thread per process. The contenders:

- a plain PIL loop in this process;
- ``torch.utils.data.DataLoader`` over a plain PIL ``Dataset`` with ``--num-workers`` workers;
- synthaug's ``to_torch_loader`` with the same ``--num-workers``.

Prints images/s (best of ``--rounds`` interleaved rounds) and the ratios adapter / plain loop
(target >= 1.2 at 224 px) and adapter / plain DataLoader (target >= 1.0), measured in one run.

    OMP_NUM_THREADS=1 python benchmarks/adapters_torch.py [--data FOLDER] [--size 224] [--num-workers 0]
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
                                                       shuffle=False, num_workers=args.num_workers)
    plain_loader = torch.utils.data.DataLoader(PlainDataset(files, size), batch_size=args.batch_size,
                                               num_workers=args.num_workers)

    def adapter() -> int:
        return sum(len(labels) for _, labels in loader)

    def plain_dataloader() -> int:
        return sum(len(labels) for _, labels in plain_loader)

    rates = best_rate({"plain PIL loop": plain_loop, "plain PIL DataLoader": plain_dataloader,
                       "synthaug to_torch_loader": adapter}, args.rounds)
    print(f"{len(files)} images from {root}, {args.size}x{args.size} px, batch {args.batch_size}, "
          f"num_workers {args.num_workers}")
    for name, rate in rates.items():
        print(f"  {name:26s} {rate:8.1f} images/s")
    ours = rates["synthaug to_torch_loader"]
    print(f"ratio adapter / plain loop: {ours / rates['plain PIL loop']:.2f} (target >= 1.2 at 224 px)")
    print(f"ratio adapter / plain DataLoader (same num_workers): {ours / rates['plain PIL DataLoader']:.2f} "
          "(target >= 1.0)")


class PlainDataset:
    """A plain PIL ``Dataset``: open, convert to RGB, resize, to a float tensor (what tutorials write)."""

    def __init__(self, files: list, size: tuple[int, int]) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        import numpy as np
        import torch
        from PIL import Image

        path, label = self.files[index]
        image = Image.open(path).convert("RGB").resize(self.size, Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255, label


if __name__ == "__main__":
    main()
