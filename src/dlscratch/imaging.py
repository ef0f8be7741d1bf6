"""Pictures of digits -> network input: the one place an image becomes 784 numbers.

Two steps, each usable on its own::

    from dlscratch.imaging import open_image, prepare_digit

    image = open_image("photo_of_a_7.jpg")      # a path or the file's bytes
    digit = prepare_digit(image)                 # PreparedDigit
    if digit.blank:
        ...                                      # no digit in the picture
    elif digit.components > 1:
        ...                                      # several digits side by side
    else:
        scores = net.predict(digit.pixels[None])

:func:`open_image` is the bounded loader: it refuses anything that is not a
regular file (a FIFO or a device would block or never end), files over
``max_bytes`` and images whose header declares more than ``max_pixels``
pixels - all before a single pixel is decoded.

:func:`prepare_digit` makes the picture look like an MNIST digit, the way
MNIST itself was made (LeCun et al.): white strokes on black, the digit scaled
to fit a 20x20 box keeping its aspect ratio and placed in a 28x28 frame so
that its centre of mass is at the centre. A photo needs more than that first:

1. **Background.** The paper's brightness is estimated at a large scale (a
   rank filter on a 32-pixel thumbnail, which ignores strokes and follows
   lighting gradients and soft shadows) and subtracted, so that what remains
   is the ink alone.
2. **Polarity.** Dark ink on light paper is inverted; light chalk on a dark
   board is not. ``invert='auto'`` decides from which side of the background
   the strongest outliers lie.
3. **Ink or nothing.** Otsu's threshold separates ink from paper. When the
   ink is not clearly stronger than the paper's noise, the image is *blank*.
4. **Digits.** Connected blobs of ink are grouped by their horizontal extent
   (the bar of a 5 drawn apart still belongs to it); groups as tall as the
   tallest count as digits (``components``). Specks and dust are dropped.
5. **MNIST framing.** The digit is cropped, its strokes thickened when they are
   much thinner than MNIST's (a fine pen on a large photo), scaled to fit
   20x20 and centred by its centre of mass in 28x28.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import warnings
from dataclasses import dataclass, field

import numpy as np

#: MNIST's geometry: the digit fits a 20x20 box inside a 28x28 frame.
SIZE = 28
DIGIT_BOX = 20

#: Default limits of :func:`open_image`: the file's size and the pixels its header declares.
MAX_BYTES = 20_000_000
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; decoded RGB that is 150 MB

#: Formats :func:`open_image` decodes (Pillow's names; JPEG includes the MPO files of phones).
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")

#: Longest side of the working copy: enough for a digit that fills a twentieth of a photo.
WORK_SIDE = 512
#: Longest side of the thumbnail the background is estimated on (rank filters are slow
#: on more: their cost grows with the pixels times the window's area).
BACKGROUND_SIDE = 32
#: Longest side of the copy the polarity (dark ink or light ink) is judged on.
POLARITY_SIDE = 128
#: Stroke width of an MNIST digit (2 * area / perimeter of its ink, at the 20-pixel scale).
MNIST_STROKE = 3.0
#: Ink weaker than this (0-255 scale) is never a digit, whatever the noise.
MIN_CONTRAST = 18.0
#: Steepest edges (95th percentile of the gradient / ink level) below this are soft: a shadow.
SOFT_EDGE = 0.22


@dataclass(frozen=True)
class PreparedDigit:
    """What :func:`prepare_digit` made of a picture.

    Attributes
    ----------
    pixels : ndarray, float32, shape (784,)
        The network's input: the 28x28 image row by row, in [0, 1] (zeros when blank).
    blank : bool
        No digit was found (empty paper, or ink too faint to tell from noise).
    components : int
        How many separate digit-sized blobs of ink were found side by side (0 when blank).
    inverted : bool
        Whether the picture was inverted (dark ink on light paper).
    box : tuple or None
        The digit's bounding box ``(left, top, right, bottom)`` in the picture's pixels.
    """

    pixels: np.ndarray = field(repr=False)
    blank: bool
    components: int
    inverted: bool
    box: tuple | None = None

    @property
    def image(self) -> np.ndarray:
        """The input as a (28, 28) image."""
        return self.pixels.reshape(SIZE, SIZE)


# -- loading ---------------------------------------------------------------------------------


def _describe_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_file(path, max_bytes: int, name: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes``, without ever blocking."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file") from None
    if not stat.S_ISREG(info.st_mode):
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"{name}: is a folder, not an image")
        raise ValueError(f"{name}: is {_file_kind(info.st_mode)}, not an image file; give a file")
    _check_bytes(info.st_size, max_bytes, name)
    # O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not wait.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{name}: is {_file_kind(info.st_mode)}, not an image file")
        data = f.read(max_bytes + 1)
    _check_bytes(len(data), max_bytes, name)
    return data


def _check_bytes(n: int, max_bytes: int, name: str) -> None:
    if n > max_bytes:
        raise ValueError(
            f"{name}: the file is {_describe_size(n)}, more than the {_describe_size(max_bytes)} "
            "accepted for an image; shrink the picture (a digit needs only a few hundred pixels)"
        )
    if n == 0:
        raise ValueError(f"{name}: the file is empty")


def display_name(path) -> str:
    """``path`` as text that can always be printed (undecodable bytes as ``\\xNN`` escapes)."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def open_image(source, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS, name=None):
    """Open an image file (path) or an image's bytes, refusing what could exhaust memory.

    Checks, in this order and before decoding: that a path is a regular file
    (a FIFO or device is refused, not read), its size against ``max_bytes``,
    the format (:data:`FORMATS`), and the width x height its header declares
    against ``max_pixels``. Then decodes it and applies the EXIF orientation.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The file, or its content (e.g. an upload).
    max_bytes, max_pixels : int
        Limits (defaults :data:`MAX_BYTES`, :data:`MAX_PIXELS`).
    name : str, optional
        How messages name the image (default: the path, or "the image").

    Returns
    -------
    PIL.Image.Image
        The decoded image.

    Raises
    ------
    ValueError
        Not a regular file, too large, too many pixels, or not an image Pillow
        can read (the message names the image and says what to do).
    FileNotFoundError, IsADirectoryError, PermissionError
        As the operating system reports them, with the file's name.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "the image"
        data = bytes(source)
        _check_bytes(len(data), max_bytes, name)
    else:
        name = name or display_name(source)
        try:
            data = _read_file(source, max_bytes, name)
        except PermissionError:
            raise PermissionError(f"{name}: permission denied") from None
    try:
        # Pillow's own bomb check reads a global limit; ours is per call, below, and its
        # warning about sizes we refuse anyway is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        width, height = img.size
        if width * height > max_pixels:
            raise ValueError(
                f"{name}: the image is {width}x{height} pixels, more than the "
                f"{max_pixels / 1e6:g} million accepted; shrink it first"
            )
        if width < 1 or height < 1:
            raise ValueError(f"{name}: the image has no pixels ({width}x{height})")
        img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError:
        raise ValueError(
            f"{name}: the image declares more than the {max_pixels / 1e6:g} million pixels "
            "accepted; shrink it first"
        ) from None
    except UnidentifiedImageError:
        raise ValueError(
            f"{name}: not an image Pillow can read (accepted: {', '.join(FORMATS)})"
        ) from None
    except (OSError, SyntaxError, EOFError, struct.error) as exc:
        raise ValueError(
            f"{name}: cannot decode the image ({exc}); is the file complete?"
        ) from None
    return img


# -- preprocessing ---------------------------------------------------------------------------


def to_grayscale(image) -> np.ndarray:
    """A picture as float64 brightness 0-255, shape (H, W).

    ``image`` is a PIL image or an array ((H, W) gray or (H, W, 3|4) colour,
    0-255). A picture with a transparent background gives its opacity (the
    strokes, already white on black); other transparency is flattened onto
    white. 16-bit images are scaled to 0-255.
    """
    from PIL import Image

    if not isinstance(image, Image.Image):
        a = np.asarray(image, dtype=np.float64)
        if a.ndim == 3 and a.shape[2] in (3, 4):
            if a.shape[2] == 4:
                return _flatten_alpha(a[..., :3] @ [0.299, 0.587, 0.114], a[..., 3])
            a = a @ [0.299, 0.587, 0.114]
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"expected a 2-D grayscale or (H, W, 3|4) image, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("the image contains NaN or infinite values")
        return np.clip(a, 0, 255)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64)
        gray = np.asarray(rgba.convert("L"), dtype=np.float64)
        return _flatten_alpha(gray, alpha)
    if image.mode.startswith("I") or image.mode == "F":
        a = np.asarray(image, dtype=np.float64)
        top = a.max(initial=0)
        return np.clip(a / 257.0 if top > 255 else a, 0, 255)
    return np.asarray(image.convert("L"), dtype=np.float64)


def _working_copy(image) -> tuple[np.ndarray, tuple[int, int]]:
    """The picture as brightness 0-255 (float64) at most :data:`WORK_SIDE` pixels on a
    side, and the picture's own (height, width).

    A large PIL image is first shrunk by an integer factor in Pillow, while it is
    still 8-bit (a 12-megapixel photo would be 96 MB as float64), then brought to
    the working size as :func:`to_grayscale` and a box filter would.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        full_w, full_h = image.size
        factor = max(full_w, full_h) // WORK_SIDE
        if factor >= 2 and image.mode in ("L", "RGB") and "transparency" not in image.info:
            image = image.convert("L").reduce(factor)  # box averages, still >= WORK_SIDE
    else:
        full_h, full_w = np.shape(image)[:2]
    gray = to_grayscale(image)
    if max(gray.shape) > WORK_SIDE:
        gray = _resized(gray, _fit(gray.shape, WORK_SIDE))
    return gray, (full_h, full_w)


