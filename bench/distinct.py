#!/usr/bin/env python3
"""Writes N bench mails into a maildir's new/: the corpus in turn, each copy
with an X-Bench-Seq header, its own Message-ID and its own attachment bytes,
so that no cache keyed on a mail's or a file's content can help (the bytes
of every copy differ; what a reader finds in them does not).

    bench/distinct.py CORPUS_DIR N MAILDIR_NEW [FIRST_SEQ]

(FIRST_SEQ, 0 by default, numbers the copies: give each mailbox its own
range so no two mailboxes hold the same mail.)

Each base64 attachment is changed in a way its format ignores:
  JPEG  a COM segment after SOI
  PNG   a tEXt chunk after IHDR
  PDF   a comment line after %%EOF
  ZIP   (xlsx, docx, zip) the archive comment
  OLE   (xls, doc, et, wps) one unused 512-byte sector at the end
Anything else (text bodies, other files) is left as it is. Line endings and
everything outside those bodies are kept byte for byte.
"""

import base64
import re
import struct
import sys
import time
import zlib
from pathlib import Path

B64_LINE = re.compile(rb"^[A-Za-z0-9+/=]+$")
CTE_B64 = re.compile(rb"content-transfer-encoding:[ \t]*base64", re.I)
MSG_ID = re.compile(rb"^(message-id:[ \t]*<)", re.I | re.M)


def mutate(data: bytes, tag: bytes) -> bytes:
    if data.startswith(b"\xff\xd8"):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + data[2:]
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 33:
        body = b"Comment\x00" + tag
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body
        chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
        return data[:33] + chunk + data[33:]
    if data.startswith(b"%PDF"):
        return data + b"\n%" + tag + b"\n"
    if data.startswith(b"PK\x03\x04"):
        # The end-of-central-directory record's comment, patched in place:
        # entries, names (GBK ones too) and offsets stay as they were.
        end = data.rfind(b"PK\x05\x06")
        if end < 0 or end + 22 > len(data):
            return data
        return data[: end + 20] + struct.pack("<H", len(tag)) + tag
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") and len(data) % 512 == 0:
        return data + tag.ljust(512, b"\x00")[:512]
    return data


def encode(data: bytes, eol: bytes) -> list:
    text = base64.b64encode(data)
    return [text[i : i + 76] + eol for i in range(0, len(text), 76)]


def distinct(raw: bytes, seq: int) -> bytes:
    tag = b"bench-%d" % seq
    lines = raw.splitlines(keepends=True)
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not line.startswith(b"--"):
            continue
        # A part's header block, then (if base64) its body up to the next
        # boundary line.
        headers = []
        while i < len(lines) and lines[i].strip():
            headers.append(lines[i])
            i += 1
        out.extend(headers)
        if i >= len(lines):
            break
        out.append(lines[i])  # the blank line
        i += 1
        if not CTE_B64.search(b"".join(headers)):
            continue
        start = i
        while i < len(lines) and B64_LINE.match(lines[i].strip() or b"="):
            if not lines[i].strip() and i + 1 < len(lines) and lines[i + 1].startswith(b"--"):
                break
            i += 1
        body = lines[start:i]
        eol = b"\r\n" if body and body[0].endswith(b"\r\n") else b"\n"
        try:
            data = base64.b64decode(b"".join(l.strip() for l in body), validate=True)
        except ValueError:
            out.extend(body)
            continue
        changed = mutate(data, tag)
        out.extend(encode(changed, eol) if changed != data else body)
    mail = b"".join(out)
    mail, n = MSG_ID.subn(rb"\1bench%d." % seq, mail, count=1)
    eol = b"\r\n" if raw.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    return b"X-Bench-Seq: %d" % seq + eol + mail


def main() -> None:
    corpus_dir, n, new = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    corpus = [p.read_bytes() for p in sorted(corpus_dir.glob("*.eml"))]
    if not corpus:
        sys.exit(f"distinct.py: no .eml in {corpus_dir}")
    now = int(time.time())
    for i in range(first, first + n):
        (new / f"{now}.B{i}.bench").write_bytes(distinct(corpus[i % len(corpus)], i))


if __name__ == "__main__":
    main()
