import pytest
import torch

from iics.augment import (
    eval_transform,
    random_erasing,
    random_flip_pad_crop,
    train_transform,
)


# The reference's constants, written out (ALGORITHM.md "Input"): compared with the module's own
# constants, a wrong value there (the ImageNet mean as erasing fill, say) would pass.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ERASE_FILL = (0.4914, 0.4822, 0.4465)  # in the normalised space, as the reference fills


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_eval_transform_normalises_each_channel():
    images = torch.zeros(2, 4, 3, 3, dtype=torch.uint8)
    images[..., 0] = 255
    x = eval_transform(images)
    assert x.shape == (2, 3, 4, 3)
    assert torch.allclose(x[:, 0], torch.full((2, 4, 3), (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]))
    assert torch.allclose(x[:, 1], torch.full((2, 4, 3), -IMAGENET_MEAN[1] / IMAGENET_STD[1]))
    assert torch.allclose(x[:, 2], torch.full((2, 4, 3), -IMAGENET_MEAN[2] / IMAGENET_STD[2]))


@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("flip_p", [0.0, 0.5, 1.0])
def test_flip_pad_crop_matches_plain_per_image_reference(pad, flip_p):
    """The one-gather flip, pad and crop against doing the three in turn, image by image, with the
    same draws (the flips first, then the offsets when there is padding)."""
    x = torch.arange(30 * 3 * 5 * 4, dtype=torch.float32).view(30, 3, 5, 4)
    out = random_flip_pad_crop(x, generator(3), flip_p, pad)
    draws = generator(3)
    flips = torch.rand(30, generator=draws) < flip_p
    offsets = torch.randint(0, 2 * pad + 1, (2, 30), generator=draws) if pad else torch.zeros(2, 30, dtype=torch.long)
    if flip_p == 0.5:
        assert 0 < int(flips.sum()) < 30
    for i in range(30):
        image = x[i].flip(-1) if flips[i] else x[i]
        padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
        top, left = int(offsets[0, i]), int(offsets[1, i])
        assert torch.equal(out[i], padded[:, top:top + 5, left:left + 4])
    assert out.is_contiguous()


def test_negative_pad_is_refused():
    with pytest.raises(ValueError, match="pad must be >= 0"):
        random_flip_pad_crop(torch.zeros(2, 3, 4, 4), generator(), 0.5, -1)


def test_erasing_fills_one_rectangle_with_reference_constants():
    x = torch.zeros(64, 3, 32, 16)
    out = random_erasing(x, generator(1), p=1.0)
    erased = (out != 0).any(dim=1)
    assert erased.any(dim=(1, 2)).float().mean() > 0.9
    for mask in erased:
        if not mask.any():
            continue
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(mask.sum()) == int(area)  # a filled rectangle
        assert 0.02 * 32 * 16 * 0.5 <= int(area) <= 0.4 * 32 * 16 * 1.5
    first = erased.nonzero()[0]
    assert torch.allclose(out[first[0], :, first[1], first[2]], torch.tensor(ERASE_FILL))


def test_erasing_probability_zero_is_identity():
    x = torch.randn(8, 3, 16, 8)
    assert torch.equal(random_erasing(x, generator(), p=0.0), x)


def test_train_transform_is_seeded_and_shaped():
    images = torch.randint(0, 256, (6, 16, 8, 3), dtype=torch.uint8)
    a = train_transform(images, generator(5), pad=2)
    b = train_transform(images, generator(5), pad=2)
    assert a.shape == (6, 3, 16, 8) and a.dtype == torch.float32
    assert torch.equal(a, b)


def test_erasing_comes_after_normalisation():
    """The fill constants are values of the normalised image (as in the reference), so they appear
    as they are in the output; erased before normalising they would come out rescaled."""
    images = torch.randint(0, 256, (32, 16, 8, 3), dtype=torch.uint8)
    out = train_transform(images, generator(4), pad=0, flip_p=0.0, erasing_p=1.0)
    changed = (out != eval_transform(images)).any(dim=1)  # (N, H, W)
    assert changed.any(dim=(1, 2)).float().mean() > 0.9
    fill = torch.tensor(ERASE_FILL).view(3, 1)
    assert torch.equal(out.permute(1, 0, 2, 3)[:, changed], fill.expand(3, int(changed.sum())))


def _plain_erasing(x, draws, p, area=(0.02, 0.4), min_aspect=0.3, attempts=10):
    """Random erasing written out image by image, from the same draws in the same order: areas and
    aspects for every attempt, then whether to erase, then the rectangle's top and left."""
    n, _, h, w = x.shape
    areas = area[0] + (area[1] - area[0]) * torch.rand(n, attempts, generator=draws)
    aspects = min_aspect + (1 / min_aspect - min_aspect) * torch.rand(n, attempts, generator=draws)
    apply, tops, lefts = (torch.rand(n, generator=draws) for _ in range(3))
    out = x.clone()
    for i in range(n):
        for a in range(attempts):
            eh = int(torch.sqrt(areas[i, a] * (h * w) * aspects[i, a]).round())
            ew = int(torch.sqrt(areas[i, a] * (h * w) / aspects[i, a]).round())
            if 0 < eh < h and 0 < ew < w:
                break
        else:
            continue  # no attempt fits: the image is kept
        if apply[i] < p:
            top, left = int(tops[i] * (h - eh + 1)), int(lefts[i] * (w - ew + 1))
            out[i, :, top:top + eh, left:left + ew] = torch.tensor(ERASE_FILL).view(3, 1, 1)
    return out


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_erasing_matches_plain_per_image_reference(p):
    """Rectangle size (area fraction and aspect ratio), position and the retry rule against the
    reference's procedure written out; a rectangle of the wrong shape, always in the corner, or
    from the wrong attempt would pass the shape-only check above."""
    x = torch.randn(200, 3, 32, 16, generator=generator(8))
    out = random_erasing(x, generator(9), p=p)
    expected = _plain_erasing(x, generator(9), p)
    assert torch.equal(out, expected)
    erased = (expected != x).any(dim=1)
    assert 0.3 * p < erased.any(dim=(1, 2)).float().mean() <= p  # the case sees both kinds of image
    heights = erased.any(dim=2).sum(dim=1)[erased.any(dim=(1, 2))]
    widths = erased.any(dim=1).sum(dim=1)[erased.any(dim=(1, 2))]
    assert (heights > widths).any() and (heights < widths).any()  # tall and wide rectangles both


def test_train_transform_is_flip_pad_crop_then_normalise_then_erase():
    """The composition with one generator: the padding is black pixels (normalised to
    -mean / std), the erasing fill appears as it is; with pad 0 or erasing off a wrong order or a
    dropped setting would pass the tests above."""
    images = torch.randint(0, 256, (40, 16, 8, 3), dtype=torch.uint8, generator=generator(6))
    out = train_transform(images, generator(7), pad=3, flip_p=0.5, erasing_p=0.5)
    draws = generator(7)
    x = random_flip_pad_crop(images.permute(0, 3, 1, 2), draws, 0.5, 3)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (x.float() / 255 - mean) / std
    torch.testing.assert_close(out, _plain_erasing(x, draws, 0.5), rtol=0, atol=1e-6)
    black = (-mean / std).view(3)
    border = (out.permute(0, 2, 3, 1) == black).all(dim=-1)  # (N, H, W): padded pixels
    assert border.any(dim=(1, 2)).float().mean() > 0.5  # most images were shifted into the padding
