"""The global agreement loss's second view.

``shift`` (the tiny default, :func:`semmim.data.augment`): a shift of up to 2 px, a brightness scale, colour-channel
permutations and grayscale -- made for 32 px synthetic scenes whose objects fill one patch each, where a random
resized crop would cut the objects the caption names.

``dino`` (the paper default, :func:`dino_view`): DINO's second global view (Caron et al. 2021, facebookresearch/dino
``main_dino.py`` ``DataAugmentationDINO``): ``RandomResizedCrop(scale=(0.4, 1))`` back to the model's size, a
horizontal flip (p 0.5), ``ColorJitter(0.4, 0.4, 0.2, 0.1)`` (p 0.8), grayscale (p 0.2), Gaussian blur (p 0.1)
and solarisation (p 0.2). ALBEF's own pretraining transform is also a random resized crop and a flip
(``configs/Pretrain.yaml`` / ``dataset/__init__.py``: scale (0.2, 1)).

Multi-crop (``mim.local_crops > 0``, off by default): DINO's small local crops (``main_dino.py``
``local_crops_number`` 8, ``RandomResizedCrop(96, scale=(0.05, 0.4))``, flip, the same colour jitter and grayscale,
blur with p 0.5; :func:`local_views`) go through the online ViT only, at their own size
(:func:`semmim.model.encode_crops`); the momentum teacher sees the two global views, as in DINO.
"""

from __future__ import annotations

import torch

VIEWS = ("shift", "dino")


def dino_view(
    images: torch.Tensor,
    crop_scale: tuple[float, float] = (0.4, 1.0),
    jitter_p: float = 0.8,
    gray_p: float = 0.2,
    blur_p: float = 0.1,
    solarize_p: float = 0.2,
) -> torch.Tensor:
    """DINO's second global view of each image of ``images`` float ``(B, 3, H, W)`` in [0, 1], the same size out;
    each image draws its own crop, flip and colour changes (the global torch RNG)."""
    from torchvision.transforms import v2

    h, w = images.shape[-2:]
    transform = v2.Compose(
        [
            v2.RandomResizedCrop((h, w), scale=tuple(crop_scale), antialias=True),
            v2.RandomHorizontalFlip(0.5),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=jitter_p),
            v2.RandomGrayscale(gray_p),
            v2.RandomApply([v2.GaussianBlur(kernel_size=max(3, (h // 10) | 1), sigma=(0.1, 2.0))], p=blur_p),
            v2.RandomSolarize(0.5, p=solarize_p),
        ]
    )
    return torch.stack([transform(image) for image in images]).clamp(0, 1)


def local_views(
    images: torch.Tensor, number: int, size: int, crop_scale: tuple[float, float] = (0.05, 0.4)
) -> list[torch.Tensor]:
    """DINO's ``number`` local crops of each image of ``images`` float ``(B, 3, H, W)`` in [0, 1]: each a list entry
    ``(B, 3, size, size)``, every image its own ``RandomResizedCrop(size, crop_scale)``, flip, colour jitter (p 0.8),
    grayscale (p 0.2) and Gaussian blur (p 0.5) (``DataAugmentationDINO``'s ``local_transfo``; global torch RNG)."""
    from torchvision.transforms import v2

    transform = v2.Compose(
        [
            v2.RandomResizedCrop((size, size), scale=tuple(crop_scale), antialias=True),
            v2.RandomHorizontalFlip(0.5),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            v2.RandomGrayscale(0.2),
            v2.RandomApply([v2.GaussianBlur(kernel_size=max(3, (size // 10) | 1), sigma=(0.1, 2.0))], p=0.5),
        ]
    )
    return [torch.stack([transform(image) for image in images]).clamp(0, 1) for _ in range(number)]


def second_view(images: torch.Tensor, mim) -> torch.Tensor:
    """The second view ``mim.view`` (:class:`semmim.vlp.MIMConfig`) of ``images``."""
    from semmim.data import augment

    if mim.view == "dino":
        return dino_view(images, tuple(mim.view_crop_scale), mim.view_hue_p, mim.view_gray_p)
    return augment(images, hue_p=mim.view_hue_p, gray_p=mim.view_gray_p)
