"""Verifies every DKIM-Signature of one message with dkimpy, an implementation independent of pronto's signer.

Usage: verify.py MESSAGE_FILE DOMAIN=SELECTOR=RECORD_FILE...

Each DOMAIN=SELECTOR=RECORD_FILE answers the DNS TXT query `SELECTOR._domainkey.DOMAIN` with the record in
RECORD_FILE (a test has no DNS of its own). The message file may have bare LF line ends (an SMTP sink's
capture); they are read as the CRLF they were on the wire. Prints one line per signature, `pass` or `fail`
with the algorithm, domain and selector, and exits 0 only when there is at least one signature and all pass.
"""
import sys

import dkim


def main() -> int:
    message = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    records = {}
    for arg in sys.argv[2:]:
        domain, selector, path = arg.split("=", 2)
        records[f"{selector}._domainkey.{domain}."] = open(path, "rb").read().strip()

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        if not name.endswith("."):
            name += "."
        return records.get(name)

    d = dkim.DKIM(message)
    count = sum(1 for line in message.split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
    ok = count > 0
    for i in range(count):
        try:
            passed, why = d.verify(idx=i, dnsfunc=dnsfunc), ""
        except dkim.DKIMException as e:  # a body hash mismatch is raised, not returned
            passed, why = False, str(e)
        fields = d.signature_fields or {}
        print("pass" if passed else "fail", *(fields.get(t, b"").decode() for t in (b"a", b"d", b"s")), why)
        ok = ok and passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
