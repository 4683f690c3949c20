"""A visitor's zip of images: the three layouts it may have, and every hostile kind refused in one sentence with
nothing written anywhere (the test lists the file system around the target folder before and after)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from resnet_core.data import cifar10
from resnet_core.data.archives import ArchiveLimits, unpack_images

CLASSES = cifar10.CLASSES


def png(index: int) -> bytes:
    """CIFAR-10 test image ``index`` of the shipped subset as PNG bytes."""
    images, _, _ = cifar10.load_subset()
    buffer = io.BytesIO()
    Image.fromarray(images[index]).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def test_class_folders_become_labelled_images(tmp_path):
    _, labels, _ = cifar10.load_subset()
    members = {f"mine/{CLASSES[labels[i]]}/{i}.png": png(i) for i in range(8)}
    members["mine/notes.txt"] = b"taken on a Tuesday"
    unpacked = unpack_images(make_zip(tmp_path / "mine.zip", members), tmp_path / "session" / "data")
    assert unpacked.layout == "class folders" and len(unpacked.source) == 8
    assert sorted(unpacked.source.labels) == sorted(CLASSES[labels[i]] for i in range(8))
    assert unpacked.skipped == {"files that are not images": 1}
    assert unpacked.describe() == "8 images, class folders (1 files that are not images skipped)"
    assert unpacked.source.image(0).size == (32, 32)


def test_flat_images_with_a_csv_of_labels_and_without(tmp_path):
    members = {f"{i}.png": png(i) for i in range(4)}
    labelled = {**members, "labels.csv": b"path,label\n0.png,cat\n1.png,ship\n2.png,3\n3.png,\n"}
    unpacked = unpack_images(make_zip(tmp_path / "a.zip", labelled), tmp_path / "a")
    assert unpacked.layout == "images and a CSV of labels" and unpacked.source.labels == ("cat", "ship", 3, None)
    bare = unpack_images(make_zip(tmp_path / "b.zip", members), tmp_path / "b")
    assert bare.layout == "images without labels" and bare.source.labels == (None,) * 4


def hostile(tmp_path: Path) -> list[tuple[str, Path, str, ArchiveLimits]]:
    """(what, zip, the sentence it gets, limits)."""
    loose = ArchiveLimits()
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("huge.png", b"\0" * (64 * 2**20))
    (tmp_path / "bomb.zip").write_bytes(bomb.getvalue())
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 but not really a zip")
    (tmp_path / "empty.zip").write_bytes(make_zip(tmp_path / "e.zip", {}).read_bytes())
    return [
        ("traversal", make_zip(tmp_path / "t.zip", {"../evil.png": png(0)}), "outside its own folder", loose),
        ("absolute", make_zip(tmp_path / "a.zip", {"/tmp/evil.png": png(0)}), "by an absolute path", loose),
        ("drive", make_zip(tmp_path / "d.zip", {"C:/evil.png": png(0)}), "by an absolute path", loose),
        ("symlink", make_zip(tmp_path / "s.zip", {"0.png": png(0)}, links=("link.png",)), "symbolic link", loose),
        ("bomb", tmp_path / "bomb.zip", "times its size (a zip bomb)", loose),
        ("not a zip", tmp_path / "fake.zip", "is not a zip archive", loose),
        ("empty", tmp_path / "empty.zip", "holds no images", loose),
        (
            "nothing but others",
            make_zip(tmp_path / "n.zip", {"inner.zip": b"PK", "a.txt": b"x"}),
            "holds no images (only archives inside the zip (not opened), files that are not images)",
            loose,
        ),
        (
            "too many",
            make_zip(tmp_path / "m.zip", {f"{i}.png": png(i) for i in range(4)}),
            "holds 4 images; an upload is at most 3 images",
            ArchiveLimits(images=3),
        ),
        (
            "too big zipped",
            make_zip(tmp_path / "z.zip", {f"{i}.png": png(i) for i in range(4)}),
            "an upload is at most 5,000 images, 1 KB zipped and 1 GB unpacked",
            ArchiveLimits(zip_bytes=1024),
        ),
        (
            "too big unpacked",
            make_zip(tmp_path / "u.zip", {f"{i}.png": png(i) for i in range(4)}),
            "KB; an upload is at most 5,000 images, 200 MB zipped and 2 KB unpacked",
            ArchiveLimits(unpacked_bytes=2048),
        ),
        (
            "csv of absent files",
            make_zip(tmp_path / "c.zip", {"0.png": png(0), "l.csv": b"path,label\n0.png,cat\nmissing.png,dog\n"}),
            "a CSV naming 1 file(s) the zip does not hold (first: missing.png)",
            loose,
        ),
        (
            "csv reaching out",
            make_zip(tmp_path / "o.zip", {"0.png": png(0), "l.csv": b"path,label\n/etc/hostname,cat\n"}),
            "a CSV naming 1 file(s) outside the zip (first: /etc/hostname)",
            loose,
        ),
    ]


def test_every_hostile_zip_is_one_sentence_and_writes_nothing(tmp_path):
    zips = tmp_path / "zips"
    zips.mkdir()
    cases = hostile(zips)
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    before = tree(tmp_path)
    for what, archive, sentence, limits in cases:
        with pytest.raises(ValueError) as refused:
            unpack_images(archive, sessions / what, limits)
        message = str(refused.value)
        assert sentence in message and "\n" not in message, (what, message)
        assert tree(tmp_path) == before, what  # no session folder left, nothing beside or above it
    assert not (Path("/tmp") / "evil.png").exists() and not (tmp_path / "evil.png").exists()


def test_the_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_IMAGES", "50")
    monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_ZIP_MB", "20")
    monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_UNPACKED_MB", "100")
    limits = ArchiveLimits.from_env()
    assert (limits.images, limits.zip_bytes, limits.unpacked_bytes) == (50, 20 * 2**20, 100 * 2**20)
    assert limits.describe() == "at most 50 images, 20 MB zipped and 100 MB unpacked"
