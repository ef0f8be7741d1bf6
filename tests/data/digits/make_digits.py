"""Make the stand-in "photographed" digits in this folder (run it to regenerate them).

These are not real photographs: each image is a digit (an MNIST *test* digit, a
digit typed in a font, or one drawn as pen strokes) placed small and off-centre
on a synthetic background that imitates a photo: paper with a lighting gradient,
a soft shadow, a grey whiteboard, a dark chalkboard, sensor noise, blur and JPEG
compression. A few images hold no digit, one holds two. ``labels.csv`` lists
every file with its expected answer (a digit, ``none`` or ``several``) and how
it was made.

    DLSCRATCH_DATA=/path/to/datasets python tests/data/digits/make_digits.py

Everything is drawn from one seeded generator, so the files are reproducible
(given the same Pillow and fonts).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
SEED = 2024
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Oblique.ttf",
)

# Pen strokes for each digit, as polylines in a unit box (x right, y down).
_T = np.linspace(0, 1, 24)


def _arc(cx, cy, rx, ry, a0, a1, n=24):
    a = np.radians(np.linspace(a0, a1, n))
    return list(zip(cx + rx * np.cos(a), cy + ry * np.sin(a)))


STROKES = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, 0, 360, 40)],
    1: [[(0.35, 0.25), (0.55, 0.05), (0.55, 0.95)]],
    2: [_arc(0.5, 0.3, 0.3, 0.25, 200, 380) + [(0.2, 0.95), (0.85, 0.95)]],
    3: [_arc(0.48, 0.28, 0.28, 0.23, 210, 450) + _arc(0.48, 0.72, 0.32, 0.23, 270, 500)],
    4: [[(0.65, 0.95), (0.65, 0.05), (0.15, 0.65), (0.9, 0.65)]],
    5: [[(0.8, 0.05), (0.3, 0.05), (0.25, 0.45)] + _arc(0.5, 0.68, 0.32, 0.27, 240, 510)],
    6: [_arc(0.6, 0.45, 0.3, 0.42, 250, 180, 12) + _arc(0.5, 0.7, 0.28, 0.25, 180, 540)],
    7: [[(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)]],
    8: [_arc(0.5, 0.27, 0.24, 0.22, 90, 450), _arc(0.5, 0.72, 0.3, 0.24, 270, 630)],
    9: [_arc(0.48, 0.32, 0.28, 0.25, 0, 360) + [(0.76, 0.32), (0.7, 0.95)]],
}


def ink_from_mnist(digit: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit (28x28 uint8) as ink coverage in [0, 1], ``height`` pixels tall."""
    img = Image.fromarray(digit).resize((height, height), Image.BICUBIC)
    return np.clip(np.asarray(img, dtype=np.float64) / 255, 0, 1)


