"""Where a real camera's in-betweens sit, and whether the keyframes beyond a gap bend paths towards them.

    python benchmarks/capture_timing.py [--first-frame 64] [--frames 241] [--min-motion 3]
                                        [--videos PATH ...]

Real videos as ``video_shots`` cases (4 keyframes a shot, a keyframe every 4th frame, 3 in-betweens a
gap), from ``--first-frame`` on: by default the evaluation cameras' frames from 64 on, which may be
trained on (``inbetween evaluate`` scores their first 61 frames), so this is validation data. DIS finds,
for each pixel of a gap's left keyframe, where it is in each true in-between (``D_j``) and in the right
keyframe (``F``). Over the pixels that move more than ``--min-motion`` px across the gap it prints,
per video and per gap of the shot (first, middle, last):

* ``position j``: how far along its way the in-between ``j`` sits, the median over those pixels of
  ``D_j . F / |F|^2`` (evenly spaced frames give 0.25, 0.50, 0.75), then the median over gaps;
* ``uneven gaps``: the share of gaps in which some in-between sits more than ``--uneven`` of the
  gap away from its even place;
* ``off straight``: the mean distance (px) of ``D_j`` from the straight path ``t F``;
* ``bend``: the mean size (px) of the bend that ``interpolate.neighbours`` gives the left keyframe's
  pixels at the in-betweens' times (:class:`interpolate.classical.NeighbourPaths`);
* ``bend closer`` / ``bend further``: of the pixels bent by more than 0.1 px, the share that the
  bend brings closer to ``D_j`` than the straight path is, and the share it takes further away.

The README ("Motion through more than two keyframes") quotes this table: where ``bend closer`` is
below a half, no rule that reads only the keyframes can tell such bends from an animator's ease.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from flow import DISFlow
from inbetween import config
from inbetween.evaluation import Case, case_neighbours, video_shot_cases
from inbetween.progress import progress_bar
from inbetween.sweep import markdown_table
from inbetween.video import from_uint8
from interpolate.classical import NeighbourPaths

KEYFRAMES, STRIDE = 4, 4
#: ``inbetween evaluate`` scores the shared videos' first frames; later ones are validation data here.
EVALUATION_FRAMES = 61
PARTS = ("first gap", "middle gap", "last gap", "all")
#: Pixels bent by less than this (px) count in neither ``bend closer`` nor ``bend further``.
BENT = 0.1


def gap_measures(case: Case, estimator, min_motion: float, uneven: float) -> dict[str, float] | None:
    """One gap's measures (see the module docstring); None where no pixel moves more than ``min_motion``."""
    left, right, truth = from_uint8(case.keys[:1]), from_uint8(case.keys[1:]), from_uint8(case.truth)
    flow_lr, flow_rl = estimator.bidirectional(left, right)
    to_truth, _ = estimator.bidirectional(left.expand(len(truth), -1, -1, -1), truth)  # (T, 2, H, W)
    moving = flow_lr[0].norm(dim=0) > min_motion  # (H, W)
    if not moving.any():
        return None
    paths = NeighbourPaths(flow_lr, flow_rl, case_neighbours(case, estimator))
    along = flow_lr[0][:, moving]  # (2, P)
    positions, off_straight, bend_sizes, bent, closer, further = [], [], [], 0, 0, 0
    for j, t in enumerate(case.times):
        found, straight = to_truth[j][:, moving], t * along
        bend = paths.at(t)[0][0][:, moving] - straight
        positions.append(float(((found * along).sum(0) / (along * along).sum(0)).median()))
        miss_straight = (found - straight).norm(dim=0)
        gain = miss_straight - (found - straight - bend).norm(dim=0)
        bend_size = bend.norm(dim=0)
        is_bent = bend_size > BENT
        off_straight.append(float(miss_straight.mean()))
        bend_sizes.append(float(bend_size.mean()))
        bent += int(is_bent.sum())
        closer += int((is_bent & (gain > 0)).sum())
        further += int((is_bent & (gain < 0)).sum())
    return {**{f"position {j + 1}": position for j, position in enumerate(positions)},
            "uneven": float(any(abs(position - t) > uneven for position, t in zip(positions, case.times))),
            "off straight": float(np.mean(off_straight)), "bend": float(np.mean(bend_sizes)),
            "bent": bent, "closer": closer, "further": further}


def summary_row(video: str, part: str, gaps: list[dict[str, float]]) -> dict[str, object]:
    """A table row over ``gaps`` (each from :func:`gap_measures`)."""
    bent = sum(gap["bent"] for gap in gaps)
    share = (lambda key: f"{100 * sum(gap[key] for gap in gaps) / bent:.0f} %") if bent else (lambda key: "-")
    positions = [key for key in gaps[0] if key.startswith("position")]
    return {"video": video, "gaps": part, "count": len(gaps),
            **{key: f"{np.median([gap[key] for gap in gaps]):.2f}" for key in positions},
            "uneven gaps": f"{100 * np.mean([gap['uneven'] for gap in gaps]):.0f} %",
            "off straight (px)": f"{np.mean([gap['off straight'] for gap in gaps]):.2f}",
            "bend (px)": f"{np.mean([gap['bend'] for gap in gaps]):.2f}",
            "bend closer": share("closer"), "bend further": share("further")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", nargs="+", default=[f"{config.data_root()}/videos"])
    parser.add_argument("--first-frame", type=int, default=64)
    parser.add_argument("--frames", type=int, default=241)
    parser.add_argument("--min-motion", type=float, default=3.0)
    parser.add_argument("--uneven", type=float, default=0.1)
    args = parser.parse_args()
    evaluation_videos = Path(config.data_root(), "videos").resolve()
    if args.first_frame < EVALUATION_FRAMES and any(Path(path).resolve() == evaluation_videos for path in args.videos):
        print(f"note: the first {EVALUATION_FRAMES} frames of {evaluation_videos} are evaluation data: "
              "report them, never choose a setting on them")
    estimator = DISFlow()
    by_part: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    cases = list(video_shot_cases(args.videos, args.frames, KEYFRAMES, STRIDE, args.first_frame))
    with torch.inference_mode():
        for case in progress_bar(cases, desc="gaps", unit="gap"):
            measures = gap_measures(case, estimator, args.min_motion, args.uneven)
            if measures is not None:
                by_part[case.subset, case.part].append(measures)
                by_part[case.subset, "all"].append(measures)
    rows = [summary_row(video, part, gaps)
            for (video, part), gaps in sorted(by_part.items(), key=lambda item: (item[0][0], PARTS.index(item[0][1])))]
    print(markdown_table(rows, list(rows[0])) if rows else "no gap moves more than --min-motion px")


if __name__ == "__main__":
    main()
