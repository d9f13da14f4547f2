"""The picture stages' building blocks: t-SNE sampling and maps, the ranking rule, and the PNGs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from iics import plots
from iics.evaluation import evaluate
from iics.ranking import choose_queries, rank_gallery
from iics.tsne import sample_for_tsne, tsne_2d


def test_sample_for_tsne_takes_every_image_of_the_chosen_identities():
    pids = np.repeat(np.arange(10), 4)
    rows = sample_for_tsne(pids, num_identities=3, max_images=5, seed=1)
    chosen = np.unique(pids[rows])
    assert len(chosen) == 3 and len(rows) == 12
    assert np.array_equal(rows, np.flatnonzero(np.isin(pids, chosen)))
    assert np.array_equal(rows, sample_for_tsne(pids, 3, 5, seed=1))


def test_sample_for_tsne_with_some_images_labelled_draws_labelled_identities_only():
    """A footage CSV with pids on some train rows: the sample fell back to random images and the
    picture still coloured (and counted) every labelled one among them."""
    pids = np.repeat(np.arange(10), 4)
    pids[[1, 5, 6, 30]] = -1
    rows = sample_for_tsne(pids, num_identities=3, max_images=5, seed=1)
    assert (pids[rows] >= 0).all() and len(np.unique(pids[rows])) == 3
    assert np.array_equal(rows, np.flatnonzero(np.isin(pids, np.unique(pids[rows]))))


def test_sample_for_tsne_without_identities_draws_images():
    pids = np.full(50, -1)
    rows = sample_for_tsne(pids, num_identities=3, max_images=20, seed=0)
    assert len(rows) == 20 and len(np.unique(rows)) == 20 and np.all(np.diff(rows) > 0)
    assert len(sample_for_tsne(pids[:7], 3, 20, seed=0)) == 7


def test_tsne_keeps_separate_groups_apart():
    rng = np.random.default_rng(0)
    directions = np.eye(16)[:3] * 5.0
    features = np.concatenate([d + 0.3 * rng.standard_normal((15, 16)) for d in directions])
    groups = np.repeat(np.arange(3), 15)
    xy = tsne_2d(features, seed=0)
    assert xy.shape == (45, 2)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert np.array_equal(groups[d.argmin(axis=1)], groups)
    with pytest.raises(ValueError, match="N >= 3"):
        tsne_2d(features[:2], seed=0)


def test_rank_gallery_hand_worked():
    # query 0: pid 1 cam 1. Gallery: 0 = pid 1 cam 1 (same view, left out), 1 = pid 2, 2 = pid 1 cam 2,
    # 3 = pid 0 distractor (tied with item 1, later in gallery order).
    distances = np.array([[0.0, 0.2, 0.3, 0.2]])
    ranking = rank_gallery(distances, [0], np.array([1]), np.array([1]), np.array([1, 2, 1, 0]),
                           np.array([1, 2, 2, 2]), top_k=10)
    assert ranking.gallery.tolist() == [[1, 3, 2]]
    assert ranking.correct.tolist() == [[False, False, True]]
    assert np.allclose(ranking.distances, [[0.2, 0.2, 0.3]])


def test_rank_gallery_agrees_with_the_evaluation_rank1():
    rng = np.random.default_rng(3)
    qp, qc = rng.integers(0, 8, 30), rng.integers(0, 3, 30)
    gp, gc = rng.integers(0, 8, 80), rng.integers(0, 3, 80)
    distances = rng.random((30, 80))
    scored = choose_queries(qp, qc, gp, gc, count=1000, seed=0)
    ranking = rank_gallery(distances, scored, qp, qc, gp, gc, top_k=1)
    rank1 = evaluate(distances, qp, gp, qc, gc, topk=(1,))["rank1"]
    assert ranking.correct[:, 0].mean() * 100 == pytest.approx(rank1)


def test_choose_queries_only_picks_queries_with_a_match_in_another_camera():
    qp, qc = np.array([1, 2, 3, 4]), np.array([1, 1, 1, 1])
    gp, gc = np.array([1, 2, 3, 9]), np.array([2, 1, 2, 2])  # pid 2 only in the query's camera, 4 absent
    assert choose_queries(qp, qc, gp, gc, count=10, seed=0).tolist() == [0, 2]
    assert len(choose_queries(qp, qc, gp, gc, count=1, seed=0)) == 1
    with pytest.raises(ValueError, match="no query"):
        choose_queries(qp[[1, 3]], qc[[1, 3]], gp, gc, count=2, seed=0)


def test_choose_queries_matches_the_plain_rule_on_random_data():
    rng = np.random.default_rng(5)
    qp, qc = rng.integers(0, 30, 200), rng.integers(0, 4, 200)
    gp, gc = rng.integers(0, 25, 500), rng.integers(0, 4, 500)  # some query pids absent from the gallery
    plain = [i for i, (p, c) in enumerate(zip(qp, qc)) if np.any((gp == p) & (gc != c))]
    assert choose_queries(qp, qc, gp, gc, count=10**6, seed=0).tolist() == plain


def _frame_colour(sheet: np.ndarray, row: int, column: int, cell_width: int, cell_height: int) -> tuple:
    x = plots.GAP + column * (cell_width + plots.GAP) + (2 * plots.GAP if column else 0)
    y = plots.GAP + row * (cell_height + plots.GAP) + plots.LABEL_HEIGHT
    return tuple(sheet[y + 1, x + 1])


def test_ranking_sheet_frames_correct_matches_green_and_wrong_ones_red(tmp_path):
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 256, (2, 32, 16, 3), dtype=np.uint8)
    matches = rng.integers(0, 256, (2, 3, 32, 16, 3), dtype=np.uint8)
    correct = np.array([[True, False, False], [False, False, True]])
    plots.save_ranking(queries, matches, correct, np.zeros((2, 3)), tmp_path / "ranking.png")
    sheet = np.asarray(Image.open(tmp_path / "ranking.png").convert("RGB"))
    cell_height = plots.CELL_HEIGHT + 2 * plots.FRAME + plots.LABEL_HEIGHT
    cell_width = plots.CELL_HEIGHT // 2 + 2 * plots.FRAME
    for q in range(2):
        assert _frame_colour(sheet, q, 0, cell_width, cell_height) == plots.QUERY_FRAME
        for r in range(3):
            expected = plots.CORRECT_FRAME if correct[q, r] else plots.WRONG_FRAME
            assert _frame_colour(sheet, q, r + 1, cell_width, cell_height) == expected
    with pytest.raises(ValueError, match="must agree"):
        plots.save_ranking(queries, matches, correct[:, :2], np.zeros((2, 2)), tmp_path / "bad.png")


def test_match_labels_keep_three_significant_digits():
    assert plots.match_label(1, 0.000123456) == "1: 0.000123"
    assert plots.match_label(10, 0.2345) == "10: 0.234"
    assert plots.match_label(2, 0.0) == "2: 0"
    assert plots.match_label(3, 1.5e-6) == "3: 1.5e-06"


def test_tsne_and_curves_pictures_are_written(tmp_path):
    xy = np.random.default_rng(0).random((12, 2))
    plots.save_tsne(xy, xy, np.repeat([3, 5, 7], 4), np.tile([1, 2], 6), ("before", "after"), tmp_path / "a.png")
    plots.save_tsne(xy, xy, np.full(12, -1), np.tile([1, 2], 6), ("before", "after"), tmp_path / "b.png")
    clusters = pd.DataFrame({"round": [0, 1], "intra_total": [50, 40], "inter": [30, 20]})
    quality = pd.DataFrame({"round": [0, 1], "nmi": [0.8, 0.9], "pairwise_precision": [0.5, 0.6]})
    scores = pd.DataFrame({"round": [-1, 1], "mAP": [3.0, 9.0], "rank1": [2.0, 8.0]})
    plots.save_curves(scores, clusters, quality, quality, tmp_path / "c.png")
    plots.save_curves(pd.DataFrame(), clusters[["round", "intra_total"]], pd.DataFrame(), pd.DataFrame(),
                      tmp_path / "d.png")
    plots.save_message("nothing to rank", tmp_path / "e.png")
    for name in "abcde":
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.format == "PNG" and image.width > 100
    assert not list(tmp_path.glob("*.tmp*"))


def test_rank_gallery_keeps_gallery_order_among_many_ties():
    """Quantised distances (few distinct values, long runs of ties) over a gallery large enough that
    an unstable sort reorders ties; the hand-worked case above has one tie among 4 items, which
    NumPy's default sort happens to keep in order too."""
    rng = np.random.default_rng(2)
    qp, qc = rng.integers(0, 5, 12), rng.integers(0, 3, 12)
    gp, gc = rng.integers(0, 5, 300), rng.integers(0, 3, 300)
    distances = rng.integers(0, 4, (12, 300)) / 4
    queries = np.arange(12)
    ranking = rank_gallery(distances, queries, qp, qc, gp, gc, top_k=50)
    for q in queries:
        kept = [j for j in sorted(range(300), key=lambda j: distances[q, j]) if not (gp[j] == qp[q] and gc[j] == qc[q])]
        assert ranking.gallery[q].tolist() == kept[:50]
    assert ranking.correct.tolist() == (gp[ranking.gallery] == qp[:, None]).tolist()


def test_choose_queries_draws_at_random():
    """`count` of the candidates drawn at random, not the first `count` of them."""
    qp, qc = np.arange(40) % 10, np.zeros(40, dtype=int)
    gp, gc = np.arange(10), np.ones(10, dtype=int)  # every query has a match in another camera
    draws = {tuple(choose_queries(qp, qc, gp, gc, count=5, seed=seed)) for seed in range(20)}
    assert len(draws) > 15
    assert set(np.concatenate([list(d) for d in draws]).tolist()) == set(range(40))
