"""The collection ledger: an RFC 6962 Merkle log of packages with C2SP checkpoints.

A single package proves itself; a collection does not. The ledger in
``DIR/ledger/`` logs every package of an archive directory as one leaf, so
that a signed (and timestamped) checkpoint commits the organisation to the
whole list: a package deleted, replaced or back-dated later no longer matches
a checkpoint someone else holds. docs/ledger.md is the normative description.

Leaf
    One line of ASCII, byte-stable::

        <package id> TAB <SHA-256 of manifest.json, lowercase hex> TAB <time added> LF

    hashed as an RFC 6962 leaf, ``SHA-256(0x00 ‖ line)``; interior nodes are
    ``SHA-256(0x01 ‖ left ‖ right)`` and the tree head is RFC 6962 §2.1's MTH
    (split at the largest power of two smaller than the size).

Storage (all append-only; nothing already written is ever rewritten)
    ``leaves.txt``  the leaf lines, concatenated (line N+1 is leaf N);
    ``leaves.idx``  8-byte big-endian end offset of each leaf in leaves.txt;
    ``hashes.bin``  32-byte hashes of every complete subtree, in the order
    they are completed (the layout of Go's checksum-database ``tlog``:
    leaf N, then the parents it completes). With it, any subtree hash is one
    read, so an append and a proof cost O(log n) reads.

    An append writes and fsyncs the three files in that order. The tree size
    is the largest size all three hold completely, so a process killed in the
    middle of an append leaves the previous state valid; the torn tail is
    ignored when reading (with a note) and cut off by the next append.

Checkpoints
    ``checkpoints/000001.txt``: a C2SP tlog-checkpoint (origin, decimal size,
    base64 root) in a C2SP signed note with Ed25519 signature lines
    (``— <name> base64(key hash ‖ signature)``, key hash = first four bytes of
    ``SHA-256(name ‖ LF ‖ 0x01 ‖ public key)``), and optionally
    ``000001-1.tsr``: an RFC 3161 TimeStampResp over the checkpoint file's bytes.

Every file under ``ledger/`` and every proof is treated as hostile: sizes are
bounded, parsing is strict, and what a person reads passes through
:func:`evidence.display.safe`.

Threat-model limits: a checkpoint proves what the log held when it was signed;
it cannot prove that nothing was captured and never logged before that, and
a log rewritten and re-signed by the key holder is only caught by someone
holding an earlier checkpoint (or its timestamp). Publishing checkpoints is
what turns the ledger into evidence.
"""

from __future__ import annotations

from evidence.errors import LedgerError, LedgerMismatchError
from evidence.ledger._base import (
    CONSISTENCY_FORMAT,
    EMPTY_ROOT,
    FORMAT,
    INCLUSION_FORMAT,
    LEDGER_DIR,
)
from evidence.ledger.merkle import (
    consistency_path,
    inclusion_path,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from evidence.ledger.note import (
    Checkpoint,
    NoteSignature,
    load_ledger_keys,
    note_key_hash,
    sign_note,
    verifier_key,
)
from evidence.ledger.proofs import (
    check_consistency,
    check_inclusion,
    consistency_proof,
    inclusion_proof,
)
from evidence.ledger.report import Finding, LedgerCheck, LedgerReport
from evidence.ledger.store import (
    AddResult,
    CheckpointResult,
    LeafEntry,
    Ledger,
    add_packages,
    append_if_present,
    has_ledger,
    init_ledger,
    make_checkpoint,
)
from evidence.ledger.verify import verify_ledger
from evidence.verifying.report import Status

__all__ = [
    "CONSISTENCY_FORMAT",
    "EMPTY_ROOT",
    "FORMAT",
    "INCLUSION_FORMAT",
    "LEDGER_DIR",
    "AddResult",
    "Checkpoint",
    "CheckpointResult",
    "Finding",
    "LeafEntry",
    "Ledger",
    "LedgerCheck",
    "LedgerError",
    "LedgerMismatchError",
    "LedgerReport",
    "NoteSignature",
    "Status",
    "add_packages",
    "append_if_present",
    "check_consistency",
    "check_inclusion",
    "consistency_path",
    "consistency_proof",
    "has_ledger",
    "inclusion_path",
    "inclusion_proof",
    "init_ledger",
    "leaf_hash",
    "load_ledger_keys",
    "make_checkpoint",
    "merkle_root",
    "node_hash",
    "note_key_hash",
    "sign_note",
    "verifier_key",
    "verify_consistency",
    "verify_inclusion",
    "verify_ledger",
]
