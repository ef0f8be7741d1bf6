"""``dlscratch predict``: classify your own images of digits (or clothes) with a trained model.

::

    dlscratch predict --model runs/<run> my_seven.png photo_of_a_3.jpg

Any size of PNG, JPEG (or other format Pillow reads) works: the image is made
to look like an MNIST digit (:func:`image_to_mnist`) and the top 3 classes are
printed with their probabilities. A file that cannot be read gets an error
line; the other files are still classified, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dlscratch.cli.options import add_model_option, positive_int

#: Side of the box the digit is scaled into, inside the 28x28 frame (as in MNIST).
DIGIT_BOX = 20
SIZE = 28


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "predict",
        help="classify your own images (PNG/JPEG, any size) with a trained model",
        description="Classify image files with a trained model. Each image is converted to "
        "grayscale, inverted when its background is light (MNIST digits are white on black), "
        "cropped to the digit, scaled into a 20x20 box and centred by its centre of mass in a "
        "28x28 frame - the way MNIST was made. Prints the top classes with probabilities.",
    )
    add_model_option(parser)
    parser.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)"
    )
    parser.add_argument(
        "--top", type=positive_int, default=3, help="how many classes to show per image (default 3)"
    )
    parser.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="invert to white-on-black: auto (when the border is light, default), yes or no",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)
    return parser


# -- preprocessing --------------------------------------------------------------------------


def read_grayscale(path) -> np.ndarray:
    """The image at ``path`` as float64 luminance 0-255, shape (H, W).

    EXIF rotation is applied. An image with a transparent background gets its
    opacity as the result (the strokes as ink, white on black); other
    transparent pixels are flattened onto white.

    Raises
    ------
    OSError
        Missing, unreadable or not an image (the message says which file and why).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64)
                if _border_level(alpha) < 128:
                    # a transparent background: the opaque strokes are the digit (white on black)
                    return alpha
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            gray = np.asarray(img.convert("L"), dtype=np.float64)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: is a folder, not an image") from None
    except UnidentifiedImageError:
        raise OSError(f"{path}: not an image Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise OSError(f"{path}: cannot read the image ({exc})") from None
    if gray.size == 0:
        raise OSError(f"{path}: the image is empty")
    return gray


def _border_level(a: np.ndarray) -> float:
    """Median of the outermost rows and columns: the background's level."""
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return float(np.median(edge))


def image_to_mnist(gray: np.ndarray, invert: str = "auto") -> np.ndarray:
    """Turn a grayscale image (H, W), values 0-255, into an MNIST-like (28, 28) float32 in [0, 1].

    1. Polarity: MNIST digits are white on black; with ``invert='auto'`` the
       image is inverted when its border is light (dark ink on paper).
    2. Contrast: the background level (border median) becomes 0, the brightest
       ink 1.
    3. Crop to the digit's bounding box (pixels above 10% of the peak), scale
       the longer side to 20 px keeping the aspect ratio, and place it in the
       28x28 frame so that its centre of mass is at the centre, as MNIST was
       prepared.
    """
    from PIL import Image

    a = np.asarray(gray, dtype=np.float64)
    if invert == "yes" or (invert == "auto" and _border_level(a) > 127):
        a = 255.0 - a
    background = min(_border_level(a), float(a.max()))
    a = np.clip(a - background, 0, None)
    peak = a.max()
    if peak <= 0:  # a blank image: nothing to find
        return np.zeros((SIZE, SIZE), dtype=np.float32)
    a /= peak
    rows = np.flatnonzero((a > 0.1).any(axis=1))
    cols = np.flatnonzero((a > 0.1).any(axis=0))
    a = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = a.shape
    scale = DIGIT_BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    patch = Image.fromarray((a * 255).astype(np.uint8)).resize((new_w, new_h), Image.LANCZOS)
    patch = np.asarray(patch, dtype=np.float32) / 255.0
    total = patch.sum()
    if total > 0:
        cy = float(patch.sum(axis=1) @ np.arange(new_h)) / total
        cx = float(patch.sum(axis=0) @ np.arange(new_w)) / total
    else:
        cy, cx = (new_h - 1) / 2, (new_w - 1) / 2
    # MNIST digits have their centre of mass near pixel (14, 14)
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - new_h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - new_w))
    frame = np.zeros((SIZE, SIZE), dtype=np.float32)
    frame[top : top + new_h, left : left + new_w] = patch
    return frame


# -- the command ----------------------------------------------------------------------------


def run(args) -> int:
    from dlscratch.cli.evaluate import load_classifier, model_dataset
    from dlscratch.data import CLASS_NAMES
    from dlscratch.functions import softmax

    net, user = load_classifier(args.model)
    if net.input_size not in (None, SIZE * SIZE):
        raise ValueError(f"the model expects {net.input_size} inputs, not 28x28 images")
    names = (user.get("dataset") or {}).get("class_names") or list(CLASS_NAMES[model_dataset(user)])
    failed = 0
    results = []
    for path in args.images:
        try:
            x = image_to_mnist(read_grayscale(path), invert=args.invert)
        except OSError as exc:
            failed += 1
            print(f"dlscratch predict: error: {exc}", file=sys.stderr)
            results.append({"file": str(path), "error": str(exc)})
            continue
        scores = net.predict(x.reshape(1, -1).astype(net.dtype))
        probs = softmax(np.asarray(scores, dtype=np.float64))[0]
        top = np.argsort(-probs, kind="stable")[: args.top]
        results.append(
            {
                "file": str(path),
                "top": [
                    {
                        "class": names[i] if i < len(names) else str(i),
                        "index": int(i),
                        "probability": float(probs[i]),
                    }
                    for i in top
                ],
            }
        )
        if not args.json:
            ranked = "  ".join(f"{r['class']} ({r['probability']:.1%})" for r in results[-1]["top"])
            print(f"{path}: {ranked}")
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        print(
            f"dlscratch predict: {failed} of {len(args.images)} file(s) could not be read",
            file=sys.stderr,
        )
    return 1 if failed else 0
