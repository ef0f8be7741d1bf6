"""``dlscratch predict``: classify your own pictures of digits (or clothes) with a trained model.

::

    dlscratch predict --model runs/<run> my_seven.png photo_of_a_3.jpg
    dlscratch predict --model runs/<run> photos/ "scans/*.jpg" --save-input seen/

Any size of PNG, JPEG (or other format :data:`dlscratch.imaging.FORMATS`) works:
the picture is made to look like an MNIST digit (:func:`dlscratch.imaging.prepare_digit`:
background and lighting removed, cropped, scaled into 20x20, centred in 28x28)
and the top 3 classes are printed with their probabilities. Folders give the
images in them; quoted glob patterns are expanded.

Exit status: 0 every picture was classified; 1 a file could not be read (the
others are still classified); 2 bad options or model; 3 every file was read
but in some no single digit was found (blank, or several digits side by side).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np

from dlscratch.cli.options import add_model_option, positive_int
from dlscratch.imaging import SIZE, display_name, image_to_mnist, to_grayscale  # noqa: F401

#: Exit status when a picture holds no digit, or several.
NO_DIGIT = 3

#: File name endings ``predict`` picks up from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "predict",
        help="classify your own pictures of digits (PNG/JPEG, any size) with a trained model",
        description="Classify pictures with a trained model. Each picture is made to look like "
        "an MNIST digit, the way MNIST was made: the paper's background and uneven lighting are "
        "removed, dark ink on light paper is inverted (MNIST is white on black), the digit is "
        "cropped, scaled into a 20x20 box and centred by its centre of mass in a 28x28 frame. "
        "Prints the top classes with probabilities.",
        epilog="exit status: 0 all classified; 1 a file could not be read; 2 bad options; "
        f"{NO_DIGIT} no digit (blank picture) or several digits found in a picture.",
    )
    add_model_option(parser)
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, folders of images, or quoted glob patterns ('photos/*.jpg')",
    )
    parser.add_argument(
        "--top", type=positive_int, default=3, help="how many classes to show per image (default 3)"
    )
    parser.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="dark ink on light paper: yes; light strokes on dark: no; auto: decide (default)",
    )
    parser.add_argument(
        "--save-input",
        type=Path,
        metavar="DIR",
        help="write the 28x28 image the network saw for each picture to DIR (as PNG)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace images already in --save-input DIR"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)
    return parser


# -- which files ------------------------------------------------------------------------------


def expand_inputs(items) -> list[tuple[str, str | None]]:
    """``(path, error)`` pairs: folders give their images, glob patterns their matches."""
    found: list[tuple[str, str | None]] = []
    for item in items:
        if os.path.isdir(item):
            names = sorted(
                os.path.join(item, n)
                for n in os.listdir(item)
                if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")
            )
            if not names:
                kinds = ", ".join(IMAGE_SUFFIXES)
                found.append((item, f"the folder holds no images ({kinds})"))
            found += [(n, None) for n in names]
        elif not os.path.lexists(item) and glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                found.append((item, "no file matches this pattern"))
            found += [(m, None) for m in matches if not os.path.isdir(m)]
        else:
            found.append((item, None))
    return found


def printable(text: str, stream) -> str:
    """``text`` as ``stream`` can print it (odd bytes and characters as escapes)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.encode(encoding, "backslashreplace").decode(encoding)


def _input_name(path: str, used: set) -> str:
    """A file name for the 28x28 input of ``path``, unique within this batch."""
    stem = Path(path).stem or "image"
    name, n = f"{stem}.png", 2
    while name in used:
        name, n = f"{stem}-{n}.png", n + 1
    used.add(name)
    return name


def save_input(image28: np.ndarray, path: Path, overwrite: bool) -> None:
    from PIL import Image

    from dlscratch.fileio import atomic_path

    if path.exists() and not overwrite:
        raise FileExistsError(f"{display_name(path)} exists; pass --overwrite to replace it")
    with atomic_path(path) as tmp:
        Image.fromarray(np.round(image28 * 255).astype(np.uint8)).save(tmp, format="PNG")


# -- the command ------------------------------------------------------------------------------


def run(args) -> int:
    from dlscratch.cli.evaluate import load_classifier, model_dataset
    from dlscratch.data import CLASS_NAMES
    from dlscratch.functions import softmax
    from dlscratch.imaging import open_image, prepare_digit

    if args.save_input is not None and args.save_input.exists() and not args.save_input.is_dir():
        raise ValueError(f"--save-input {display_name(args.save_input)} is a file, not a folder")
    net, user = load_classifier(args.model)
    if net.input_size not in (None, SIZE * SIZE):
        raise ValueError(f"the model expects {net.input_size} inputs, not 28x28 images")
    names = (user.get("dataset") or {}).get("class_names") or list(CLASS_NAMES[model_dataset(user)])
    inputs = expand_inputs(args.images)
    failed = no_digit = 0
    results = []
    used_names: set = set()
    out, err = sys.stdout, sys.stderr
    for path, problem in inputs:
        shown = display_name(path)
        try:
            if problem:
                raise ValueError(f"{shown}: {problem}")
            digit = prepare_digit(open_image(path, name=shown), invert=args.invert)
            if args.save_input is not None:
                name = _input_name(path, used_names)
                save_input(digit.image, args.save_input / name, args.overwrite)
        except (OSError, ValueError) as exc:
            failed += 1
            print(printable(f"dlscratch predict: error: {exc}", err), file=err)
            results.append({"file": shown, "error": str(exc)})
            continue
        result = {"file": shown, "digits": digit.components, "box": digit.box}
        results.append(result)
        if digit.blank or digit.components > 1:
            no_digit += 1
            if digit.blank:
                result["note"] = "no digit found"
                line = f"{shown}: no digit found (blank, or ink too faint to tell from the paper)"
            else:
                result["note"] = f"{digit.components} digits found"
                line = (
                    f"{shown}: {digit.components} digits found side by side; "
                    "predict reads one digit per picture - crop it to one digit"
                )
            if not args.json:
                print(printable(line, out), file=out)
            continue
        scores = net.predict(digit.pixels.reshape(1, -1).astype(net.dtype))
        probs = softmax(np.asarray(scores, dtype=np.float64))[0]
        top = np.argsort(-probs, kind="stable")[: args.top]
        result["top"] = [
            {
                "class": names[i] if i < len(names) else str(i),
                "index": int(i),
                "probability": float(probs[i]),
            }
            for i in top
        ]
        if not args.json:
            ranked = "  ".join(f"{r['class']} ({r['probability']:.1%})" for r in result["top"])
            print(printable(f"{shown}: {ranked}", out), file=out)
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        print(f"dlscratch predict: {failed} of {len(inputs)} file(s) could not be read", file=err)
        return 1
    if no_digit:
        print(
            f"dlscratch predict: no single digit found in {no_digit} of {len(inputs)} picture(s)",
            file=err,
        )
        return NO_DIGIT
    return 0
