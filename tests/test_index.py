"""index.csv: validation of what extract writes, the round trip, and the split helpers."""
import re

import numpy as np
import pytest

from iics.index import (
    INT64_MAX,
    IndexFileError,
    camera_positions,
    fits_int64,
    has_evaluation_split,
    has_train_identities,
    index_table,
    matched_queries,
    read_index,
    split_rows,
    unmatched_queries_problem,
    write_index,
)


@pytest.mark.parametrize("content, message", [
    ("image,pid,camid\na.jpg,1,1\n", "missing columns"),
    ("image,pid,camid,split\na.jpg,1,1,val\n", "unknown split"),
    ("image,pid,camid,split\na.jpg,one,1,train\n", "column pid must hold integers"),
    ("image,pid,camid,split\na.jpg,1,1,train\nb.jpg,2,1\n", "line 3"),
    (None, "index not found"),
])
def test_index_validation(tmp_path, content, message):
    path = tmp_path / "index.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(IndexFileError, match=f"^{re.escape(str(path))}: {message}") as caught:
        read_index(path)
    assert caught.value.path == path and caught.value.reason.startswith(message)


def test_camera_positions():
    cameras, positions = camera_positions(np.array([3, 1, 3, 6]))
    assert list(cameras) == [1, 3, 6] and list(positions) == [1, 0, 1, 2]


@pytest.mark.parametrize("query_pids", [(0, 6), (0, -1)])
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


def test_a_query_matches_only_a_gallery_image_of_its_pid_from_another_camera():
    rows = [("t.jpg", -1, 1, "train"),
            ("q1.jpg", 4, 1, "query"),   # pid 4 is in the gallery, but only in camera 1
            ("q2.jpg", 7, 2, "query"),   # pid 7 is in the gallery in cameras 2 and 3
            ("q3.jpg", 9, 1, "query"),   # pid 9 is not in the gallery
            ("g1.jpg", 4, 1, "gallery"), ("g2.jpg", 7, 2, "gallery"), ("g3.jpg", 7, 3, "gallery"),
            ("g4.jpg", 0, 2, "gallery")]
    frame = index_table(rows, sort_by_image=False)
    assert matched_queries(frame).tolist() == [False, True, False]
    assert has_evaluation_split(frame) and unmatched_queries_problem(frame) is None
    unmatched = frame[frame["image"] != "g3.jpg"]
    assert matched_queries(unmatched).tolist() == [False, False, False]
    assert not has_evaluation_split(unmatched)
    assert unmatched_queries_problem(unmatched) == (
        "0 of 3 query images have a gallery image of the same pid from another camera; "
        "evaluation needs at least one (gallery images from the query's own camera are ignored)")
    train_only = frame[frame["split"] == "train"]
    assert unmatched_queries_problem(train_only) is None and not has_evaluation_split(train_only)


def test_fits_int64_bounds_pid_and_camid_digits():
    assert fits_int64("0") and fits_int64("9223372036854775807") and fits_int64("00000000000000000000001")
    assert not fits_int64("9223372036854775808") and not fits_int64("99999999999999999999")
    assert INT64_MAX == np.iinfo(np.int64).max
    assert not fits_int64("7" * 5000)  # int() of it would fail on Python's 4,300-digit limit instead


def test_read_index_finds_columns_by_header_name_in_any_order(tmp_path):
    path = tmp_path / "index.csv"
    path.write_text("split,camid,image,pid\ntrain,3,a.jpg,7\nquery,1,b.jpg,-1\n")
    index = read_index(path)
    assert index["image"].tolist() == ["a.jpg", "b.jpg"] and index["split"].tolist() == ["train", "query"]
    assert index["pid"].tolist() == [7, -1] and index["camid"].tolist() == [3, 1]
