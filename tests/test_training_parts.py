import copy

import numpy as np
import pytest
import torch
from torch import nn

from iics.augment import eval_transform, train_transform
from iics.losses import batch_hard_triplet
from iics.models import ClassifierHead
from iics.models.aibn import AIBN2d
from iics.models.batchnorm import BatchNorm2d
from iics.sampling import per_camera_batches, pk_batches, smallest_camera
from iics.settings import Augment, InterTraining, IntraTraining, Optimizer
from iics.training import TrainingDiverged, train_inter_camera, train_intra_camera

CPU = torch.device("cpu")


def test_batch_hard_triplet_matches_loop_reference():
    torch.manual_seed(0)
    features = torch.randn(12, 5)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 1, 0])
    expected = []
    for i in range(12):
        pos = [torch.dist(features[i], features[j]) for j in range(12) if labels[j] == labels[i]]
        neg = [torch.dist(features[i], features[j]) for j in range(12) if labels[j] != labels[i]]
        expected.append(torch.relu(max(pos) - min(neg) + 0.3))
    assert torch.allclose(batch_hard_triplet(features, labels, 0.3), torch.stack(expected).mean(), atol=1e-5)



def test_batch_hard_triplet_without_negatives_is_zero_with_finite_gradients():
    features = torch.randn(6, 4, requires_grad=True)
    loss = batch_hard_triplet(features, torch.zeros(6, dtype=torch.long), 0.3)  # one identity: no negative
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(features.grad).all()


def test_per_camera_batches_cover_smallest_camera_once():
    camids = np.array([0] * 20 + [1] * 9 + [2] * 17)
    batches = per_camera_batches(camids, 4, np.random.default_rng(0))
    assert len(batches) == 2  # 9 // 4
    for iteration in batches:
        assert [set(camids[idx]) for idx in iteration] == [{0}, {1}, {2}]
    seen = np.concatenate([it[1] for it in batches])
    assert len(set(seen)) == len(seen) == 8


def test_smallest_camera_is_the_one_with_fewest_images_lowest_id_on_a_tie():
    assert smallest_camera(np.array([5, 5, 2, 2, 2, 9])) == (9, 1)
    assert smallest_camera(np.array([7, 3, 7, 3, 4, 4])) == (3, 2)
    with pytest.raises(ValueError, match="no images"):
        smallest_camera(np.array([], dtype=np.int64))


def test_per_camera_batches_error_when_camera_too_small():
    with pytest.raises(ValueError, match="at least 8"):
        per_camera_batches(np.array([0] * 10 + [1] * 3), 8, np.random.default_rng(0))
    for size in (0, -2):  # a division by zero, and batches cut from the wrong end
        with pytest.raises(ValueError, match=rf"^batch_per_camera must be an integer >= 1, got {size}$"):
            per_camera_batches(np.array([0] * 10 + [1] * 3), size, np.random.default_rng(0))


