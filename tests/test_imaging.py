"""dlscratch.imaging: the bounded image loader and the MNIST-style preprocessing."""

import io
import os
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dlscratch.imaging import image_to_mnist, open_image, otsu_threshold, prepare_digit


def png_bomb(width=170_000, height=1000) -> bytes:
    """A valid grayscale PNG of width x height black pixels (about 170 KB), built row by row."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_a_png_bomb_is_refused_before_decoding_with_little_memory(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert bomb.stat().st_size < 250_000
    code = (
        "import resource, sys\n"
        "from dlscratch.imaging import open_image\n"
        "try:\n"
        f"    open_image({str(bomb)!r})\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        # VmHWM: this process's own peak; ru_maxrss would include the parent's at exec time
        "try:\n"
        "    status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "except (OSError, IndexError):\n"
        "    status = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    message, peak_kb = result.stdout.strip().splitlines()
    assert "170000x1000 pixels, more than the 50 million accepted" in message
    assert int(peak_kb) < 200_000  # decoding it would take 170 MB, and 5.4 GB as RGB floats


def test_limits_on_bytes_and_pixels(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (300, 200), 255).save(buf, "PNG")
    data = buf.getvalue()
    assert open_image(data).size == (300, 200)
    with pytest.raises(ValueError, match=r"300x200 pixels, more than the 0.05 million"):
        open_image(data, max_pixels=50_000)
    with pytest.raises(ValueError, match="more than the 100 bytes accepted"):
        open_image(data, max_bytes=100)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"big\.png: the file is .* more than"):
        open_image(path, max_bytes=100)


def test_fifo_and_devices_are_refused_without_waiting(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        try:
            open_image(fifo)
        except ValueError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "open_image waited on a FIFO"
    assert "is a FIFO (named pipe), not an image file" in outcome[0]
    with pytest.raises(ValueError, match="is a device, not an image file"):
        open_image("/dev/zero")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        open_image(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_image(tmp_path / "missing.png")


def test_broken_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        open_image(b"just some text")
    buf = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buf, "PNG")
    with pytest.raises(ValueError, match="cannot decode the image"):
        open_image(buf.getvalue()[:80], name="cut.png")
    with pytest.raises(ValueError, match="the file is empty"):
        open_image(b"")


def test_otsu_threshold_splits_two_groups():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(20, 5, 900), rng.normal(200, 10, 100)])
    assert 50 < otsu_threshold(values) < 170


def mnist_like_digit():
    """A 7 drawn with strokes: white on black, 28x28-ish proportions."""
    img = Image.new("L", (60, 80), 0)
    ImageDraw.Draw(img).line([(8, 10), (52, 10), (25, 72)], fill=255, width=8)
    return np.asarray(img, dtype=np.float64) / 255


def photo(ink, size=(220, 180), at=(150, 40), gradient=120.0, dark_ink=True, seed=0):
    """``ink`` on a page with a lighting gradient and noise, placed off-centre."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    page = 200 + gradient * (np.linspace(-0.5, 0.5, w)[None, :] + 0 * np.arange(h)[:, None])
    if not dark_ink:
        page = 255 - page
    cover = np.zeros((h, w))
    cover[at[1] : at[1] + ink.shape[0], at[0] : at[0] + ink.shape[1]] = ink
    level = 30.0 if dark_ink else 230.0
    return np.clip(page * (1 - cover) + level * cover + rng.normal(0, 3, (h, w)), 0, 255)


def test_a_digit_under_uneven_light_comes_out_as_mnist_would():
    ink = mnist_like_digit()
    for dark_ink in (True, False):
        digit = prepare_digit(photo(ink, dark_ink=dark_ink))
        assert not digit.blank and digit.components == 1 and digit.inverted is dark_ink
        assert digit.pixels.shape == (784,) and digit.pixels.dtype == np.float32
        img = digit.image
        assert img.max() == pytest.approx(1.0) and img.min() == 0
        # fits the 20x20 box, centre of mass in the middle, background black
        rows = np.flatnonzero(img.max(axis=1) > 0.1)
        cols = np.flatnonzero(img.max(axis=0) > 0.1)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)
        cy = (img.sum(axis=1) @ np.arange(28)) / img.sum()
        cx = (img.sum(axis=0) @ np.arange(28)) / img.sum()
        assert abs(cy - 14) < 1 and abs(cx - 14) < 1
        assert img[:3].max() < 0.05 and img[:, :3].max() < 0.05
        left, top, right, bottom = digit.box
        assert 140 <= left <= 160 and 30 <= top <= 50 and 190 <= right <= 220
        # the same shape as the clean digit scaled into 28x28
        clean = prepare_digit(ink * 255).image
        assert best_match(clean, img) > 0.9


