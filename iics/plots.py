"""The pictures: t-SNE maps, a ranking sheet and the per-round curves, written as PNG files.

Figures are drawn with matplotlib's object API (no pyplot, no display needed); the ranking sheet
is pasted together with Pillow so every match keeps its pixels and its frame colour is exact.
"""
from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw

CAMERA_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "8", "d", "H")
QUERY_FRAME = (40, 90, 220)
CORRECT_FRAME = (0, 170, 0)
WRONG_FRAME = (220, 0, 0)
FRAME = 4  # frame width in pixels
GAP = 6  # space between cells
LABEL_HEIGHT = 14  # text strip above each cell
CELL_HEIGHT = 128  # every image is scaled to this height: small caches stay recognisable, large ones small


def _write_atomically(path: str | os.PathLike, save) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    save(tmp)
    os.replace(tmp, path)


def _save_figure(fig: Figure, path: str | os.PathLike) -> None:
    _write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, metadata={"Software": None}))


def save_tsne(before: np.ndarray, after: np.ndarray, pids: np.ndarray, camids: np.ndarray,
              titles: tuple[str, str], path: str | os.PathLike) -> None:
    """Two t-SNE maps side by side: one colour per identity (grey when identities are unknown,
    pid < 0), one marker shape per camera."""
    pids, camids = np.asarray(pids), np.asarray(camids)
    cameras = np.unique(camids)
    identities = np.unique(pids[pids >= 0])
    fig = Figure(figsize=(12, 6), layout="constrained")
    palette = _identity_palette(len(identities))
    colour_of = {pid: palette[i] for i, pid in enumerate(identities)}
    for ax, xy, title in zip(fig.subplots(1, 2), (before, after), titles):
        for c, camera in enumerate(cameras):
            rows = camids == camera
            colours = [colour_of.get(pid, (0.5, 0.5, 0.5)) for pid in pids[rows]]
            ax.scatter(xy[rows, 0], xy[rows, 1], c=colours, marker=CAMERA_MARKERS[c % len(CAMERA_MARKERS)],
                       s=28, linewidths=0.3, edgecolors="black")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], linestyle="", marker=CAMERA_MARKERS[c % len(CAMERA_MARKERS)], color="grey",
                      markeredgecolor="black", label=f"camera {camera}") for c, camera in enumerate(cameras)]
    who = f"{len(identities)} identities, one colour each" if len(identities) else "identities unknown"
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), title=who)
    _save_figure(fig, path)


def _identity_palette(count: int) -> list[tuple[float, float, float]]:
    """`count` distinguishable colours: golden-ratio spaced hues at two brightness levels."""
    return [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 0.95 if i % 2 == 0 else 0.6) for i in range(count)]


def _cell(image: np.ndarray, frame: tuple[int, int, int], label: str, height: int) -> Image.Image:
    """One framed image with a text label above it."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    width = max(1, round(picture.width * height / picture.height))
    picture = picture.resize((width, height), Image.BICUBIC)
    cell = Image.new("RGB", (width + 2 * FRAME, height + 2 * FRAME + LABEL_HEIGHT), "white")
    ImageDraw.Draw(cell).rectangle([0, LABEL_HEIGHT, cell.width - 1, cell.height - 1], fill=frame)
    cell.paste(picture, (FRAME, LABEL_HEIGHT + FRAME))
    ImageDraw.Draw(cell).text((1, 1), label, fill="black")
    return cell


def match_label(rank: int, distance: float) -> str:
    """The text above a ranked match: its rank and its distance to three significant digits, so
    that the nearly equal distances of a weak model (cosine distances of 1e-4) still differ."""
    return f"{rank}: {distance:.3g}"


def save_ranking(query_images: np.ndarray, match_images: np.ndarray, correct: np.ndarray,
                 distances: np.ndarray, path: str | os.PathLike) -> None:
    """One row per query: the query framed blue, then its top-k gallery matches nearest first,
    framed green when they show the query's identity and red otherwise. `query_images` is
    (Q, H, W, 3) uint8, `match_images` (Q, k, H, W, 3)."""
    query_images, match_images = np.asarray(query_images), np.asarray(match_images)
    if match_images.shape[:2] != np.shape(correct) or np.shape(correct) != np.shape(distances):
        raise ValueError(f"matches {match_images.shape[:2]}, correct {np.shape(correct)} and distances "
                         f"{np.shape(distances)} must agree")
    rows = []
    for q in range(len(query_images)):
        cells = [_cell(query_images[q], QUERY_FRAME, "query", CELL_HEIGHT)]
        for r in range(match_images.shape[1]):
            frame = CORRECT_FRAME if correct[q, r] else WRONG_FRAME
            cells.append(_cell(match_images[q, r], frame, match_label(r + 1, distances[q, r]), CELL_HEIGHT))
        rows.append(cells)
    cell_w, cell_h = rows[0][0].width, rows[0][0].height
    sheet = Image.new("RGB", (GAP + len(rows[0]) * (cell_w + GAP) + GAP, GAP + len(rows) * (cell_h + GAP)), "white")
    for i, cells in enumerate(rows):
        for j, cell in enumerate(cells):
            x = GAP + j * (cell_w + GAP) + (2 * GAP if j else 0)
            sheet.paste(cell, (x, GAP + i * (cell_h + GAP)))
    _write_atomically(path, sheet.save)


def save_message(message: str, path: str | os.PathLike) -> None:
    """A small PNG that says why a picture could not be drawn (so the stage output still exists)."""
    image = Image.new("RGB", (480, 60), "white")
    ImageDraw.Draw(image).text((10, 22), message, fill="black")
    _write_atomically(path, image.save)


def save_curves(scores: pd.DataFrame, clusters: pd.DataFrame, intra_quality: pd.DataFrame,
                inter_quality: pd.DataFrame, path: str | os.PathLike) -> None:
    """The per-round curves of metrics/curves/*.csv in three panels: retrieval (mAP, rank-1; round
    -1 is the starting model), number of clusters, and pseudo-label quality against the true
    identities (when they are known)."""
    fig = Figure(figsize=(15, 4.5), layout="constrained")
    retrieval, counts, quality = fig.subplots(1, 3)
    if len(scores):
        for column in ("mAP", "rank1"):
            retrieval.plot(scores["round"], scores[column], marker="o", label=column)
        retrieval.legend()
    else:
        _say(retrieval, "not evaluated\n(no query/gallery with identities)")
    retrieval.set(title="retrieval on query/gallery (%)", xlabel="round (-1 = start)")
    counts.plot(clusters["round"], clusters["intra_total"], marker="o", label="intra-camera (all cameras)")
    if "inter" in clusters:
        counts.plot(clusters["round"], clusters["inter"], marker="s", label="inter-camera")
    counts.legend()
    counts.set(title="pseudo-identities", xlabel="round")
    if len(intra_quality) or len(inter_quality):
        for name, frame in (("intra", intra_quality), ("inter", inter_quality)):
            if len(frame):
                quality.plot(frame["round"], frame["nmi"], marker="o", label=f"{name} NMI")
                quality.plot(frame["round"], frame["pairwise_precision"], marker="x", linestyle="--",
                             label=f"{name} pair precision")
        quality.legend()
    else:
        _say(quality, "no train identities\nto compare with")
    quality.set(title="pseudo-labels vs true identities", xlabel="round", ylim=(0, 1.02))
    for ax in (retrieval, counts, quality):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save_figure(fig, path)


def _say(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
