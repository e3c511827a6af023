#!/usr/bin/env python3
"""Writes one large mail for bench/memory.sh: a unit's stamped 推荐表 as a
multi-page scan PDF of about TARGET_MB megabytes (45 by default), base64 in
a mail from that unit, as a flatbed scanner and a mail client make them.

    python3 bench/bigscan.py OUT.eml [TARGET_MB]

Pages are A4 at 300 dpi, JPEG (DCTDecode) with paper grain and lines of
text; the first carries a red seal. Needs Pillow (Debian: python3-pil).
The PDF is written by hand: one image per page, nothing else.
"""

import base64
import io
import math
import random
import sys

from PIL import Image, ImageDraw

W, H = 2480, 3508  # A4 at 300 dpi
PAPER = (246, 244, 238)
INK = (35, 35, 40)
SEAL = (212, 38, 42)


def page(index, rnd):
    img = Image.new("RGB", (W, H), PAPER)
    d = ImageDraw.Draw(img)
    # A title, then lines of "characters" (blocks of a glyph's size).
    d.rectangle([900, 220, 1580, 300], fill=INK)
    for k in range(58):
        y = 420 + k * 52
        x = 260 + (80 if k % 7 == 0 else 0)
        end = W - 260 - (rnd.randint(0, 900) if k % 7 == 6 else 0)
        while x < end:
            w = rnd.randint(26, 34)
            d.rectangle([x, y, x + w, y + 30], fill=INK)
            x += w + rnd.randint(6, 12)
    if index == 0:
        # A 42 mm seal (~500 px at 300 dpi) over the signature line.
        cx, cy, r = W - 760, H - 620, 248
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=SEAL, width=20)
        star = []
        for j in range(10):
            a = -math.pi / 2 + j * math.pi / 5
            rr = 88 if j % 2 == 0 else 34
            star.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(star, fill=SEAL)
        for j in range(14):  # the unit's name around the ring
            a = math.radians(200 + j * 10)
            x, y = cx + 180 * math.cos(a), cy + 180 * math.sin(a)
            d.rectangle([x - 16, y - 16, x + 16, y + 16], fill=SEAL)
    # Paper grain and scanner noise: what makes a scan's JPEG large.
    grain = Image.effect_noise((W, H), 40).convert("RGB")
    img = Image.blend(img, grain, 0.10)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92, dpi=(300, 300))
    return out.getvalue()


def pdf(jpegs):
    """A PDF of one full-page DCTDecode image per page."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    n = len(jpegs)
    page_ids = [3 + 3 * i for i in range(n)]

    def obj(num, body, stream=None):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n" % num)
        out.write(body)
        if stream is not None:
            out.write(b"\nstream\n")
            out.write(stream)
            out.write(b"\nendstream")
        out.write(b"\nendobj\n")

    obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    obj(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n))
    for i, jpeg in enumerate(jpegs):
        p, content, image = page_ids[i], page_ids[i] + 1, page_ids[i] + 2
        obj(
            p,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
            % (image, content),
        )
        draw = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
        obj(content, b"<< /Length %d >>" % len(draw), draw)
        obj(
            image,
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d "
            b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode "
            b"/Length %d >>" % (W, H, len(jpeg)),
            jpeg,
        )
    xref = out.tell()
    count = 3 + 3 * n
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
    for num in range(1, count):
        out.write(b"%010d 00000 n \n" % offsets[num])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref))
    return out.getvalue()


def mail(pdf_bytes):
    name = "南京市科学技术局推荐表（盖章扫描件）.pdf"
    encoded = "".join("%%%02X" % b for b in name.encode("utf-8"))
    b64 = base64.b64encode(pdf_bytes).decode("ascii")
    lines = [b64[i : i + 76] for i in range(0, len(b64), 76)]
    boundary = "----=_NextPart_bench_bigscan_0001"
    body = base64.b64encode(
        "您好：\r\n附件是南京市科学技术局的推荐表盖章扫描件，请查收。\r\n\r\n王敏\r\n".encode("utf-8")
    ).decode("ascii")
    head = [
        "From: =?utf-8?B?%s?= <njkjjrcc@nanjing.gov.cn>"
        % base64.b64encode("王敏".encode()).decode(),
        "To: kjtrcc83236071@163.com",
        "Subject: =?utf-8?B?%s?="
        % base64.b64encode("南京市科学技术局推荐表（盖章扫描件）".encode()).decode(),
        "Date: Mon, 5 May 2025 09:12:44 +0800",
        "Message-ID: <bench-bigscan-0001@nanjing.gov.cn>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="%s"' % boundary,
        "X-Mailer: Foxmail 7.2.25.375[cn]",
        "",
        "--" + boundary,
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
        "",
        body,
        "",
        "--" + boundary,
        'Content-Type: application/pdf; name="=?utf-8?B?%s?="'
        % base64.b64encode(name.encode()).decode(),
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment; filename*=utf-8''%s" % encoded,
        "",
    ]
    tail = ["", "--" + boundary + "--", ""]
    return ("\r\n".join(head) + "\r\n" + "\r\n".join(lines) + "\r\n".join(tail)).encode(
        "ascii"
    )


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    target = float(sys.argv[2]) * 1e6 if len(sys.argv) == 3 else 45e6
    rnd = random.Random(7)
    jpegs, size = [], 0
    while size < target:
        jpegs.append(page(len(jpegs), rnd))
        size += len(jpegs[-1])
    doc = pdf(jpegs)
    raw = mail(doc)
    with open(sys.argv[1], "wb") as f:
        f.write(raw)
    print(f"{len(jpegs)} pages, PDF {len(doc) / 1e6:.1f} MB, mail {len(raw) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