def test_pk_batches_shape_and_replacement():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 1 + [3] * 5 + [4] * 4)
    # Groups of 4: one per identity (6 and 5 leave a remainder; 2 and 1 are drawn with replacement),
    # so 5 groups make 2 batches of 2 identities whatever the draw.
    batches = pk_batches(labels, 2, 4, np.random.default_rng(1))
    assert len(batches) == 2
    for batch in batches:
        assert len(batch) == 8
        ids = labels[batch]
        assert len(set(ids)) == 2 and all((ids == i).sum() == 4 for i in set(ids))
        for i in set(ids) & {0, 3, 4}:  # enough images: no image twice
            assert len(set(batch[ids == i])) == 4
    with pytest.raises(ValueError, match="pseudo-identities"):
        pk_batches(labels, 16, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^ids_per_batch must be an integer >= 1, got 0$"):
        pk_batches(labels, 0, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^images_per_id must be an integer >= 1, got 0$"):  # empty batches
        pk_batches(labels, 2, 0, np.random.default_rng(0))


def test_pk_epoch_covers_the_images_once():
    """The reference's epoch: every identity's images in groups of K, each group used once, until
    fewer than P identities have one left. At Market-1501's scale (800 pseudo-identities of 16
    images, 16 x 4 batches) that is about 200 batches, not one group per identity (50)."""
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(800), 16))
    batches = pk_batches(labels, 16, 4, np.random.default_rng(3))
    used = np.concatenate(batches)
    assert len(np.unique(used)) == len(used)  # no image twice in an epoch
    # When the epoch ends fewer than 16 identities have groups left, at most 4 each: at most
    # 15 * 4 of the 3,200 groups are unused, so at least ceil((3200 - 60) / 16) = 197 batches.
    assert 197 <= len(batches) <= 200
    for batch in batches:
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(ids) == 16 and (counts == 4).all()
    again = pk_batches(labels, 16, 4, np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


class TinyBackbone(nn.Module):
    """Conv, BatchNorm2d, AIBN2d, average pool: both kinds of running statistics, in microseconds."""

    feature_dim = 4

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = BatchNorm2d(4)  # the split kind, as every iics backbone builds
        self.aibn = AIBN2d(4)
        self.alpha = nn.Parameter(torch.full((1,), 0.1))

    def forward(self, x):
        return self.aibn(self.bn(self.conv(x)), self.alpha).mean(dim=(2, 3))


def _running_statistics(model):
    return torch.cat([model.bn.running_mean, model.bn.running_var, model.aibn.running_mean, model.aibn.running_var])


def test_intra_step_keeps_batch_statistics_per_camera():
    """One intra step (3 cameras, one batch each) leaves the running statistics of sequential
    per-camera forwards, not those of one forward whose statistics pool all cameras."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    camera = np.repeat(np.arange(3), 4)
    labels = np.tile([0, 0, 1, 1], 3)
    brightness = np.array([30, 120, 220])[camera]  # cameras far apart, so pooled statistics differ
    images = np.clip(brightness[:, None, None, None] + rng.integers(-25, 26, size=(12, 8, 4, 3)), 0, 255).astype(np.uint8)
    backbone = TinyBackbone()
    start = copy.deepcopy(backbone)
    heads = [ClassifierHead(4, 2) for _ in range(3)]
    train_intra_camera(
        backbone, heads, images, camera, labels, training=IntraTraining(epochs=1, batch_per_camera=4), optimizer=Optimizer(lr=0.1),
        augment=Augment(pad=0, flip_p=0.0, erasing_p=0.0), device=CPU, seed=7, progress=False,
    )
    # The same batches as the step drew (one iteration: each camera's 4 images, in its order).
    (batch,) = per_camera_batches(camera, 4, np.random.default_rng(7))
    pixels = torch.from_numpy(images)
    sequential, together = copy.deepcopy(start).train(), copy.deepcopy(start).train()
    with torch.no_grad():
        for idx in batch:
            sequential(eval_transform(pixels[idx]))
        together(eval_transform(pixels[np.concatenate(batch)]))
    assert int(backbone.bn.num_batches_tracked) == 3
    torch.testing.assert_close(_running_statistics(backbone), _running_statistics(sequential), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(_running_statistics(backbone), _running_statistics(together), rtol=1e-3, atol=1e-3)


def test_a_loss_that_is_not_finite_stops_training_after_its_epoch():
    """Diverged weights (here NaN from the start) make every loss NaN: both trainings stop after
    the first epoch with a TrainingDiverged that says so, instead of training on."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 8, 4, 3), dtype=np.uint8)
    camera, labels = np.repeat(np.arange(2), 8), np.tile([0, 0, 1, 1], 4)
    settings = dict(optimizer=Optimizer(lr=0.1), augment=Augment(pad=0), device=CPU, seed=0, progress=False)
    message = r"^the mean loss of epoch 1 is nan: training diverged; lower the learning rate$"
    for train in ("intra", "inter"):
        backbone = TinyBackbone()
        with torch.no_grad():
            backbone.conv.weight.fill_(float("nan"))
        with pytest.raises(TrainingDiverged, match=message):
            if train == "intra":
                train_intra_camera(backbone, [ClassifierHead(4, 2) for _ in range(2)], images, camera, labels,
                                   training=IntraTraining(epochs=3, batch_per_camera=4), **settings)
            else:
                train_inter_camera(backbone, ClassifierHead(4, 4), images, labels + 2 * camera,
                                   training=InterTraining(epochs=3, ids_per_batch=2, images_per_id=2, margin=0.3),
                                   **settings)


def test_labels_or_cameras_that_do_not_match_the_images_are_refused_before_training():
    """Labels left from another run (one image fewer) would otherwise train on shifted targets or
    fail deep inside an epoch."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 8, 4, 3), dtype=np.uint8)
    camera, labels = np.repeat(np.arange(2), 8), np.tile([0, 0, 1, 1], 4)
    settings = dict(optimizer=Optimizer(lr=0.1), augment=Augment(pad=0), device=CPU, seed=0, progress=False)
    intra = IntraTraining(epochs=1, batch_per_camera=4)
    heads = [ClassifierHead(4, 2) for _ in range(2)]
    with pytest.raises(ValueError, match=r"^labels: 15 entries for 16 images$"):
        train_intra_camera(TinyBackbone(), heads, images, camera, labels[:-1], training=intra, **settings)
    with pytest.raises(ValueError, match=r"^camera_index: 17 entries for 16 images$"):
        train_intra_camera(TinyBackbone(), heads, images, np.append(camera, 1), labels, training=intra, **settings)
    with pytest.raises(ValueError, match=r"^labels: 15 entries for 16 images$"):
        train_inter_camera(TinyBackbone(), ClassifierHead(4, 4), images, (labels + 2 * camera)[1:],
                           training=InterTraining(epochs=1, ids_per_batch=2, images_per_id=2, margin=0.3), **settings)


def test_optimizer_groups_scale_the_backbone_lr_and_leave_out_the_frozen_head_bias():
    backbone = TinyBackbone()
    heads = [ClassifierHead(4, 3), ClassifierHead(4, 5)]
    sgd = Optimizer(lr=0.01, backbone_lr_scale=0.1, momentum=0.8, weight_decay=1e-3).build(backbone, heads)
    backbone_group, head_group = sgd.param_groups
    assert backbone_group["lr"] == pytest.approx(0.001) and head_group["lr"] == pytest.approx(0.01)
    assert all(g["momentum"] == 0.8 and g["weight_decay"] == 1e-3 for g in sgd.param_groups)
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(backbone_group["params"]) == ids(backbone.parameters())
    assert ids(head_group["params"]) == ids(p for h in heads for p in (h.bn.weight, h.classifier.weight))
    grouped = ids(p for g in sgd.param_groups for p in g["params"])
    assert not grouped & ids(h.bn.bias for h in heads)  # frozen at 0: in no group, so weight decay never moves it


def _step_data(seed=0):
    """16 images of 2 cameras x 2 pseudo-identities x 4, far apart in brightness."""
    rng = np.random.default_rng(seed)
    camera, labels = np.repeat(np.arange(2), 8), np.tile(np.repeat([0, 1], 4), 2)
    brightness = np.array([40, 110, 160, 230])[2 * camera + labels]
    images = np.clip(brightness[:, None, None, None] + rng.integers(-25, 26, size=(16, 8, 4, 3)), 0, 255)
    return images.astype(np.uint8), camera, labels


def _loud_heads(*shapes):
    """Classifier heads with unit-scale weights: at their N(0, 0.001^2) start every logit is ~0 and
    the cross-entropy is log(classes) whatever the inputs and targets."""
    torch.manual_seed(5)
    heads = [ClassifierHead(4, k) for k in shapes]
    for head in heads:
        torch.nn.init.normal_(head.classifier.weight, std=1.0)
    return heads


def _assert_one_sgd_step(trained, start, loss, optimizer):
    """`trained` holds the weights one SGD step of `loss` (made from the modules of `start`) gives."""
    sgd = optimizer.build(start[0], start[1:])
    sgd.zero_grad()
    loss.backward()
    sgd.step()
    for got, expected in zip(trained, start):
        for (key, a), b in zip(got.named_parameters(), expected.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)


AUGMENT = Augment(pad=1, flip_p=0.5, erasing_p=0.5)


def test_intra_epoch_loss_is_the_sum_of_the_camera_cross_entropies_of_the_drawn_batch():
    """One iteration (each camera's 8 images): the epoch's loss is the sum over cameras of the
    cross-entropy of that camera's head on its own augmented images and pseudo-labels, and the
    weights are one SGD step of it."""
    images, camera, labels = _step_data()
    backbone, heads, optimizer = TinyBackbone(), _loud_heads(2, 2), Optimizer(lr=0.05, backbone_lr_scale=1.0)
    start = copy.deepcopy([backbone, *heads])
    (epoch,) = train_intra_camera(backbone, heads, images, camera, labels, training=IntraTraining(epochs=1, batch_per_camera=8),
                                  optimizer=optimizer, augment=AUGMENT, device=CPU, seed=3, progress=False)
    (batch,) = per_camera_batches(camera, 8, np.random.default_rng(3))
    x = train_transform(torch.from_numpy(images[np.concatenate(batch)]), torch.Generator().manual_seed(3),
                        AUGMENT.pad, AUGMENT.flip_p, AUGMENT.erasing_p)
    reference, reference_heads = start[0].train(), [h.train() for h in start[1:]]
    loss = sum(nn.functional.cross_entropy(head(reference(part)), torch.from_numpy(labels[idx]))
               for head, part, idx in zip(reference_heads, x.chunk(2), batch))
    assert epoch.steps == 1
    assert epoch.loss == pytest.approx(loss.item(), rel=1e-5)
    _assert_one_sgd_step([backbone, *heads], start, loss, optimizer)


def test_inter_epoch_loss_is_cross_entropy_plus_batch_hard_triplet_of_the_drawn_batch():
    """One PK batch (4 identities x 4): the epoch's loss is the cross-entropy of the head plus the
    batch-hard triplet loss with the configured margin, on the augmented batch, and the weights are
    one SGD step of it. The margin is large, so every anchor's triplet term is active."""
    images, camera, labels = _step_data()
    labels = labels + 2 * camera
    backbone, (head,), optimizer = TinyBackbone(), _loud_heads(4), Optimizer(lr=0.05, backbone_lr_scale=1.0)
    start = copy.deepcopy([backbone, head])
    training = InterTraining(epochs=1, ids_per_batch=4, images_per_id=4, margin=2.5)
    (epoch,) = train_inter_camera(backbone, head, images, labels, training=training, optimizer=optimizer,
                                  augment=AUGMENT, device=CPU, seed=3, progress=False)
    (batch,) = pk_batches(labels, 4, 4, np.random.default_rng(3))
    x = train_transform(torch.from_numpy(images[batch]), torch.Generator().manual_seed(3),
                        AUGMENT.pad, AUGMENT.flip_p, AUGMENT.erasing_p)
    features = start[0].train()(x)
    y = torch.from_numpy(labels[batch])
    cross_entropy = nn.functional.cross_entropy(start[1].train()(features), y)
    triplet = batch_hard_triplet(features, y, 2.5)
    assert triplet.item() > 0.5 and cross_entropy.item() > 0.1  # both terms weigh in the sum
    assert epoch.steps == 1
    assert epoch.loss == pytest.approx((cross_entropy + triplet).item(), rel=1e-5)
    _assert_one_sgd_step([backbone, head], start, cross_entropy + triplet, optimizer)


def test_per_camera_batches_draw_each_camera_s_images_at_random():
    """Each camera's images are shuffled before they are cut into batches: over seeds, every image
    of a camera turns up in the first iteration (unshuffled, only its first 4 would), and the draws
    of different cameras are independent."""
    camids = np.array([0] * 20 + [1] * 8)
    firsts = [per_camera_batches(camids, 4, np.random.default_rng(seed))[0] for seed in range(40)]
    assert set(np.concatenate([first[0] for first in firsts]).tolist()) == set(range(20))
    assert set(np.concatenate([first[1] for first in firsts]).tolist()) == set(range(20, 28))
    assert len({tuple(first[0]) for first in firsts}) > 30  # orders too, not only which images


def test_pk_batches_choose_identities_and_images_at_random():
    """A batch takes ``ids_per_batch`` identities chosen at random among those with a group left,
    each identity's images are shuffled before they are cut into groups, and an identity with fewer
    than ``images_per_id`` images is drawn with replacement (not repeated in turn)."""
    labels = np.repeat(np.arange(8), 8)
    labels[-6:] = 8  # identity 7 keeps 2 images (56, 57); identity 8 has 6
    first_ids, first_group_of_0, small_counts = set(), set(), set()
    for seed in range(40):
        batches = pk_batches(labels, 2, 4, np.random.default_rng(seed))
        first_ids |= set(labels[batches[0]].tolist())
        with_0 = next(batch for batch in batches if 0 in labels[batch])
        first_group_of_0 |= set(with_0[labels[with_0] == 0].tolist())
        small = next(batch for batch in batches if 7 in labels[batch])
        small_counts.add(int((small == 56).sum()))
    assert first_ids == set(range(9))  # in order, only identities 0 and 1 would start an epoch
    assert first_group_of_0 == set(range(8))  # unshuffled, identity 0's first group is always 0..3
    assert len(small_counts) > 2  # its 2 images drawn 4 times with replacement: not always twice each
