"""The classifier of the ``classifier-confidence`` filter (SaSPA, NeurIPS 2024).

A small classifier is trained on the real *training* images only (the evaluation harness's
``small-cnn``, or a user model ``package.module:function`` through its factory, built with
:func:`synthaug._evaluate.torch_backend.build_model`), then gives each synthetic image the
predicted probability of its own class. Training is short and seeded: classes are drawn
uniformly (a rare class is learned as well as a common one), images are small (``size`` px)
and flipped at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["own_class_probability"]


def _pixels(paths: Sequence[Path], size: int) -> Any:
    """``(n, 3, size, size)`` float32 tensor in [0, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    from .._imageio import load_image

    arrays = [np.asarray(load_image(Path(p)).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
              for p in paths]
    return torch.from_numpy(np.stack(arrays) / 255.0).permute(0, 3, 1, 2).contiguous()


def own_class_probability(train_paths: Sequence[Path], train_labels: Sequence[str], paths: Sequence[Path],
                          labels: Sequence[str], *, model: str = "small-cnn", size: int = 32, steps: int = 300,
                          batch_size: int = 32, seed: int = 0, device: str = "auto") -> Any:
    """Probability of its own class for each image of ``paths`` under a classifier of the real images.

    Images of a class the training set lacks get NaN.
    """
    import numpy as np
    import torch

    from .._evaluate.config import TrainConfig
    from .._evaluate.torch_backend import build_model
    from ..diffusion import resolve_device

    classes = sorted(set(train_labels))
    index = {c: i for i, c in enumerate(classes)}
    config = TrainConfig(model=model, image_size=size, batch_size=batch_size, steps=steps, epochs=None)
    torch.manual_seed(seed)
    dev = resolve_device(device)
    net = build_model(config, len(classes)).to(dev)
    offset = 0.0 if config.factory is not None else 1.0  # built-in models see [-1, 1], a factory's [0, 1]
    x = _pixels(train_paths, size)
    y = torch.tensor([index[label] for label in train_labels])
    by_class = [torch.nonzero(y == i).flatten() for i in range(len(classes))]
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    for _ in range(steps):
        picked_classes = torch.randint(len(classes), (max(2, batch_size),), generator=gen)
        rows = torch.stack([members[torch.randint(len(members), (1,), generator=gen)][0]
                            for members in (by_class[int(c)] for c in picked_classes)])
        images = x[rows]
        flip = torch.rand(len(rows), generator=gen) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
        logits = net((images * (1 + offset) - offset).to(dev))
        loss = loss_fn(logits, y[rows].to(dev))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()
    probs = []
    with torch.no_grad():
        query = _pixels(paths, size)
        for chunk in query.split(256):
            probs.append(torch.softmax(net((chunk * (1 + offset) - offset).to(dev)), 1).cpu().numpy())
    probs = np.concatenate(probs) if probs else np.zeros((0, len(classes)))
    return np.array([probs[i, index[label]] if label in index else np.nan for i, label in enumerate(labels)])
