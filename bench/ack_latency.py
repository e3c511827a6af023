#!/usr/bin/env python3
"""APPENDs COUNT fresh mails to an IMAP folder, one every INTERVAL seconds,
and times each from the APPEND's OK to its ack appearing as an .eml in
OUTBOX (baosong's file transport). Prints one line of percentiles.

    bench/ack_latency.py PORT USER PASSWORD FOLDER OUTBOX TEMPLATE.eml COUNT INTERVAL LABEL

The template is sent with its Subject replaced by "LABEL-K 推荐表" and a new
Message-ID; the ack's subject quotes it, which is how the ack is found (so
each run needs its own LABEL). With LATENCY_DUMP=FILE, each mail's APPEND
and ack times (Unix time, to compare with the daemon's log) are written there.
"""

import email
import email.policy
import imaplib
import os
import re
import sys
import threading
import time
from pathlib import Path


def fresh(template: bytes, tag: str, k: int) -> bytes:
    head, sep, body = template.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = template.partition(b"\n\n")
    eol = b"\r\n" if sep == b"\r\n\r\n" else b"\n"
    lines = [
        l
        for l in re.split(rb"\r?\n(?![ \t])", head)
        if not re.match(rb"(?i)(subject|message-id):", l)
    ]
    lines.append(b"Subject: %s-%d =?UTF-8?B?5o6o6I2Q6KGo?=" % (tag.encode(), k))
    lines.append(b"Message-ID: <%s-%d.%d@bench.example>" % (tag.encode(), k, time.time_ns()))
    return eol.join(lines) + sep + body


def main() -> None:
    port, user, password, folder, outbox, template, count, interval, label = sys.argv[1:]
    count, interval = int(count), float(interval)
    outbox = Path(outbox)
    template = Path(template).read_bytes()
    appended: dict = {}
    acked: dict = {}
    done = threading.Event()

    def watch() -> None:
        seen = set()
        while not done.is_set() or len(acked) < len(appended):
            try:
                names = os.listdir(outbox)
            except FileNotFoundError:
                names = []
            for name in names:
                if name in seen or not name.endswith(".eml"):
                    continue
                seen.add(name)
                try:
                    msg = email.message_from_bytes(
                        (outbox / name).read_bytes(), policy=email.policy.default
                    )
                except OSError:
                    seen.discard(name)
                    continue
                m = re.search(rf"\b{label}-(\d+)", str(msg.get("Subject", "")))
                if m and int(m.group(1)) not in acked:
                    acked[int(m.group(1))] = time.monotonic()
            if done.is_set() and time.monotonic() > deadline[0]:
                break
            time.sleep(0.01)

    deadline = [float("inf")]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    imap = imaplib.IMAP4("127.0.0.1", int(port))
    imap.login(user, password)
    for k in range(count):
        mail = fresh(template, label, k)
        typ, _ = imap.append(folder, None, None, mail)
        if typ != "OK":
            sys.exit(f"APPEND failed: {typ}")
        appended[k] = time.monotonic()
        time.sleep(interval)
    imap.logout()
    deadline[0] = time.monotonic() + 60
    done.set()
    watcher.join()
    dump = os.environ.get("LATENCY_DUMP")
    if dump:
        t0 = time.time() - time.monotonic()
        with open(dump, "w") as f:
            for k in sorted(appended):
                a = acked.get(k)
                f.write(f"{label}-{k} {appended[k] + t0:.3f} {'' if a is None else f'{a + t0:.3f}'}\n")
    lat = sorted(acked[k] - appended[k] for k in appended if k in acked)
    missing = len(appended) - len(lat)
    if not lat:
        print(f"{label}: no ack seen for any of {count} mails")
        return

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]

    print(
        f"{label}: {len(lat)} acked of {count} (missing {missing}); APPEND to ack written: "
        f"p50 {pct(50):.3f} s, p90 {pct(90):.3f} s, p99 {pct(99):.3f} s, max {lat[-1]:.3f} s"
    )


if __name__ == "__main__":
    main()
