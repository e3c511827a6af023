"""A real SMTP server for the outbound tests (aiosmtpd).

Stores every accepted message as <dir>/<n>.eml with <dir>/<n>.json beside it
(envelope sender, recipients, whether TLS and AUTH were used). While the file
<dir>/refuse exists, RCPT TO is answered with its first line (e.g.
"451 4.3.0 Try again later"), so tests can provoke temporary and permanent
failures. While <dir>/drop exists, the connection is cut after the message
data, before any reply (a reset mid-DATA). While <dir>/hang exists, RCPT TO
gets no answer at all (a server gone silent: the client must time out).
Prints "READY" once it accepts connections.

Usage: smtp_sink.py DIR PORT [--tls CERT KEY] [--auth USER:PASSWORD]
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0
        self.lock = threading.Lock()

    def refusal(self):
        try:
            with open(os.path.join(self.outdir, "refuse")) as f:
                return f.readline().strip() or None
        except FileNotFoundError:
            return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        while os.path.exists(os.path.join(self.outdir, "hang")):
            await asyncio.sleep(0.05)
        refusal = self.refusal()
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(os.path.join(self.outdir, "drop")):
            server.transport.abort()
            return "421 4.4.2 Connection dropped"
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.outdir, f"{n:04}")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "login": session.auth_data.decode() if session.authenticated else None,
        }
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        # The .json appears last: a test that sees it can read both.
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"


def main():
    # aiosmtpd warns (and logs) about its own use of Session.login_data, and about AUTH
    # without TLS, which the plain-text loopback tests use on purpose.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("port", type=int)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth")
    a = p.parse_args()

    kwargs = {}
    if a.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            if not ok:
                # handled=False: aiosmtpd then answers 535 itself.
                return AuthResult(success=False, handled=False)
            return AuthResult(success=True, auth_data=auth_data.login)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=bool(a.tls),
        )
    controller = Controller(Sink(a.dir), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