def best_match(a, b):
    """Correlation of two 28x28 images, allowing a shift of one pixel (centring rounds)."""
    return max(
        np.corrcoef(np.roll(a, (dy, dx), axis=(0, 1)).ravel(), b.ravel())[0, 1]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def test_blank_pages_and_specks_are_not_digits():
    rng = np.random.default_rng(1)
    for level in (230, 160, 40):
        page = level + 60 * np.linspace(-0.5, 0.5, 200)[None, :] + rng.normal(0, 4, (150, 200))
        digit = prepare_digit(np.clip(page, 0, 255))
        assert digit.blank and digit.components == 0 and not digit.pixels.any()
    assert not image_to_mnist(np.full((40, 30), 200.0)).any()
    page = np.full((300, 300), 220.0)
    page[100:102, 50:52] = 30  # a speck of dust
    assert prepare_digit(page).blank


def test_several_digits_and_a_digit_in_two_strokes():
    ink = mnist_like_digit()
    pair = np.concatenate([ink, np.zeros((80, 20)), ink], axis=1)
    assert prepare_digit(photo(pair, at=(40, 40))).components == 2
    five = Image.new("L", (60, 80), 0)  # a 5 whose top bar is drawn apart from its body
    draw = ImageDraw.Draw(five)
    draw.line([(20, 8), (50, 8)], fill=255, width=7)
    draw.line([(15, 18), (12, 38)], fill=255, width=7)
    draw.arc([(8, 30), (52, 74)], 250, 150, fill=255, width=7)
    digit = prepare_digit(photo(np.asarray(five) / 255))
    assert digit.components == 1


def test_transparent_background_and_colour(tmp_path):
    ink = (mnist_like_digit() * 255).astype(np.uint8)
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[..., 3] = ink  # the strokes only in the alpha channel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    from_alpha = prepare_digit(open_image(tmp_path / "t.png"))
    reference = prepare_digit(ink.astype(np.float64))
    assert best_match(from_alpha.image, reference.image) > 0.95
    rgb = np.stack([255 - ink, 255 - ink // 2, np.full_like(ink, 255)], axis=-1)  # blue ink
    coloured = prepare_digit(rgb)
    assert coloured.inverted and best_match(coloured.image, reference.image) > 0.9
    with pytest.raises(ValueError, match="invert must be"):
        prepare_digit(ink, invert="maybe")


def flood_fill_labels(mask):
    """Reference labelling: 8-neighbour flood fill from each unlabelled pixel, row by row."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    count = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        count += 1
        labels[y0, x0] = count
        stack = [(y0, x0)]
        while stack:
            y, x = stack.pop()
            for ny in range(max(y - 1, 0), min(y + 2, mask.shape[0])):
                for nx in range(max(x - 1, 0), min(x + 2, mask.shape[1])):
                    if mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        stack.append((ny, nx))
    return labels, count


def test_connected_components_match_a_flood_fill():
    from dlscratch.imaging import _label

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(1, 30, 2)
        mask = rng.random((h, w)) < rng.random()
        labels, count = _label(mask)
        expected, n = flood_fill_labels(mask)
        assert count == n and np.array_equal(labels, expected)


def test_a_large_photo_gives_the_digit_of_its_smaller_copy():
    ink = mnist_like_digit()
    small = Image.fromarray(photo(ink).astype(np.uint8)).convert("RGB")
    large = small.resize((small.width * 12, small.height * 12), Image.BICUBIC)  # 2640x2160
    a, b = prepare_digit(small), prepare_digit(large)
    assert (b.blank, b.components, b.inverted) == (False, 1, True)
    assert best_match(a.image, b.image) > 0.95
    assert all(abs(p * 12 - q) <= 24 for p, q in zip(a.box, b.box))  # the box in its pixels
