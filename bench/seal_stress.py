#!/usr/bin/env python3
"""A stress set for the red-seal detector, beyond tests/fixtures/scans.

    python3 bench/seal_stress.py [OUT_DIR] [N]     # /tmp/baosong-seal-stress, 160

Writes N JPEG pages (half with a seal) and truth.json; then
`SEAL_STRESS=OUT_DIR cargo bench --bench seal_stress` reports misses, false
seals and time per page. Pages vary where scans do: 100-300 dpi, seal size,
round or oval, rotated, faded or pale ink, uneven pressure, scanner noise,
blur and skew, JPEG quality 30-85, some photographed with a phone; the
pages without a seal carry what looks nearly like one (红头 letterheads,
red ticks and underlines, red table lines, a round red emblem). Seeded:
reruns write the same set. Needs numpy, Pillow and the WenQuanYi Zen Hei
font (fonts-wqy-zenhei).
"""
import json
import os
import random
import sys

from PIL import ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures", "scans", "make_scans.py")

# The fixture script's drawing helpers: everything before its first fixture.
source = open(FIXTURES, encoding="utf-8").read()
helpers = source[: source.index("mm150 = ")]
tail = source[source.index("def phone_photo(img):") : source.index("p = page(100)\nsave_jpg(\"phone_photo")]
scans = {}
exec(compile(helpers + tail, FIXTURES, "exec"), scans)  # noqa: S102 (our own file)

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/baosong-seal-stress"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 160
os.makedirs(out, exist_ok=True)
rng = random.Random(20261130)
# The helpers draw from the script's generators: give them this set's seed.
scans["rng"] = random.Random(20261130)
scans["np_rng"] = scans["np"].random.default_rng(20261130)
RED = (200, 30, 40)


def decoys(p, mm):
    """Red marks that are not seals."""
    d = ImageDraw.Draw(p)
    kind = rng.choice(["ticks", "table", "logo", "none", "none"])
    if kind == "ticks":
        for i in range(rng.randint(2, 6)):
            y = p.height * rng.uniform(0.2, 0.9)
            x = p.width * rng.uniform(0.1, 0.5)
            d.line([x, y, x + rng.uniform(30, 120) * mm, y], fill=RED, width=2)
        cx, cy, r = p.width * rng.uniform(0.3, 0.7), p.height * rng.uniform(0.6, 0.85), rng.uniform(12, 22) * mm
        d.arc([cx - r, cy - r * 0.9, cx + r, cy + r * 0.9], rng.uniform(20, 60), rng.uniform(280, 330), fill=RED, width=3)
    elif kind == "table":
        x0, x1, y0 = 25 * mm, p.width - 25 * mm, p.height * rng.uniform(0.55, 0.7)
        for r in range(7):
            d.line([x0, y0 + r * 10 * mm, x1, y0 + r * 10 * mm], fill=RED, width=2)
        for c in range(5):
            x = x0 + c * (x1 - x0) / 4
            d.line([x, y0, x, y0 + 60 * mm], fill=RED, width=2)
    elif kind == "logo":
        p = scans["stamp"](p, 30 * mm, 20 * mm, rng.uniform(14, 18) * mm, strength=1.0, patchy=0.0, text="科学技术厅", bottom="")
    return p, kind


truth = {}
for i in range(n):
    sealed = i % 2 == 0
    dpi = rng.choice([100, 150, 150, 200, 300])
    mm = dpi / 25.4
    letterhead = rng.random() < 0.35
    p = scans["page"](dpi, letterhead=letterhead)
    what = []
    if sealed:
        faded = rng.random() < 0.25
        kw = dict(
            ratio=1.0 if rng.random() < 0.7 else rng.uniform(0.65, 0.75),
            angle=rng.choice([0, 0, rng.uniform(-30, 30)]),
            ramp=rng.choice([0.0, 0.0, rng.uniform(0.3, 0.75)]),
        )
        if faded:
            kw.update(ink=(235, 120, 135), strength=rng.uniform(0.5, 0.7), patchy=0.45)
        fx, fy = rng.uniform(0.3, 0.72), rng.uniform(0.35, 0.85)
        p = scans["stamp"](p, p.width * fx, p.height * fy, rng.uniform(38, 45) * mm, **kw)
        what.append("faded" if faded else "seal")
    else:
        p, kind = decoys(p, mm)
        what.append(kind)
    if rng.random() < 0.15:
        p = scans["phone_photo"](p)
        what.append("phone")
    else:
        p = scans["scanner"](p, noise=rng.uniform(3, 9), blur=rng.uniform(0.4, 1.3), skew=rng.uniform(-3, 3))
    q = rng.choice([30, 50, 70, 85])
    name = f"{i:03d}-{dpi}dpi-q{q}-{'-'.join(what)}{'-letterhead' if letterhead else ''}.jpg"
    open(os.path.join(out, name), "wb").write(scans["jpeg_bytes"](p, q))
    truth[name] = sealed

json.dump(truth, open(os.path.join(out, "truth.json"), "w"), indent=1, sort_keys=True)
print(f"{len(truth)} pages ({sum(truth.values())} sealed) in {out}")
