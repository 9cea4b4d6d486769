"""The sealed operator: name and organization encrypted to legal teams' age keys.

Pure: values in, values out (docs/sealing.md). :func:`seal_operator` turns an
:class:`~evidence.manifest.Operator` into one that holds only a
:class:`~evidence.manifest.SealedOperator`: an ASCII-armored age file
(https://age-encryption.org/v1) that ``age -d -i KEY`` opens by hand once it
is taken out of the manifest. The plaintext inside is a small JSON object::

    {"created": ..., "name": ..., "organization": ..., "package_id": ...,
     "padding": "   ...", "type": "evidence-sealed-operator/1", "warc_sha256": ...}

padded with spaces (``padding``) to a multiple of :data:`PAD_TO` bytes, so
the blob's size does not give the name's length away (blobs sealed before
padding existed have no ``padding`` and still open).

The package id, creation time and the WARC's SHA-256 bind the identity to
one package and its evidence: the signature covers the ciphertext, so it
cannot be changed, and :func:`unseal_operator` refuses a blob that names
another package or another WARC (:class:`~evidence.errors.SealBindingError`),
so it cannot be moved either, not even by a signer who copies the package id
and creation time onto a capture of their own.

Threat-model limits, said where they apply:

- Only age X25519 recipients (``age1...``) are accepted. An SSH recipient
  would work with both pyrage and ``age``, but its stanza carries a tag of
  the SSH key, and SSH public keys are often published (``github.com/NAME.keys``):
  anyone could then tell which legal team can open the seal. Say so rather
  than allow it.
- The recipients' public keys are listed in the manifest (a legal team sees
  which packages are for it); so can anyone else who holds the package.
- What is sealed is the name and organization only: the user agent, the
  timing, the server's view of the capturing network and the custody log's
  other events are not (docs/sealing.md lists them).

Encryption and decryption need ``pyrage`` (the ``seal`` extra); reading the
structure of a sealed blob (:func:`inspect_sealed`) needs nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import typing

import attrs

from evidence.errors import ManifestError, PackageError, SealBindingError, SealError, UsageError
from evidence.manifest import (
    MAX_LABEL_CHARS,
    MAX_SEAL_RECIPIENTS,
    MAX_SEALED_CHARS,
    Manifest,
    Operator,
    SealedOperator,
    dumps,
    strict_loads,
)

if typing.TYPE_CHECKING:
    import pyrage

__all__ = [
    "INSTALL_HINT",
    "MAX_IDENTITY_FILE_BYTES",
    "PAD_TO",
    "SEALED_FORMAT",
    "SEALED_TYPE",
    "UnsealedOperator",
    "check_recipients",
    "inspect_sealed",
    "load_identities",
    "operator_text",
    "parse_recipients",
    "seal_operator",
    "unseal_operator",
]

SEALED_FORMAT = "age"
SEALED_TYPE = "evidence-sealed-operator/1"
INSTALL_HINT = "sealing the operator needs pyrage: pip install 'evidence-archive[seal]'"
# An age identity file holds a few keys and comments; ours are under 200 bytes.
MAX_IDENTITY_FILE_BYTES = 64 * 1024
# The sealed JSON is padded with spaces to a multiple of this many bytes, so
# every name and organization under about 650 bytes together seals to the
# same size.
PAD_TO = 1024
# The sealed JSON: two fields of at most MAX_LABEL_CHARS characters (4 UTF-8
# bytes each at most), a few short ones, and the padding.
_MAX_PLAINTEXT_BYTES = 2 * 4 * MAX_LABEL_CHARS + 2 * PAD_TO

# An age X25519 recipient: "age1" and 58 lowercase bech32 characters.
_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
_IDENTITY = re.compile(r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}")
_ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
_ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
_AGE_VERSION = b"age-encryption.org/v1"
_B64_LINE = re.compile(r"[A-Za-z0-9+/]{1,64}={0,2}")


def _pyrage() -> typing.Any:
    try:
        import pyrage
    except ImportError as exc:
        raise UsageError(INSTALL_HINT) from exc
    return pyrage


# --- recipients and sealing ----------------------------------------------------


def parse_recipients(values: typing.Sequence[str]) -> tuple[str, ...]:
    """The age X25519 recipients given, checked, in order, each once.

    Raises:
        UsageError: none given, too many, or one that is not an ``age1...``
            X25519 public key (an SSH key is refused, and the message says why).
    """
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for raw in values:
        if not isinstance(raw, str):
            raise UsageError(f"an age recipient is text (age1...), not {type(raw).__name__}")
        value = raw.strip()
        if value.upper().startswith("AGE-SECRET-KEY-"):
            # Never echoed: an error line ends up in terminals, logs and CI output.
            raise UsageError(
                "that is an age identity (a secret key), not a recipient: give its public "
                "key (age-keygen -y FILE), and keep the identity where it was"
            )
        if value.startswith(("ssh-", "ecdsa-", "sk-")):
            raise UsageError(
                "SSH recipients are not accepted for sealing: their age stanza names "
                "the SSH key, which is often public; make an age key with age-keygen "
                "and give its public key (age1...)"
            )
        if not _RECIPIENT.fullmatch(value):
            raise UsageError(
                f"not an age X25519 recipient: {value[:80]!r} "
                "(expected age1 and 58 more characters, as age-keygen -y prints)"
            )
        if value not in out:
            out.append(value)
    if not out:
        raise UsageError("give at least one age recipient (age1...) to seal the operator to")
    if len(out) > MAX_SEAL_RECIPIENTS:
        raise UsageError(f"at most {MAX_SEAL_RECIPIENTS} recipients for a sealed operator")
    return tuple(out)


def _recipient_objects(recipients: typing.Sequence[str]) -> list[pyrage.x25519.Recipient]:
    age = _pyrage()
    objects = []
    for value in recipients:
        try:
            objects.append(age.x25519.Recipient.from_str(value))
        except age.RecipientError as exc:
            # The pattern matched but the bech32 checksum did not: a typo.
            raise UsageError(f"not a valid age recipient: {value!r} ({exc})") from exc
    return objects


def check_recipients(values: typing.Sequence[str]) -> tuple[str, ...]:
    """:func:`parse_recipients` plus pyrage's own check (the bech32 checksum).

    Raises:
        UsageError: as :func:`parse_recipients`, a bad checksum, or no pyrage.
    """
    recipients = parse_recipients(values)
    _recipient_objects(recipients)
    return recipients


def seal_operator(
    operator: Operator,
    recipients: typing.Sequence[str],
    *,
    package_id: str,
    created: str,
    warc_sha256: str | None = None,
) -> Operator:
    """An operator holding only the sealed form of ``operator``'s name and organization.

    Args:
        operator: who captured (plaintext; at least a name or an organization).
        recipients: age X25519 public keys (``age1...``) that may open it.
        package_id: the package the identity is bound to.
        created: that package's creation time, as the manifest records it.
        warc_sha256: the SHA-256 (hex) of the package's WARC, which binds the
            identity to the evidence itself: a package id and a time can be
            copied onto another capture by whoever signs it, the WARC's hash
            cannot. Capture seals once more with it when the WARC is complete.

    Raises:
        UsageError: nothing to seal, a field too long, a bad recipient, or no pyrage.
    """
    if operator.sealed is not None:
        raise UsageError("this operator is already sealed")
    if not operator.name and not operator.organization:
        raise UsageError("nothing to seal: give the operator's name or organization")
    for value in (operator.name, operator.organization):
        if value is not None and len(value) > MAX_LABEL_CHARS:
            raise UsageError(
                f"a sealed operator's name and organization hold at most {MAX_LABEL_CHARS} "
                "characters"
            )
    recipients = parse_recipients(recipients)
    objects = _recipient_objects(recipients)
    content: dict[str, str | None] = {
        "type": SEALED_TYPE,
        "package_id": package_id,
        "created": created,
        "name": operator.name,
        "organization": operator.organization,
        "padding": "",
    }
    if warc_sha256 is not None:
        content["warc_sha256"] = warc_sha256
    # age does not pad: without this the blob's size would give the name's
    # length away, and with it a short list of candidates. Spaces are one
    # byte each in the JSON, so the padded size is exact.
    size = len(dumps(content))
    content["padding"] = " " * (-size % PAD_TO)
    plaintext = dumps(content)
    age = _pyrage()
    try:
        armored = age.encrypt(plaintext, objects, armored=True)
    except age.EncryptError as exc:  # pragma: no cover - X25519 encryption does not fail
        raise SealError(f"cannot seal the operator: {exc}") from exc
    sealed = SealedOperator(
        format=SEALED_FORMAT, recipients=recipients, ciphertext=armored.decode("ascii")
    )
    inspect_sealed(sealed)  # what we write, we must be able to read back
    return Operator(sealed=sealed)


# --- reading a sealed blob -----------------------------------------------------


def _malformed(detail: str) -> SealError:
    return SealError(f"the sealed operator is malformed: {detail}")


def _dearmor(text: str) -> bytes:
    """The binary age file inside the armor; strict as age's own reader is."""
    if len(text) > MAX_SEALED_CHARS:
        raise _malformed(f"{len(text)} characters, more than {MAX_SEALED_CHARS}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 3 or lines[0] != _ARMOR_BEGIN or lines[-1] != _ARMOR_END:
        raise _malformed("not an ASCII-armored age file (no BEGIN/END AGE ENCRYPTED FILE lines)")
    body = lines[1:-1]
    for i, line in enumerate(body):
        last = i == len(body) - 1
        if not _B64_LINE.fullmatch(line) or (not last and len(line) != 64):
            raise _malformed(f"armor line {i + 2} is not 64 columns of base64")
    try:
        return base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _malformed(f"the armor is not valid base64 ({exc})") from exc


def inspect_sealed(sealed: SealedOperator) -> int:
    """Check a sealed operator's structure; return how many X25519 stanzas its header has.

    No key is needed and nothing is decrypted: this reads the armor and the
    age header only, so ``show`` and ``verify`` can say a blob is malformed.
    The count must equal the listed recipients (age also adds a random
    "grease" stanza of another type, which is ignored).

    Raises:
        SealError: an unknown format, broken armor, not an age v1 file, a
            header without its MAC line, or a stanza count that does not
            match the listed recipients.
    """
    if sealed.format != SEALED_FORMAT:
        raise _malformed(f"unknown format {sealed.format!r} (this software reads 'age')")
    binary = _dearmor(sealed.ciphertext)
    lines = binary.split(b"\n")
    if lines[0] != _AGE_VERSION:
        raise _malformed(
            "not an age v1 file (the header does not start with age-encryption.org/v1)"
        )
    x25519 = 0
    for line in lines[1:]:
        if line.startswith(b"---"):
            if not line.startswith(b"--- ") or len(line) < 5:
                break
            if x25519 != len(sealed.recipients):
                raise _malformed(
                    f"the header has {x25519} X25519 stanza(s) for "
                    f"{len(sealed.recipients)} listed recipient(s)"
                )
            return x25519
        if line.startswith(b"-> X25519 "):
            x25519 += 1
    raise _malformed("the age header has no MAC line")


@attrs.frozen
class UnsealedOperator:
    """A sealed operator opened with an identity, bound to its package.

    Attributes:
        package_id: the package the sealed identity names (equal to the manifest's).
        created: the creation time it names (equal to the manifest's).
        name: the operator's name, if one was sealed (untrusted text: show it
            through :func:`evidence.display.safe`).
        organization: the organization, if one was sealed (untrusted text too).
        opened_by: the recipient (public key) whose identity opened it.
        bound_to_warc: the sealed content also names the WARC's SHA-256, and
            it matches the manifest's (older blobs name only the id and time).
        warnings: problems that do not stop the reading (the opening key is
            not among the listed recipients).
    """

    package_id: str
    created: str
    name: str | None
    organization: str | None
    opened_by: str
    bound_to_warc: bool = False
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "package_id": self.package_id,
            "created": self.created,
            "name": self.name,
            "organization": self.organization,
            "opened_by": self.opened_by,
            "binding": (
                "checked: package id, creation time and WARC SHA-256 match the manifest"
                if self.bound_to_warc
                else "checked: package id and creation time match the manifest "
                "(this blob does not name the WARC)"
            ),
            "warnings": list(self.warnings),
        }


