"""A corpus of hostile and unusual image files, built in memory (no binary fixtures in the repository)."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "photos" / "chelsea.png"


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    data: bytes
    readable: bool  # True: a correct result is expected; False: one clear message


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _photo(size: tuple[int, int] | None = None) -> Image.Image:
    image = Image.open(PHOTO).convert("RGB")
    return image.resize(size) if size else image


def _png_bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of ``width x height`` zeros: a few kilobytes on disk, gigabytes once decoded as RGB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """The photo stored sideways with EXIF orientation 6 ("rotate 90 degrees clockwise to display")."""
    stored = _photo().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(stored, "JPEG", quality=95, exif=exif)


def build_cases() -> list[Case]:
    photo = _photo()
    jpeg = _encode(photo, "JPEG", quality=90)
    png = _encode(photo, "PNG")
    gray16 = Image.fromarray((np.linspace(0, 65535, 128 * 96).reshape(96, 128)).astype(np.uint16))
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    frames = [_photo((160, 120)), Image.new("RGB", (160, 120), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    tiff = io.BytesIO()
    frames[0].save(tiff, "TIFF", save_all=True, append_images=frames[1:])
    huge = _encode(_photo((7000, 4700)), "JPEG", quality=85)
    floats = Image.fromarray(np.random.default_rng(0).random((64, 80)).astype(np.float32) * 1000.0, mode="F")
    return [
        Case("zero-byte file", "empty.png", b"", False),
        Case("truncated JPEG", "truncated.jpg", jpeg[: len(jpeg) // 2], False),
        Case("truncated PNG", "truncated.png", png[: len(png) // 2], False),
        Case("text renamed .png", "notes.png", b"just some notes, not a picture\n" * 20, False),
        Case(
            "HTML renamed .png",
            "page.png",
            b"<!doctype html><html><body><script>alert(1)</script></body></html>",
            False,
        ),
        Case("SVG", "drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', False),
        Case("PDF renamed .png", "doc.png", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", False),
        Case("random bytes", "noise.jpg", np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes(), False),
        Case("PNG header only", "header.png", png[:40], False),
        Case("decompression bomb", "bomb.png", _png_bomb(20_000, 20_000), False),
        Case("1x1 image", "dot.png", _encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"), True),
        Case("3x3 image", "tiny.png", _encode(_photo((3, 3)), "PNG"), True),
        Case("30000x10 image", "wide.png", _encode(Image.new("RGB", (30_000, 10), (90, 120, 200)), "PNG"), True),
        Case("10x30000 image", "tall.png", _encode(Image.new("RGB", (10, 30_000), (200, 120, 90)), "PNG"), True),
        Case("16-bit grayscale", "gray16.png", _encode(gray16, "PNG"), True),
        Case("CMYK JPEG", "cmyk.jpg", _encode(photo.convert("CMYK"), "JPEG"), True),
        Case("palette with transparency", "palette.png", _encode(palette, "PNG"), True),
        Case("LA (gray + alpha)", "la.png", _encode(photo.convert("LA"), "PNG"), True),
        Case("RGBA", "rgba.png", _encode(rgba, "PNG"), True),
        Case("animated GIF", "anim.gif", gif.getvalue(), True),
        Case("multi-page TIFF", "pages.tiff", tiff.getvalue(), True),
        Case("EXIF-rotated JPEG", "rotated.jpg", exif_rotated_jpeg(), True),
        Case("constant black", "black.png", _encode(Image.new("RGB", (300, 200), (0, 0, 0)), "PNG"), True),
        Case("constant white", "white.png", _encode(Image.new("RGB", (300, 200), (255, 255, 255)), "PNG"), True),
        Case("huge valid photo (7000x4700)", "huge.jpg", huge, True),
        Case("32-bit float TIFF", "float.tiff", _encode(floats, "TIFF"), True),
        Case("WebP", "photo.webp", _encode(photo, "WEBP"), True),
        Case("PNG named .jpg", "actually_png.jpg", png, True),
    ]


def write_cases(folder: Path) -> list[tuple[Case, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for case in build_cases():
        path = folder / case.filename
        path.write_bytes(case.data)
        written.append((case, path))
    return written
