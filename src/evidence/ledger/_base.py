"""Constants, limits, errors and bounded reads shared by the ledger modules."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from evidence.errors import LedgerError, PackageError
from evidence.package import open_regular_file, read_regular_file

log = logging.getLogger(__name__)

FORMAT = "evidence-ledger/1"
INCLUSION_FORMAT = "evidence-inclusion-proof/1"
CONSISTENCY_FORMAT = "evidence-consistency-proof/1"
LEDGER_DIR = "ledger"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Limits: every size an attacker controls has a cap.
MAX_LEAF_BYTES = 512  # a package id (<= 200) + 64 hex + a 27-character time + 3
MAX_CONFIG_BYTES = 64 * 1024
MAX_CHECKPOINT_BYTES = 64 * 1024
MAX_NOTE_SIGNATURES = 100  # the cap of Go's sumdb/note
MAX_TREE_SIZE = 2**62
MAX_PROOF_HASHES = 128  # two per tree level is far beyond any real proof
MAX_PROOF_BYTES = 8 * 1024 * 1024
MAX_PROOF_TOKENS = 8
MAX_CHECKPOINTS = 1_000_000
MAX_TOKEN_BYTES = 1024 * 1024

CONFIG = "ledger.json"
LEAVES = "leaves.txt"
INDEX = "leaves.idx"
HASHES = "hashes.bin"
LOCK = "lock"
CHECKPOINTS = "checkpoints"

PACKAGE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}\Z")
# C2SP: a key name (and our origin) is non-empty and has no spaces and no '+'.
# We also keep it to printable ASCII, so it can never hide anything on a screen.
NAME_RE = re.compile(r"^[\x21-\x2a\x2c-\x7e]{1,255}\Z")
CHECKPOINT_RE = re.compile(r"^([0-9]{6,9})\.txt\Z")
TOKEN_RE = re.compile(r"^([0-9]{6,9})-([1-9][0-9]{0,1})\.tsr\Z")
DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]{0,18})\Z")
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space, per C2SP signed-note
ED25519_ALG = b"\x01"


def open_read(path: Path) -> int:
    """A regular file opened for reading (see package.open_regular_file): never
    through a link, never a FIFO that would block ``ledger verify`` forever."""
    try:
        return open_regular_file(path)
    except PackageError as exc:
        raise LedgerError(str(exc)) from exc


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see package.read_regular_file)."""
    try:
        return read_regular_file(path, limit)
    except PackageError as exc:
        raise LedgerError(str(exc)) from exc
