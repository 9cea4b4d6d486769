#!/usr/bin/env python3
"""Check an evidence-ledger proof with nothing but Python's hashlib (see docs/ledger.md).

    python3 ledger_check.py inclusion PROOF.json [PACKAGE/evidence/manifest.json]
    python3 ledger_check.py consistency PROOF.json

This checks the Merkle hashing (RFC 6962 / RFC 9162): that the package's
leaf is in the tree whose root the checkpoint states, or that the newer
checkpoint's tree extends the older one. It does not check who signed the
checkpoint: do that with the ledger's public key (docs/ledger.md shows how
with openssl), and compare the checkpoint with the one you were sent.
"""

import base64
import hashlib
import json
import sys


def H(data):
    return hashlib.sha256(data).digest()


def inclusion(leaf, index, size, path, root):  # RFC 9162 section 2.1.3.2
    fn, sn, r = index, size - 1, H(b"\x00" + leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = H(b"\x01" + p + r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = H(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return 0 <= index < size and sn == 0 and r == root


def consistency(m, n, path, root1, root2):  # RFC 9162 section 2.1.4.2
    if m == n or m == 0:
        return not path and (m == 0 or root1 == root2)
    if not path or m > n:
        return False
    if m & (m - 1) == 0:
        path = [root1, *path]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = H(b"\x01" + c + fr), H(b"\x01" + c + sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = H(b"\x01" + sr + c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2


def checkpoint(text):
    """(origin, tree size, root hash) from a checkpoint's first three lines."""
    origin, size, root = text.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def main(argv):
    kind, proof_file = argv[1], argv[2]
    with open(proof_file, encoding="utf-8") as fh:
        doc = json.load(fh)
    if kind == "inclusion":
        leaf = doc["leaf"]
        line = f"{leaf['package_id']}\t{leaf['manifest_sha256']}\t{leaf['time_added']}\n"
        origin, size, root = checkpoint(doc["checkpoint"])
        path = [bytes.fromhex(h) for h in doc["audit_path"]]
        ok = size == doc["tree_size"] and inclusion(
            line.encode("ascii"), doc["leaf_index"], size, path, root
        )
        if len(argv) > 3:
            with open(argv[3], "rb") as fh:
                ok = ok and hashlib.sha256(fh.read()).hexdigest() == leaf["manifest_sha256"]
        what = f"leaf {doc['leaf_index']} ({leaf['package_id']!r}) in {origin!r} at size {size}"
    else:
        o1, m, root1 = checkpoint(doc["old_checkpoint"])
        o2, n, root2 = checkpoint(doc["new_checkpoint"])
        path = [bytes.fromhex(h) for h in doc["proof"]]
        ok = o1 == o2 and consistency(m, n, path, root1, root2)
        what = f"{o2!r}: tree of {n} extends tree of {m}"
    print(("OK: " if ok else "FAILED: ") + what)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