def _flatten_alpha(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    if _border_level(alpha) < 128:
        return alpha  # a transparent background: the opaque strokes are the digit
    return gray * (alpha / 255) + 255 * (1 - alpha / 255)


def _border_level(a: np.ndarray) -> float:
    """Median of the outermost rows and columns."""
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return float(np.median(edge))


def _resized(a: np.ndarray, shape, resample="box") -> np.ndarray:
    """``a`` (float) resized to ``shape`` (h, w) with Pillow."""
    from PIL import Image

    filters = {"box": Image.BOX, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}
    img = Image.fromarray(np.asarray(a, dtype=np.float32), mode="F")
    out = img.resize((int(shape[1]), int(shape[0])), filters[resample])
    return np.asarray(out, dtype=np.float64)


def _fit(shape, side: int):
    h, w = shape
    scale = min(1.0, side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _rank_filter(a: np.ndarray, size: int, fraction: float) -> np.ndarray:
    """Pillow's rank filter on a 0-255 float image: the ``fraction`` quantile of each window."""
    from PIL import Image, ImageFilter

    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    rank = int(np.clip(round(fraction * size * size), 0, size * size - 1))
    return np.asarray(img.filter(ImageFilter.RankFilter(size, rank)), dtype=np.float64)


def _blur(a: np.ndarray, radius: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the variance between the two classes."""
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return high
    # the histogram of np.histogram(values, bins, (low, high)), as one bincount
    index = np.minimum(((values - low) * (bins / (high - low))).astype(np.intp), bins - 1)
    counts = np.bincount(index, minlength=bins)
    edges = np.linspace(low, high, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)  # pixels at or below each cut
    w1 = w0[-1] - w0
    s0 = np.cumsum(counts * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a plateau: take its middle
    return float(edges[1:][best[len(best) // 2]])


def _background_window(shape) -> int:
    """Odd window size, about a third of the thumbnail's shorter side."""
    return max(3, (min(shape) // 3) | 1)


def _polarity_dark_ink(small: np.ndarray, thumb: np.ndarray) -> bool:
    """Whether the strong departures from the local background are darker (ink on paper).

    Noise departs equally to both sides; ink to one. Compares what lies beyond
    three noise widths on each side of a median-filtered background. ``small`` is
    the picture at most :data:`POLARITY_SIDE` pixels on a side, ``thumb`` at most
    :data:`BACKGROUND_SIDE`.
    """
    median = _rank_filter(thumb, _background_window(thumb.shape), 0.5)
    residual = small - _resized(median, small.shape, "bilinear")
    spread = max(1.4826 * float(np.median(np.abs(residual - np.median(residual)))), 1.0)
    dark = float(np.clip(-residual - 3 * spread, 0, None).sum())
    light = float(np.clip(residual - 3 * spread, 0, None).sum())
    if max(dark, light) < 1e-3 * residual.size:  # no clear ink: paper is usually the light one
        return _border_level(small) > 127
    return dark > light


def _runs(mask: np.ndarray):
    """The horizontal runs of a boolean mask: (row, start, end) arrays, end exclusive, row-major."""
    h, w = mask.shape
    edges = np.zeros((h, w + 2), dtype=np.int8)
    edges[:, 1:-1] = mask
    step = np.diff(edges, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)
    return rows, starts, ends


def _label(mask: np.ndarray):
    """Connected components (8-neighbour) of a boolean mask: (labels, count).

    Works on runs of ink along the rows rather than on pixels: runs in adjacent rows
    that touch (diagonally included) are joined with a union-find, so the Python
    loop is over a few hundred joins, not over every pixel. Components are numbered
    1, 2, ... in the order of their first pixel row by row (0 is the background).
    """
    h, w = mask.shape
    labels = np.zeros(mask.shape, dtype=np.int32)
    rows, starts, ends = _runs(mask)
    n = rows.size
    if n == 0:
        return labels, 0
    # Runs as keys row * stride + column, so that searches never cross into another row.
    stride = w + 3
    start_keys = rows * stride + starts
    end_keys = rows * stride + ends
    # For each run, the runs of the row above that touch it: [s, e) touches [s', e') when
    # s <= e' and s' <= e (diagonal neighbours included); they are consecutive.
    first = np.searchsorted(end_keys, (rows - 1) * stride + starts, side="left")
    last = np.searchsorted(start_keys, (rows - 1) * stride + ends, side="right")
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for b in np.flatnonzero(last > first).tolist():
        rb = root(b)
        for a in range(int(first[b]), int(last[b])):
            ra = root(a)
            if ra != rb:  # the smaller index (the earlier run) becomes the root
                ra, rb = min(ra, rb), max(ra, rb)
                parent[rb] = ra
                rb = ra
    roots = np.fromiter((root(i) for i in range(n)), dtype=np.int64, count=n)
    _, component = np.unique(roots, return_inverse=True)  # roots ascend in raster order
    lengths = ends - starts
    offsets = np.repeat(rows * w + starts - (np.cumsum(lengths) - lengths), lengths)
    labels.ravel()[offsets + np.arange(lengths.sum())] = np.repeat(component + 1, lengths)
    return labels, int(component.max()) + 1


def _digit_groups(mask: np.ndarray):
    """Groups of blobs, each a digit: a list of (label set, (top, bottom, left, right)).

    Blobs whose horizontal extents overlap belong to one digit; specks (tiny
    next to the largest blob) are dropped; groups much shorter than the
    tallest (a dot, a dash) are dropped too.
    """
    labels, count = _label(mask)
    if count == 0:
        return labels, []
    ys, xs = np.nonzero(labels)
    ks = labels[ys, xs]
    sizes = np.bincount(ks, minlength=count + 1)
    extent = np.empty((4, count + 1), dtype=np.int64)  # top, bottom, left, right
    extent[0], extent[1], extent[2], extent[3] = mask.shape[0], -1, mask.shape[1], -1
    np.minimum.at(extent[0], ks, ys)
    np.maximum.at(extent[1], ks, ys)
    np.minimum.at(extent[2], ks, xs)
    np.maximum.at(extent[3], ks, xs)
    blobs = [[k, int(sizes[k]), *(int(v) for v in extent[:, k])] for k in range(1, count + 1)]
    largest = max(b[1] for b in blobs)
    tallest = max(b[3] - b[2] + 1 for b in blobs)
    blobs = [b for b in blobs if b[1] >= 0.05 * largest or b[3] - b[2] + 1 >= 0.3 * tallest]
    blobs.sort(key=lambda b: b[4])
    groups = []
    for k, _, top, bottom, left, right in blobs:
        if groups and left <= groups[-1][1][3]:  # overlaps the previous group horizontally
            ks, (t, b, lft, r) = groups[-1]
            groups[-1] = (ks | {k}, (min(t, top), max(b, bottom), lft, max(r, right)))
        else:
            groups.append(({k}, (top, bottom, left, right)))
    tallest = max(g[1][1] - g[1][0] + 1 for g in groups)
    groups = [g for g in groups if g[1][1] - g[1][0] + 1 >= 0.4 * tallest]
    return labels, groups


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary shape: 2 * area / perimeter."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    perimeter = int(mask.sum() - inner.sum())
    return 2.0 * mask.sum() / max(perimeter, 1)


def _frame(patch: np.ndarray) -> np.ndarray:
    """Scale ``patch`` (ink in [0, 1]) to fit 20x20 and centre its mass in a 28x28 frame."""
    from PIL import Image, ImageFilter

    h, w = patch.shape
    # Work at 4x the final scale, where strokes can be measured and thickened.
    fine_h, fine_w = _fit((h, w), 4 * DIGIT_BOX) if max(h, w) > 4 * DIGIT_BOX else (h, w)
    if max(h, w) < 4 * DIGIT_BOX:
        grow = 4 * DIGIT_BOX / max(h, w)
        fine_h, fine_w = max(1, round(h * grow)), max(1, round(w * grow))
    fine = np.clip(_resized(patch, (fine_h, fine_w), "lanczos"), 0, 1)
    ink = fine > 0.5
    if ink.any():
        target = MNIST_STROKE * 4  # MNIST's stroke width at the 4x scale
        width = _stroke_width(ink)
        if width < 0.7 * target:
            size = int(round(target - width)) | 1
            img = Image.fromarray((fine * 255).astype(np.uint8))
            fine = np.asarray(img.filter(ImageFilter.MaxFilter(size)), dtype=np.float64) / 255
    new_h, new_w = _fit((fine_h, fine_w), DIGIT_BOX)
    if max(fine_h, fine_w) < DIGIT_BOX:
        grow = DIGIT_BOX / max(fine_h, fine_w)
        new_h, new_w = max(1, round(fine_h * grow)), max(1, round(fine_w * grow))
    small = np.clip(_resized(fine, (new_h, new_w), "lanczos"), 0, None)
    peak = small.max()
    if peak <= 0:
        return np.zeros((SIZE, SIZE), dtype=np.float32)
    small = np.clip(small / peak, 0, 1)
    total = small.sum()
    cy = float(small.sum(axis=1) @ np.arange(new_h)) / total
    cx = float(small.sum(axis=0) @ np.arange(new_w)) / total
    # MNIST digits have their centre of mass at pixel (14, 14)
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - new_h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - new_w))
    frame = np.zeros((SIZE, SIZE), dtype=np.float32)
    frame[top : top + new_h, left : left + new_w] = small
    return frame


def _looks_like_shadow(ink, keep, level: float, background) -> bool:
    """Whether the "ink" is the edge of a shadow the background estimate could not follow.

    Pen, marker and chalk strokes have sharp edges (the residual rises to its
    level within a few pixels); a shadow's edge is soft, and its residual is
    weak next to the lighting differences across the page.
    """
    rows = np.flatnonzero(keep.any(axis=1))
    cols = np.flatnonzero(keep.any(axis=0))
    # the gradient around the kept ink only (one pixel more: central differences as on the
    # whole picture)
    top, left = max(rows[0] - 1, 0), max(cols[0] - 1, 0)
    bottom, right = rows[-1] + 2, cols[-1] + 2
    gy, gx = np.gradient(ink[top:bottom, left:right])
    edge = np.hypot(gy, gx)[keep[top:bottom, left:right]]
    sharpness = float(np.percentile(edge, 95)) / level
    low, high = np.percentile(background, [5, 95])
    lighting = float(high - low)
    return sharpness < SOFT_EDGE and level < 0.6 * lighting


def _invert_choice(invert) -> bool | None:
    if invert in ("auto", None):
        return None
    if invert in ("yes", True):
        return True
    if invert in ("no", False):
        return False
    raise ValueError(f"invert must be 'auto', 'yes' or 'no', got {invert!r}")


def prepare_digit(image, *, invert="auto") -> PreparedDigit:
    """Turn a picture of one digit into MNIST-like network input (see the module docstring).

    Parameters
    ----------
    image : PIL image or array
        From :func:`open_image`, or a (H, W) grayscale array 0-255 (or (H, W, 3|4)).
    invert : 'auto' | 'yes' | 'no'
        'yes': dark ink on light paper; 'no': light strokes on a dark ground;
        'auto' (default) decides from the picture.

    Returns
    -------
    PreparedDigit
    """
    choice = _invert_choice(invert)
    work, (full_h, full_w) = _working_copy(image)
    small = _resized(work, _fit(work.shape, POLARITY_SIDE))
    thumb = _resized(small, _fit(small.shape, BACKGROUND_SIDE))
    dark_ink = _polarity_dark_ink(small, thumb) if choice is None else choice
    a = 255.0 - work if dark_ink else work  # ink bright from here on
    if dark_ink:
        thumb = 255.0 - thumb

    # 1. background: a low quantile over large windows of a thumbnail ignores the strokes
    window = _background_window(thumb.shape)
    background = _blur(_rank_filter(thumb, window, 0.25), window / 4)
    background = _resized(background, a.shape, "bilinear")
    ink = a - background

    # 2. ink or nothing: Otsu's cut, then is the ink clearly above the paper's noise?
    cut = otsu_threshold(ink)
    paper = ink[ink <= cut]
    if paper.size:
        middle = float(np.median(paper))
        noise = 1.4826 * float(np.median(np.abs(paper - middle)))
        cut = max(cut, middle + 3 * noise)
    else:
        noise = 0.0
    mask = ink > cut
    level = float(np.median(ink[mask])) if mask.any() else 0.0
    blank = PreparedDigit(np.zeros(SIZE * SIZE, np.float32), True, 0, dark_ink)
    if not mask.any() or level < max(MIN_CONTRAST, 6 * noise):
        return blank

    # 3. blobs and digits, on a mask at most 128 pixels on a side
    grid = _fit(mask.shape, 128)
    coarse = _resized(mask.astype(np.float64), grid) > 0.25
    labels, groups = _digit_groups(coarse)
    if not groups:
        return blank
    tallest = max(b - t + 1 for _, (t, b, _, _) in groups)
    if tallest < max(3, 0.04 * min(grid)):  # a speck, not a digit
        return blank
    keep = np.isin(labels, list(set().union(*(g[0] for g in groups))))
    keep = _resized(keep.astype(np.float64), mask.shape, "bilinear") > 0
    if _looks_like_shadow(ink, keep, level, background):
        return blank
    soft = np.clip((ink - cut / 2) / max(level - cut / 2, 1e-9), 0, 1) * keep
    rows = np.flatnonzero(soft.max(axis=1) > 0.5)
    cols = np.flatnonzero(soft.max(axis=0) > 0.5)
    if rows.size == 0:
        return blank
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    frame = _frame(soft[top:bottom, left:right])
    sy, sx = full_h / a.shape[0], full_w / a.shape[1]
    box = (
        int(math.floor(left * sx)),
        int(math.floor(top * sy)),
        int(math.ceil(right * sx)),
        int(math.ceil(bottom * sy)),
    )
    return PreparedDigit(frame.reshape(-1), False, len(groups), dark_ink, box)


def image_to_mnist(gray, invert="auto") -> np.ndarray:
    """A grayscale picture (H, W), 0-255, as an MNIST-like (28, 28) float32 image in [0, 1].

    Zeros when no digit is found; see :func:`prepare_digit` for the details.
    """
    return prepare_digit(gray, invert=invert).image
