"""Peak memory of streaming a folder dataset: does it grow with the number of images?

For folders of generated 112x112 RGB PNGs (10 class subfolders), each measurement runs
in a fresh process: `lt.load_dataset("folder:...")` (scan included) and one full pass
over `.train` (batch 64), then reports the process's peak RSS (ru_maxrss) and the time.
With the default budget (--cache_mb=512) a split is cached in memory when its
preprocessed float32 images fit; `--cache_mb=0` never caches, which shows the pure
streaming cost. The ratio column divides each peak by the smallest folder's peak at the
same budget.

    python benchmarks/data_streaming.py --images=2000,20000 --cache_mb=512,0 \
        --out=docs/data_streaming.md

Generated folders are kept in --folder_root (default:
<tmp>/larq_tentacle_stream_bench), so a rerun does not write them again.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

SIDE = 112
CLASSES = 10
BATCH = 64


def make_folder(root: str, count: int) -> str:
    """`count` PNGs of coloured rectangles over noise, in CLASSES class folders."""
    import numpy as np
    from PIL import Image

    folder = os.path.join(root, f"images_{count}")
    done = os.path.join(folder, ".complete")
    if os.path.exists(done):
        return folder
    rng = np.random.default_rng(count)
    for index in range(count):
        label = index % CLASSES
        image = rng.integers(0, 40, size=(SIDE, SIDE, 3), dtype=np.uint8)
        top, left = rng.integers(0, SIDE // 2, size=2)
        image[top : top + SIDE // 2, left : left + SIDE // 2] += np.uint8(20 * label)
        path = os.path.join(folder, f"class_{label}", f"{index:06d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(image).save(path)
    open(done, "w").close()
    return folder


def measure(folder: str, cache_mb: float) -> dict:
    """In this process: load the folder, one pass over the training split, peak RSS."""
    import larq_tentacle as lt

    started = time.time()
    bundle = lt.load_dataset(
        f"folder:{folder}", input_shape=(SIDE, SIDE, 3), batch_size=BATCH, cache_mb=cache_mb
    )
    loaded = time.time()
    seen = sum(int(x.shape[0]) for x, _ in bundle.train)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(
        images=sum(bundle.sizes.values()), train_images=seen, cached=bundle.cached,
        peak_rss_mb=peak_kb / 1024, load_s=loaded - started, pass_s=time.time() - loaded,
    )


def run_child(folder: str, cache_mb: float) -> dict:
    command = [sys.executable, __file__, "--child", folder, "--cache_mb", str(cache_mb)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def table(rows) -> str:
    from larq_tentacle.utils.tables import markdown_table

    smallest = {}
    for row in rows:
        smallest.setdefault(row["cache_mb"], row["peak_rss_mb"])
    shown = [
        dict(
            images=row["images"],
            cache_mb=f"{row['cache_mb']:g}",
            cached=", ".join(row["cached"]) or "none",
            peak=f"{row['peak_rss_mb']:.0f}",
            ratio=f"{row['peak_rss_mb'] / smallest[row['cache_mb']]:.2f}",
            load=f"{row['load_s']:.1f}",
            one_pass=f"{row['pass_s']:.1f}",
        )
        for row in rows
    ]
    return markdown_table(
        shown,
        ["images", "cache_mb", "cached", "peak", "ratio", "load", "one_pass"],
        ["images", "--cache_mb", "cached splits", "peak RSS (MB)", "x smallest folder",
         "scan + statistics (s)", "one train pass (s)"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", default="2000,20000")
    parser.add_argument("--cache_mb", default="512,0")
    parser.add_argument("--folder_root", default=None)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, float(args.cache_mb))))
        return
    root = args.folder_root or os.path.join(tempfile.gettempdir(), "larq_tentacle_stream_bench")
    rows = []
    for cache_mb in (float(v) for v in args.cache_mb.split(",")):
        for count in (int(v) for v in args.images.split(",")):
            rows.append(dict(run_child(make_folder(root, count), cache_mb), cache_mb=cache_mb))
            print(rows[-1], flush=True)
    text = (
        f"{table(rows)}\n\nMachine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.\n"
    )
    print(text)
    if args.out:
        from larq_tentacle.utils.atomic import write_text

        write_text(args.out, text)


if __name__ == "__main__":
    main()
