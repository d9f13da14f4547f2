import numpy as np
import pytest
import torch

from iics.checkpoint import load_backbone, load_heads, save_backbone
from iics.index import (
    camera_positions,
    has_evaluation_split,
    has_train_identities,
    index_table,
    read_index,
    split_rows,
    write_index,
)
from iics.models import ClassifierHead, build_backbone
from iics.pseudo_labels import inter_camera_labels, intra_camera_labels
from iics.settings import ClusterCut, Reranking


def blobs(num_ids=6, per_id=5, dim=16, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=g)
    features = centres.repeat_interleave(per_id, 0) + noise * torch.randn(num_ids * per_id, dim, generator=g)
    return features, np.repeat(np.arange(num_ids), per_id)


def same_partition(a, b):
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


@pytest.mark.parametrize("cut", [ClusterCut("count", 6), ClusterCut("threshold", 0.2), ClusterCut("quantile", 0.1)])
def test_intra_camera_labels_recover_separated_identities_per_camera(cut):
    features, ids = blobs()
    cameras = np.tile([0, 1], len(ids) // 2)
    labels = intra_camera_labels(features, cameras, cut, Reranking(k1=4, k2=2))
    for cam in (0, 1):
        members = cameras == cam
        if cut.method != "quantile":
            assert same_partition(labels[members], ids[members])
        assert labels[members].min() == 0  # labels are local to each camera


def test_count_cut_caps_small_cameras_at_half():
    features, _ = blobs(num_ids=3, per_id=4)
    labels = intra_camera_labels(features, np.zeros(12, dtype=int), ClusterCut("count", 600), Reranking(k1=4, k2=2))
    assert labels.max() + 1 == 6


def test_inter_camera_labels_join_cameras_with_classifier_agreement():
    features, ids = blobs(num_ids=4, per_id=4)
    cameras = np.tile([0, 1], 8)
    probs = torch.nn.functional.one_hot(torch.as_tensor(ids), 4).float()
    labels = inter_camera_labels(features, probs, cameras, 0.02, ClusterCut("count", 4), Reranking(k1=3, k2=2))
    assert same_partition(labels, ids)


@pytest.mark.parametrize("method,value", [("nearest", 1), ("count", 0), ("count", 2.5), ("quantile", 1.5), ("threshold", -1)])
def test_bad_cuts_are_rejected(method, value):
    with pytest.raises(ValueError):
        ClusterCut(method, value)


def test_checkpoint_round_trip_with_heads(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("resnet18")
    heads = [ClassifierHead(model.feature_dim, 3), ClassifierHead(model.feature_dim, 5)]
    save_backbone(model, "resnet18", tmp_path / "m.pt", heads=heads)
    loaded, name = load_backbone(tmp_path / "m.pt", "resnet18")
    assert name == "resnet18"
    x = torch.randn(2, 3, 32, 16)
    model.eval(), loaded.eval()
    assert torch.allclose(model(x), loaded(x))
    assert [h.classifier.out_features for h in load_heads(tmp_path / "m.pt", model.feature_dim)] == [3, 5]
    with pytest.raises(ValueError, match="resnet50"):
        load_backbone(tmp_path / "m.pt", "resnet50")
    save_backbone(model, "resnet18", tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="no classifier heads"):
        load_heads(tmp_path / "plain.pt", model.feature_dim)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone(tmp_path / "missing.pt")


@pytest.mark.parametrize("content, message", [
    ("image,pid,camid\na.jpg,1,1\n", "missing columns"),
    ("image,pid,camid,split\na.jpg,1,1,val\n", "unknown split"),
    ("image,pid,camid,split\na.jpg,one,1,train\n", "column pid must hold integers"),
    ("image,pid,camid,split\na.jpg,1,1,train\nb.jpg,2,1\n", "line 3"),
])
def test_index_validation(tmp_path, content, message):
    path = tmp_path / "index.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_index(path)


def test_camera_positions():
    cameras, positions = camera_positions(np.array([3, 1, 3, 6]))
    assert list(cameras) == [1, 3, 6] and list(positions) == [1, 0, 1, 2]


@pytest.mark.parametrize("query_pids", [(5, 6), (5, -1)])
def test_read_index_round_trip_and_helpers_on_both_forms(tmp_path, query_pids):
    rows = [("c/b, x.jpg", 2, 1, "gallery"), ("a.jpg", 1, 3, "train"), ("q.jpg", query_pids[0], 1, "query"),
            ("t.jpg", -1, 2, "train"), ("q2.jpg", query_pids[1], 2, "query"), ("g.jpg", 0, 3, "gallery")]
    frame = index_table(rows, sort_by_image=False)
    write_index(frame, tmp_path / "index.csv")
    arrays = read_index(tmp_path / "index.csv")
    assert arrays["pid"].dtype == np.int64 and arrays["camid"].dtype == np.int64
    for column in ("image", "pid", "camid", "split"):
        assert arrays[column].tolist() == frame[column].tolist()
    assert arrays["image"].tolist()[0] == "a.jpg" and "c/b, x.jpg" in arrays["image"].tolist()  # quoted comma
    for split in ("train", "query", "gallery"):
        np.testing.assert_array_equal(split_rows(arrays, split), split_rows(frame, split))
    assert has_evaluation_split(arrays) == has_evaluation_split(frame) == (query_pids[1] >= 0)
    assert has_train_identities(arrays) is has_train_identities(frame) is False  # t.jpg has no identity
