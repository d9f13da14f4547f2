"""The synthetic dataset: which person appears in which camera and split, written as a
Market-1501-layout zip with byte-reproducible entries."""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
from PIL import Image

from .cameras import make_cameras
from .people import Identity, make_identities, random_identity
from .render import Record, render_image

ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def _image_name(pid: int, cam: int, seq: int, frame: int, box: int) -> str:
    """Market-1501 file name; pid -1 (junk) is written without zero padding, as in Market."""
    prefix = f"{pid:04d}" if pid >= 0 else str(pid)
    return f"{prefix}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"


def _assign_pids(rng: np.random.Generator, num_train: int, num_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, sorted, non-contiguous pids (>= 1) for the train and test identities."""
    pool = np.arange(1, min(9999, max(1501, 3 * (num_train + num_test))) + 1)
    pids = rng.choice(pool, num_train + num_test, replace=False)
    return np.sort(pids[:num_train]), np.sort(pids[num_train:])


def _tracklet(rng: np.random.Generator, ident: Identity, pid: int, cam: int, count: int,
              num_query: int) -> list[Record]:
    """``count`` consecutive frames of one person in one camera; ``num_query`` > 0 marks a test id."""
    seq, box = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    frames = int(rng.integers(0, 999_999 - 30 * count)) + np.cumsum(rng.integers(3, 30, count))
    query = set(rng.choice(count, num_query, replace=False).tolist()) if num_query else set()
    records = []
    for i, frame in enumerate(frames):
        folder = "bounding_box_train" if not num_query else ("query" if i in query else "bounding_box_test")
        records.append(Record(folder, _image_name(pid, cam, seq, int(frame), box), "person", ident, cam))
    return records


def _gallery_extras(rng: np.random.Generator, kind: str, count: int, num_cameras: int, used: set) -> list[Record]:
    """Distractor (pid 0, a stranger badly framed) or junk (pid -1, background) gallery images."""
    pid = 0 if kind == "distractor" else -1
    records = []
    for _ in range(count):
        cam, seq, box = int(rng.integers(1, num_cameras + 1)), int(rng.integers(1, 7)), int(rng.integers(1, 9))
        frame = int(rng.integers(0, 1_000_000))
        while _image_name(pid, cam, seq, frame, box) in used:
            frame = (frame + 1) % 1_000_000
        name = _image_name(pid, cam, seq, frame, box)
        used.add(name)
        ident = random_identity(rng) if kind == "distractor" else None
        records.append(Record("bounding_box_test", name, kind, ident, cam))
    return records


def plan_records(rng: np.random.Generator, *, num_train_ids: int, num_test_ids: int, num_cameras: int,
                 images_per_camera: int, cameras_per_id: int, num_distractors: int, num_junk: int,
                 queries_per_camera: int = 1) -> tuple[list[Record], dict[int, int]]:
    """Every image of the dataset (not yet rendered) and the look-alike group of each pid."""
    taken: set = set()
    train, train_groups = make_identities(num_train_ids, rng, taken)
    test, test_groups = make_identities(num_test_ids, rng, taken)
    train_pids, test_pids = _assign_pids(rng, num_train_ids, num_test_ids)
    group_of = {int(p): g for p, g in zip(train_pids, train_groups)}
    group_of.update({int(p): g + max(train_groups) + 1 for p, g in zip(test_pids, test_groups)})
    records: list[Record] = []
    for idents, pids, num_query in ((train, train_pids, 0), (test, test_pids, queries_per_camera)):
        for ident, pid in zip(idents, pids):
            for cam in np.sort(rng.choice(num_cameras, cameras_per_id, replace=False)) + 1:
                records += _tracklet(rng, ident, int(pid), int(cam), images_per_camera, num_query)
    used = {r.name for r in records}
    records += _gallery_extras(rng, "distractor", num_distractors, num_cameras, used)
    records += _gallery_extras(rng, "junk", num_junk, num_cameras, used)
    return records, group_of


def _check_args(num_train_ids: int, num_test_ids: int, num_cameras: int, images_per_camera: int,
                cameras_per_id: int, height: int, width: int, num_distractors: int, num_junk: int,
                queries_per_camera: int, seed: int) -> None:
    """Reject argument combinations that cannot give a valid Market-1501-layout dataset."""
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if num_train_ids < 1 or num_test_ids < 1:
        raise ValueError("num_train_ids and num_test_ids must be >= 1")
    if num_train_ids + num_test_ids > 9999:
        raise ValueError("at most 9999 identities fit 4-digit Market-1501 pids")
    if not 2 <= cameras_per_id <= num_cameras:
        raise ValueError(f"cameras_per_id must be in [2, num_cameras={num_cameras}], got {cameras_per_id}")
    if num_cameras > 9:
        raise ValueError("num_cameras must be <= 9 (single-digit c<cam> as in Market-1501)")
    if queries_per_camera < 1 or images_per_camera <= queries_per_camera:
        raise ValueError("need 1 <= queries_per_camera < images_per_camera so every query has gallery matches")
    if images_per_camera > 1000:
        raise ValueError("images_per_camera must be <= 1000")
    if height < 16 or width < 8:
        raise ValueError(f"image size must be at least 16 x 8, got {height} x {width}")
    if num_distractors < 0 or num_junk < 0:
        raise ValueError("num_distractors and num_junk must be >= 0")


def _zip_entry(name: str, is_dir: bool = False) -> zipfile.ZipInfo:
    """ZipInfo with fixed time, system and permissions so archives are byte-reproducible."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.create_system = 3
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = ((0o40755 << 16) | 0x10) if is_dir else (0o644 << 16)
    return info


def write_synthetic_zip(
    path: str | os.PathLike,
    *,
    num_train_ids: int = 80,
    num_test_ids: int = 80,
    num_cameras: int = 4,
    images_per_camera: int = 5,
    cameras_per_id: int = 3,
    height: int = 64,
    width: int = 32,
    num_distractors: int = 100,
    num_junk: int = 20,
    seed: int = 0,
    queries_per_camera: int = 1,
    camera_shift: float = 1.0,
    occlusion_prob: float = 0.15,
    jpeg_quality: int = 90,
    top_folder: str = "Synthetic-reID",
) -> dict:
    """Render the dataset and write it as a Market-1501-layout zip at ``path``; return counts.

    Each identity appears in ``cameras_per_id`` of the ``num_cameras`` cameras with
    ``images_per_camera`` images per camera. For test ids, ``queries_per_camera`` images per
    camera go to ``query/`` and the rest to ``bounding_box_test/``, which also holds
    ``num_distractors`` pid-0000 and ``num_junk`` pid -1 images. Same arguments, same bytes.
    """
    _check_args(num_train_ids, num_test_ids, num_cameras, images_per_camera, cameras_per_id,
                height, width, num_distractors, num_junk, queries_per_camera, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    cameras = make_cameras(num_cameras, height, width, rng, camera_shift)
    records, _ = plan_records(rng, num_train_ids=num_train_ids, num_test_ids=num_test_ids,
                              num_cameras=num_cameras, images_per_camera=images_per_camera,
                              cameras_per_id=cameras_per_id, num_distractors=num_distractors,
                              num_junk=num_junk, queries_per_camera=queries_per_camera)
    path = os.fspath(path)
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    tmp_path = f"{path}.{os.getpid()}.tmp"
    order = sorted(range(len(records)), key=lambda i: (records[i].folder, records[i].name))
    try:
        with zipfile.ZipFile(tmp_path, "w") as zf:
            zf.writestr(_zip_entry(top_folder + "/", True), b"")
            for folder in ("bounding_box_test", "bounding_box_train", "query"):
                zf.writestr(_zip_entry(f"{top_folder}/{folder}/", True), b"")
            for i in order:
                record = records[i]
                image_rng = np.random.default_rng(np.random.SeedSequence([seed, 1, i]))
                pixels = render_image(record, cameras[record.camera - 1], height, width, image_rng, occlusion_prob)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="JPEG", quality=jpeg_quality)
                zf.writestr(_zip_entry(f"{top_folder}/{record.folder}/{record.name}"), buffer.getvalue())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return _summary(records, top_folder, num_train_ids, num_test_ids, num_cameras, height, width, seed)


def _summary(records: list[Record], top_folder: str, num_train_ids: int, num_test_ids: int,
             num_cameras: int, height: int, width: int, seed: int) -> dict:
    """Counts describing a written dataset (``gallery_images`` includes distractors and junk)."""
    def count(folder: str | None = None, kind: str | None = None) -> int:
        return sum((folder is None or r.folder == folder) and (kind is None or r.kind == kind) for r in records)

    return {
        "top_folder": top_folder,
        "num_train_ids": num_train_ids,
        "num_test_ids": num_test_ids,
        "num_cameras": num_cameras,
        "train_images": count("bounding_box_train"),
        "query_images": count("query"),
        "gallery_images": count("bounding_box_test"),
        "gallery_person_images": count("bounding_box_test", "person"),
        "distractor_images": count(kind="distractor"),
        "junk_images": count(kind="junk"),
        "total_images": len(records),
        "height": height,
        "width": width,
        "seed": seed,
    }
