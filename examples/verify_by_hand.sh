#!/usr/bin/env bash
# Check a package with standard tools only (docs/verifying-by-hand.md).
#   examples/verify_by_hand.sh PACKAGE SIGNER.pub
# Exits non-zero at the first check that fails.
set -euo pipefail
pkg=$1
pub=$(realpath "$2")
cd "$pkg"

echo "== payload and tag files (sha256sum)"
sha256sum -c manifest-sha256.txt
sha256sum -c tagmanifest-sha256.txt

echo "== signer's key id"
kid=$(openssl pkey -pubin -in "$pub" -outform DER | sha256sum | cut -d' ' -f1)
echo "$kid"

echo "== signature over evidence/manifest.json (openssl)"
openssl pkeyutl -verify -pubin -inkey "$pub" -rawin \
    -in evidence/manifest.json -sigfile "evidence/signatures/$kid.sig"

if command -v warcio >/dev/null; then
    echo "== WARC digests (warcio check)"
    warcio check -v data/capture.warc.gz
fi
echo "ALL CHECKS PASSED"
