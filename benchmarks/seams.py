"""Seam-quality benchmark: does tiled instance segmentation match the untiled result?

One command::

    python benchmarks/seams.py             # 3-D and 2-D scenes, about two minutes
    python benchmarks/seams.py --quick     # smaller scenes, a few seconds

A seeded synthetic image of densely packed, touching cells of varied size (ground-truth
instance labels: a power diagram of random balls, clipped to their union) is segmented
by a per-tile instance segmenter that sees only its tile plus halo: threshold the
intensity, distance transform, one marker per local maximum, watershed (scikit-image).
It is run on the whole image (the reference), and tiled with ``stitch="touch"`` and
``stitch="iou"`` at the same tiles and overlap. For each run the table gives object-level
precision, recall and F1 at IoU 0.5 against the ground truth, how many true cells are lost
inside a predicted object that holds most of several of them (*merged*), and how many extra
pieces true cells are cut into (*split*, pieces of at least 20% of a cell). The tiled
runs' excess over the untiled one is what the seams cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from patchworks import tile_process


def cells(shape, n_cells, radii, seed, squeeze=0.8):
    """Image and truth: touching balls of random radius, split by a power diagram."""
    rng = np.random.default_rng(seed)
    centres, radius = _pack(shape, n_cells, radii, rng, squeeze=squeeze)
    best = np.full(shape, np.inf, dtype=np.float32)
    truth = np.zeros(shape, dtype=np.int32)
    for i, (centre, r) in enumerate(zip(centres, radius, strict=True), start=1):
        box = tuple(
            slice(max(int(c - r), 0), min(int(c + r) + 2, n))
            for c, n in zip(centre, shape, strict=True)
        )
        coords = np.ogrid[box]
        d2 = sum((x - c) ** 2 for x, c in zip(coords, centre, strict=True)).astype(np.float32)
        power = d2 - r**2
        take = (d2 <= r**2) & (power < best[box])
        best[box][take] = power[take]
        truth[box][take] = i
    truth = _keep_largest_pieces(truth)
    image = (truth > 0).astype(np.float32)
    image = ndi.gaussian_filter(image, 1.0) + rng.normal(0, 0.05, shape).astype(np.float32)
    return image.astype(np.float32), truth


def _pack(shape, n_cells, radii, rng, squeeze=0.8, tries=40):
    """Random balls that touch and overlap a little (centres >= squeeze * (r1 + r2))."""
    centres = np.empty((0, len(shape)))
    radius = np.empty(0)
    for _ in range(n_cells * tries):
        if radius.size == n_cells:
            break
        c = np.array([rng.uniform(0, n) for n in shape])
        r = rng.uniform(*radii)
        if radius.size and (np.linalg.norm(centres - c, axis=1) < squeeze * (radius + r)).any():
            continue
        centres = np.vstack([centres, c])
        radius = np.append(radius, r)
    return centres, radius


def _keep_largest_pieces(truth):
    """One connected piece per cell (a power cell clipped to its ball can fragment)."""
    out = np.zeros_like(truth)
    slices = ndi.find_objects(truth)
    for value, box in enumerate(slices, start=1):
        if box is None:
            continue
        comp, n = ndi.label(truth[box] == value)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        keep = comp == (np.argmax(sizes) + 1)
        out[box][keep] = value
    return out


class Watershed:
    """Per-tile instance segmenter: threshold, distance transform, markers, watershed."""

    def __init__(self, min_distance):
        self.min_distance = min_distance

    def __call__(self, tile):
        from skimage.feature import peak_local_max
        from skimage.segmentation import watershed

        foreground = ndi.gaussian_filter(tile, 1.0) > 0.5
        distance = ndi.distance_transform_edt(foreground)
        distance = ndi.gaussian_filter(distance, 1.0)
        peaks = peak_local_max(
            distance, min_distance=self.min_distance, labels=foreground, exclude_border=False
        )
        markers = np.zeros(tile.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        return watershed(-distance, markers, mask=foreground).astype(np.int32)


def scores(truth, pred):
    """Object-level P/R/F1 at IoU 0.5, merged and split counts."""
    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    both = (t > 0) & (p > 0)
    keys, inter = np.unique(t[both] * (p.max() + 1) + p[both], return_counts=True)
    ti, pi = keys // (p.max() + 1), keys % (p.max() + 1)
    t_size = np.bincount(t, minlength=t.max() + 1)
    p_size = np.bincount(p, minlength=p.max() + 1)
    iou = inter / (t_size[ti] + p_size[pi] - inter)
    tp = int((iou > 0.5).sum())
    n_true, n_pred = int((t_size[1:] > 0).sum()), int((p_size[1:] > 0).sum())
    precision, recall = tp / max(n_pred, 1), tp / max(n_true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    # merged: true cells lost because one predicted object holds most of several of them
    most_of_true = inter > 0.5 * t_size[ti]
    held = np.bincount(pi[most_of_true], minlength=p.max() + 1)
    merged = int(np.maximum(held - 1, 0).sum())
    # split: extra pieces, each holding at least 20% of a true cell
    big_piece = inter >= 0.2 * t_size[ti]
    pieces = np.bincount(ti[big_piece], minlength=t.max() + 1)
    split = int(np.maximum(pieces - 1, 0).sum())
    return {
        "objects": n_pred,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "merged": merged,
        "split": split,
    }


def run_scene(name, shape, n_cells, radii, tile_shape, overlap, seed, squeeze=0.8):
    image, truth = cells(shape, n_cells, radii, seed, squeeze=squeeze)
    fn = Watershed(min_distance=max(2, int(radii[0]) - 1))
    rows = []
    start = time.perf_counter()
    rows.append(("untiled", scores(truth, fn(image)), time.perf_counter() - start))
    for stitch in ("touch", "iou"):
        start = time.perf_counter()
        labels = tile_process(
            image, fn, tile_shape=tile_shape, overlap=overlap, stitch=stitch, compute=True
        )
        rows.append((f"tiled {stitch}", scores(truth, labels), time.perf_counter() - start))
    n_true = int(np.unique(truth[truth > 0]).size)
    print(
        f"\n### {name}: {shape} image, {n_true} true cells, radius {radii[0]}-{radii[1]}, "
        f"tiles {tile_shape}, overlap {overlap}\n"
    )
    print("| run | objects | precision | recall | F1 | merged | split | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, s, seconds in rows:
        print(
            f"| {label} | {s['objects']} | {s['precision']:.3f} | {s['recall']:.3f} | "
            f"{s['f1']:.3f} | {s['merged']} | {s['split']} | {seconds:.1f} |"
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scenes, a few seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        scenes = [
            ("3-D", (48, 96, 96), 260, (4.0, 8.0), (24, 48, 48), 12),
            ("2-D", (256, 256), 420, (4.0, 9.0), (64, 64), 14, 0.9),
        ]
    else:
        scenes = [
            ("3-D", (96, 160, 160), 1400, (4.0, 8.0), (48, 64, 64), 14),
            ("2-D", (768, 768), 3600, (4.0, 9.0), (128, 128), 16, 0.9),
        ]
    print(f"seams benchmark, seed {args.seed}")
    for name, *scene in scenes:
        run_scene(name, *scene[:5], seed=args.seed, squeeze=scene[5] if len(scene) > 5 else 0.8)


if __name__ == "__main__":
    main()
