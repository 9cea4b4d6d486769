from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "fuzz"))


from evidence.capturing import CaptureOptions, capture
from evidence.keys import generate_keypair, key_id, public_key_pem

from judge_tools import ToolsUnavailable, ensure_tools
from servers import LocalCA, RawServer, Site

# "ci" keeps the property and fuzz passes short and bounded; "fuzz" is for long
# local runs: HYPOTHESIS_PROFILE=fuzz python -m pytest tests/fuzz tests/property
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=50_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PAGE = (
    b"<!DOCTYPE html><html><head><title>Statement</title></head>"
    b"<body><p>Nothing happened.</p></body></html>\n"
)


@pytest.fixture
def raw_server() -> typing.Iterator[typing.Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(responder: typing.Any) -> RawServer:
        s = RawServer(responder)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def site() -> typing.Iterator[typing.Callable[..., Site]]:
    sites: list[Site] = []

    def make(
        routes: dict[str, typing.Any], tls: typing.Any = None, slow: typing.Any = None
    ) -> Site:
        s = Site(routes, tls, slow)
        sites.append(s)
        return s

    yield make
    for s in sites:
        s.close()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def signer(tmp_path_factory: pytest.TempPathFactory) -> typing.Any:
    """A real Ed25519 key, with its public key written to a file."""
    key = generate_keypair()
    d = tmp_path_factory.mktemp("signer")
    pub = d / "signer.pub"
    pub.write_bytes(public_key_pem(key.public_key()))
    return type("Signer", (), {"key": key, "pub": pub, "kid": key_id(key.public_key())})


@pytest.fixture(scope="session")
def sealed_package(tmp_path_factory: pytest.TempPathFactory, signer: typing.Any) -> Path:
    """One real signed package, captured from a local site; copy it before changing it."""
    routes = {
        "/": (200, [("Content-Type", "text/html; charset=utf-8")], PAGE),
        "/old": (301, [("Location", "/")], b"moved\n"),
    }
    s = Site(routes)
    try:
        out = tmp_path_factory.mktemp("sealed")
        result = capture(s.url("/old"), out=out, options=CaptureOptions(), sign_with=[signer.key])
    finally:
        s.close()
    return Path(result.path)


@pytest.fixture
def package_copy(sealed_package: Path, tmp_path: Path) -> Path:
    dest = tmp_path / sealed_package.name
    shutil.copytree(sealed_package, dest)
    return dest


@pytest.fixture(scope="session")
def judge_tools() -> Path:
    """``bin/`` of a separate, cached venv holding pywb (tests/judge_tools.py).

    Never a silent skip: if the venv cannot be made, every test that needs
    it FAILS and says why.
    """
    try:
        return ensure_tools()
    except ToolsUnavailable as exc:
        pytest.fail(f"cannot make the judge-tools venv: {exc}", pytrace=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> typing.Iterator[typing.Callable[[str], Path]]:
    """``tmpfs("6m")`` mounts a real file system of that size (so ENOSPC comes
    from the kernel) and returns its directory; every one is unmounted after."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0 or not shutil.which("mount"):
            pytest.skip("mounting a tmpfs needs root")
        where = tmp_path / f"tmpfs-{len(mounts)}"
        where.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace')}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=True)


class Run(typing.NamedTuple):
    """What one in-process run of the CLI gave: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    def json(self) -> typing.Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> typing.Callable[..., Run]:
    """``cli("verify", path, ...)`` runs ``evidence`` in this process and returns a :class:`Run`."""
    from evidence.cli import main

    def run(*argv: object) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run