def load_identities(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The age X25519 identities (``AGE-SECRET-KEY-1...``) in an identity file.

    The file is read as age reads one: one key per line, blank lines and
    ``#`` comments ignored (what ``age-keygen -o`` writes).

    Raises:
        SealError: the file cannot be read, is not a regular file, is too big,
            or holds no usable identity (passphrase-protected identity files
            and SSH keys are not read: use ``age -d`` by hand for those).
    """
    from evidence.package import read_regular_file

    try:
        raw = read_regular_file(path, MAX_IDENTITY_FILE_BYTES)
    except PackageError as exc:
        raise SealError(f"identity file: {exc}") from exc
    if raw.startswith(b"age-encryption.org/") or _ARMOR_BEGIN.encode() in raw:
        raise SealError(
            f"{path} is a passphrase-protected identity file; open the sealed blob "
            "with 'age -d -i' by hand (docs/sealing.md)"
        )
    if b"PRIVATE KEY-----" in raw:
        raise SealError(f"{path} is not an age identity file (sealed operators use age keys)")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SealError(f"{path} is not an age identity file (not ASCII text)") from exc
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _IDENTITY.fullmatch(line):
            raise SealError(f"{path} line {number} is not an age identity (AGE-SECRET-KEY-1...)")
        keys.append(line)
    if not keys:
        raise SealError(f"{path} holds no age identity (AGE-SECRET-KEY-1...)")
    return tuple(keys)


def _identity_objects(identities: typing.Sequence[str]) -> list[typing.Any]:
    age = _pyrage()
    objects = []
    for i, value in enumerate(identities, 1):
        if not isinstance(value, str) or not _IDENTITY.fullmatch(value.strip()):
            raise SealError(f"identity {i} is not an age identity (AGE-SECRET-KEY-1...)")
        try:
            objects.append(age.x25519.Identity.from_str(value.strip()))
        except age.IdentityError as exc:
            raise SealError(f"identity {i} is not a valid age identity ({exc})") from exc
    if not objects:
        raise SealError("no identity given to open the sealed operator")
    return objects


def unseal_operator(manifest: Manifest, identities: typing.Sequence[str]) -> UnsealedOperator:
    """Open a manifest's sealed operator with age identities and check its binding.

    This verifies nothing else: a sealed operator read from a package that
    does not verify is only what that package says.

    Args:
        manifest: a parsed manifest (``Manifest.from_bytes``).
        identities: age identity strings (from :func:`load_identities`).

    Raises:
        SealError: no sealed operator, a malformed blob, no identity that
            opens it, or a plaintext that is not a sealed operator.
        SealBindingError: it opened, but names another package or creation time.
    """
    operator = manifest.operator
    if operator is None or operator.sealed is None:
        raise SealError("this package has no sealed operator")
    sealed = operator.sealed
    inspect_sealed(sealed)
    objects = _identity_objects(identities)
    age = _pyrage()
    binary = _dearmor(sealed.ciphertext)
    plaintext = None
    opened_by = ""
    # One identity at a time, so we know which one opened it.
    for identity in objects:
        try:
            plaintext = age.decrypt(binary, [identity])
        except age.DecryptError as exc:
            if "No matching keys" in str(exc):
                continue
            raise _malformed(f"age cannot decrypt it ({exc})") from exc
        opened_by = str(identity.to_public())
        break
    if plaintext is None:
        raise SealError(
            f"none of the {len(objects)} identity key(s) given opens this sealed operator "
            f"(sealed to {len(sealed.recipients)} recipient(s))"
        )
    content = _parse_plaintext(plaintext)
    if content["package_id"] != manifest.package_id or content["created"] != manifest.created:
        raise SealBindingError(
            "the sealed operator was made for package "
            f"{content['package_id']!r} created {content['created']!r}, not for this one "
            f"({manifest.package_id!r} created {manifest.created!r}): it was moved here "
            "from another package"
        )
    warnings: list[str] = []
    sealed_warc = content.get("warc_sha256")
    if sealed_warc is not None:
        warc = next((f.sha256 for f in manifest.files if f.path == manifest.warc_path), None)
        if sealed_warc != warc:
            raise SealBindingError(
                "the sealed operator was sealed for other evidence (a WARC with SHA-256 "
                f"{sealed_warc[:64]!r}, not this package's {warc!r}): it was moved here, "
                "with the package id and creation time, onto another capture"
            )
    else:
        warnings.append(
            "this sealed operator names only the package id and creation time, not the "
            "WARC (it was sealed before that binding existed): whoever can sign could "
            "have copied it, with them, onto another capture"
        )
    if opened_by not in sealed.recipients:
        warnings.append(
            f"the key that opened it ({opened_by}) is not among the recipients the manifest lists"
        )
    return UnsealedOperator(
        package_id=content["package_id"],
        created=content["created"],
        name=content["name"],
        organization=content["organization"],
        opened_by=opened_by,
        bound_to_warc=sealed_warc is not None,
        warnings=tuple(warnings),
    )


def _parse_plaintext(plaintext: bytes) -> dict[str, typing.Any]:
    try:
        data = strict_loads(plaintext, what="sealed operator", max_bytes=_MAX_PLAINTEXT_BYTES)
    except ManifestError as exc:
        raise _malformed(str(exc)) from exc
    if not isinstance(data, dict) or data.get("type") != SEALED_TYPE:
        raise _malformed(f"the decrypted content is not a {SEALED_TYPE} object")
    for key in ("package_id", "created"):
        if not isinstance(data.get(key), str):
            raise _malformed(f"the decrypted content has no {key}")
    for key in ("name", "organization", "warc_sha256"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _malformed(f"the decrypted {key} is not text")
        data.setdefault(key, None)
    return data


# --- words for people ------------------------------------------------------------


def operator_text(operator: Operator | None) -> str | None:
    """How a report names the operator: ``name / organization``, or that it is sealed.

    Untrusted text (it comes from the package): show it through
    :func:`evidence.display.safe` or escape it.
    """
    if operator is None:
        return None
    if operator.sealed is not None:
        n = len(operator.sealed.recipients)
        text = f"operator identity sealed to {n} recipient{'' if n == 1 else 's'}"
        try:
            inspect_sealed(operator.sealed)
        except SealError as exc:
            return f"{text} ({exc})"
        return text
    return operator.label