def ink_from_font(char: str, height: int, font_name: str) -> np.ndarray:
    """``char`` typed in a TrueType font (Pillow's default font when it is missing)."""
    try:
        font = ImageFont.truetype(font_name, height)
    except OSError:
        font = ImageFont.load_default(size=height)
    img = Image.new("L", (height * 2, height * 2), 0)
    ImageDraw.Draw(img).text((height // 4, height // 8), char, fill=255, font=font)
    box = img.getbbox()
    return np.asarray(img.crop(box), dtype=np.float64) / 255


def ink_from_strokes(digit: int, height: int, width: float, rng) -> np.ndarray:
    """``digit`` drawn as jittered pen strokes ``width`` pixels wide, ``height`` pixels tall."""
    scale = 4  # draw large, then shrink: smooth edges
    w_box, h_box = int(height * 0.7), height
    img = Image.new("L", (w_box * scale, h_box * scale), 0)
    draw = ImageDraw.Draw(img)
    slant = rng.uniform(-0.15, 0.15)
    for line in STROKES[digit]:
        pts = np.array(line)
        pts = pts + rng.normal(0, 0.015, pts.shape)
        pts[:, 0] += slant * (0.5 - pts[:, 1])
        xy = [(x * (w_box - 1) * scale, y * (h_box - 1) * scale) for x, y in pts]
        draw.line(xy, fill=255, width=max(1, int(width * scale)), joint="curve")
        r = width * scale / 2
        for x, y in (xy[0], xy[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    img = img.resize((w_box, h_box), Image.BOX)
    return np.asarray(img, dtype=np.float64) / 255


def background(size, rng, *, level, gradient, shadow=0.0):
    """A page ``size`` (w, h) at ``level`` with a linear lighting gradient and a soft shadow."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9) - 0.5
    page = level + gradient * ramp
    if shadow:
        # a hand or phone shadow: a soft-edged dark region entering from one side
        cx, cy = rng.uniform(-0.3, 0.1), rng.uniform(0.0, 1.0)
        d = np.hypot(xx - cx, yy - cy)
        page = page - shadow * 1 / (1 + np.exp((d - 0.45) / 0.06))
    return page


def compose(
    ink, size, rng, *, level, ink_level, gradient=0.0, shadow=0.0, noise=3.0, blur=0.0, where=None
):
    """Put ``ink`` onto a background; ``ink_level`` is the colour of the ink (0-255)."""
    page = background(size, rng, level=level, gradient=gradient, shadow=shadow)
    h, w = ink.shape
    if where is None:
        where = (rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.85))
    left = int(np.clip(where[0] * size[0] - w / 2, 0, size[0] - w))
    top = int(np.clip(where[1] * size[1] - h / 2, 0, size[1] - h))
    cover = np.zeros_like(page)
    cover[top : top + h, left : left + w] = ink
    # the ink darkens (or lightens) with the page's lighting, as a real marker does
    lit = page / max(level, 1)
    img = page * (1 - cover) + ink_level * np.clip(lit, 0.3, 1.5) * cover
    if blur:
        img8 = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        img = np.asarray(img8.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float64)
    img = img + rng.normal(0, noise, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def save(img: Image.Image, name: str, quality: int | None) -> str:
    """Save as JPEG (``quality``) or PNG; returns the file name."""
    if quality is None:
        name += ".png"
        img.save(HERE / name, optimize=True)
    else:
        name += ".jpg"
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        (HERE / name).write_bytes(buf.getvalue())
    return name


# Photo-like settings: (name, page level, ink level, gradient, shadow, noise, blur, JPEG quality)
STYLES = [
    ("paper", 225, 40, 60, 0, 3, 0.6, 75),
    ("paper-gradient", 210, 30, 140, 0, 4, 0.8, 70),
    ("paper-shadow", 220, 35, 50, 90, 4, 0.7, 70),
    ("whiteboard", 175, 60, 50, 0, 5, 1.0, 65),
    ("chalkboard", 45, 215, 40, 0, 6, 1.2, 70),
    ("dim-pencil", 150, 85, 70, 0, 4, 0.8, 60),
]


def main() -> None:
    from dlscratch.data import load_mnist

    rng = np.random.default_rng(SEED)
    _, (x_test, t_test) = load_mnist(normalize=False, flatten=False)
    rows = []

    def emit(img, name, quality, label, how):
        rows.append((save(img, name, quality), label, how))

    picks = rng.choice(len(x_test), size=18, replace=False)
    for n, i in enumerate(picks):
        style = STYLES[n % len(STYLES)]
        sname, level, ink_level, grad, shadow, noise, blur, q = style
        size = (int(rng.integers(140, 200)), int(rng.integers(140, 200)))
        ink = ink_from_mnist(x_test[i, 0], int(rng.integers(50, 90)))
        img = compose(
            ink,
            size,
            rng,
            level=level,
            ink_level=ink_level,
            gradient=grad,
            shadow=shadow,
            noise=noise,
            blur=blur,
        )
        label = int(t_test[i])
        emit(img, f"mnist{n:02d}-{sname}", q, label, f"MNIST test image {i}, {sname}")

    for n in range(10):
        digit = (n * 3 + 1) % 10
        style = STYLES[(n + 2) % len(STYLES)]
        sname, level, ink_level, grad, shadow, noise, blur, q = style
        size = (int(rng.integers(120, 180)), int(rng.integers(140, 190)))
        ink = ink_from_strokes(digit, int(rng.integers(45, 80)), rng.uniform(3, 7), rng)
        img = compose(
            ink,
            size,
            rng,
            level=level,
            ink_level=ink_level,
            gradient=grad,
            shadow=shadow,
            noise=noise,
            blur=blur,
        )
        emit(img, f"pen{n:02d}-{sname}", q, digit, f"pen strokes, {sname}")

    for n in range(8):
        digit = (n * 7 + 2) % 10
        font = FONTS[n % len(FONTS)]
        style = STYLES[(n + 4) % len(STYLES)]
        sname, level, ink_level, grad, shadow, noise, blur, q = style
        size = (int(rng.integers(120, 180)), int(rng.integers(120, 180)))
        ink = ink_from_font(str(digit), int(rng.integers(50, 80)), font)
        img = compose(
            ink,
            size,
            rng,
            level=level,
            ink_level=ink_level,
            gradient=grad,
            shadow=shadow,
            noise=noise,
            blur=blur,
        )
        emit(img, f"font{n:02d}-{sname}", q, digit, f"{font}, {sname}")

    for n, style in enumerate(STYLES[:5]):
        sname, level, ink_level, grad, shadow, noise, blur, q = style
        img = compose(
            np.zeros((1, 1)),
            (160, 160),
            rng,
            level=level,
            ink_level=ink_level,
            gradient=grad,
            shadow=shadow,
            noise=noise,
            blur=blur,
        )
        emit(img, f"blank{n}-{sname}", q, "none", f"no digit, {sname}")

    a, b = rng.choice(len(x_test), size=2, replace=False)
    pair = np.concatenate(
        [ink_from_mnist(x_test[a, 0], 60), ink_from_mnist(x_test[b, 0], 60)], axis=1
    )
    img = compose(pair, (220, 150), rng, level=220, ink_level=40, gradient=60, where=(0.5, 0.5))
    emit(img, "two-digits-paper", 75, "several", f"MNIST test images {a} and {b} side by side")
    ink = ink_from_font("42", 60, FONTS[0])
    img = compose(ink, (200, 140), rng, level=180, ink_level=50, gradient=40, where=(0.5, 0.5))
    emit(img, "two-digits-whiteboard", 70, "several", "'42' typed, whiteboard")

    with open(HERE / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "how"])
        writer.writerows(rows)
    total = sum((HERE / r[0]).stat().st_size for r in rows)
    print(f"wrote {len(rows)} images ({total / 1024:.0f} KB) and labels.csv to {HERE}")


if __name__ == "__main__":
    main()
