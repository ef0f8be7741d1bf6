"""The network the web app classifies with, and the one way an input reaches it.

An uploaded or drawn image goes through the same two steps as
``dlscratch predict`` (:mod:`dlscratch.imaging`: decoded with byte and pixel
caps, then made MNIST-like: ink white on black, cropped, fitted into 20x20 and
centred by mass in 28x28); a picture with no digit, or several side by side,
gets a message instead of a guess, as in ``dlscratch predict``.
``{"pixels": [...]}`` is taken as the network's input as it is. Either way the
answer holds the ten probabilities, the top class, the 784 inputs the network
received and, for a fully connected network, the first hidden layer's
activations (what the draw page shows as a heat map).
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlscratch import imaging as _imaging
from dlscratch.serve.runs import DEFAULT_RUNS, newest_model

#: Side of the images the networks read.
SIZE = 28
#: Uploads larger than this many bytes are refused while they arrive (as ``dlscratch predict``).
MAX_UPLOAD_BYTES = _imaging.MAX_BYTES
#: Images whose header declares more pixels are refused before decoding (as ``dlscratch predict``).
MAX_PIXELS = _imaging.MAX_PIXELS
#: How many of the most active hidden units the answer names.
TOP_UNITS = 10


@dataclass
class ServedModel:
    """A loaded classifier and where it came from.

    ``predict`` is serialised by a lock: the layers keep their last input for
    the backward pass, so two requests must not run the forward pass at once.
    """

    network: object
    source: str
    class_names: list = field(default_factory=lambda: [str(d) for d in range(10)])
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def fully_connected(self) -> bool:
        """Whether the network is a stack of affine layers (hidden units have no layout)."""
        return type(self.network).__name__ in ("MultiLayerNet", "TwoLayerNet") and bool(
            getattr(self.network, "hidden_size_list", None)
        )

    def describe(self) -> dict:
        net = self.network
        info = {"source": self.source, "class_names": list(self.class_names)}
        if hasattr(net, "get_config"):
            info["config"] = net.get_config()
        info["parameters"] = int(sum(int(p.size) for p in getattr(net, "params", {}).values()))
        info["fully_connected"] = self.fully_connected
        return info

    def predict(self, pixels: np.ndarray) -> dict:
        """Classify one input of 784 values in [0, 1]; see the module docstring."""
        net = self.network
        x = np.asarray(pixels, dtype=np.float32).reshape(1, SIZE * SIZE)
        x = x.astype(getattr(net, "dtype", np.float32), copy=False)
        from dlscratch.functions import softmax

        started = time.perf_counter()
        with self._lock:
            scores = net.predict(x)
            hidden = self._first_hidden(x) if self.fully_connected else None
        probs = softmax(np.asarray(scores, dtype=np.float64))[0]
        label = int(np.argmax(probs))
        answer = {
            "blank": False,
            "digits": 1,
            "label": label,
            "class_name": self._name(label),
            "probabilities": [float(p) for p in probs],
            "input": [float(v) for v in np.asarray(pixels, dtype=np.float32).ravel()],
            "hidden": hidden,
        }
        answer["compute_ms"] = (time.perf_counter() - started) * 1000
        return answer

    def _first_hidden(self, x) -> dict | None:
        """Activations of the first hidden layer (after its activation function)."""
        h = x
        for name, layer in self.network.layers.items():
            h = layer.forward(h, train=False)
            if name.startswith("Activation"):
                values = np.asarray(h, dtype=np.float64)[0]
                order = np.argsort(-values, kind="stable")[:TOP_UNITS]
                return {
                    "layer": name,
                    "values": [float(v) for v in values],
                    "top": [int(i) for i in order],
                }
        return None

    def _name(self, label: int) -> str:
        return self.class_names[label] if label < len(self.class_names) else str(label)

    def no_digit_answer(self, pixels=None, digits: int = 0) -> dict:
        """The answer for a picture without exactly one digit: a message, not a guess."""
        if digits > 1:
            message = f"{digits} digits found side by side: draw (or crop to) one digit"
        else:
            message = "draw a digit: no digit found in the image"
        values = np.zeros(SIZE * SIZE) if pixels is None else np.asarray(pixels).ravel()
        return {
            "blank": True,
            "digits": digits,
            "label": None,
            "class_name": None,
            "probabilities": None,
            "input": [float(v) for v in values],
            "hidden": None,
            "message": message,
        }


# -- loading ------------------------------------------------------------------------------------


def load_served_model(model: Path | str | None = None, runs_dir: Path | str = DEFAULT_RUNS):
    """The :class:`ServedModel` for ``dlscratch serve --model``.

    ``model``: a run folder, an ``.npz`` model file or the book's ``.pkl``
    weights, loaded as ``dlscratch predict --model`` loads them. None: the run
    under ``runs_dir`` with the newest ``model.npz``, else the book's pretrained
    weights (:func:`dlscratch.io.find_book_weights`). Raises FileNotFoundError
    when there is neither.
    """
    from dlscratch.cli.evaluate import load_classifier, model_dataset
    from dlscratch.data import CLASS_NAMES

    if model is None:
        newest = newest_model(Path(runs_dir))
        if newest is None:
            from dlscratch.io import find_book_weights

            try:
                model = find_book_weights()
            except FileNotFoundError as exc:
                raise FileNotFoundError(
                    f"no model to serve: no run folder with a model.npz in {runs_dir} and "
                    f"the book's weights were not found ({exc}). Train one with "
                    "'dlscratch train', or pass --model RUN_OR_FILE"
                ) from None
        else:
            model = newest
    path = Path(model)
    if path.suffix.lower() in (".pkl", ".pickle"):
        # the book's pickles: its MLP and its two CNNs, told apart by their arrays
        from dlscratch.book_weights import load_book_network

        network, user = load_book_network(path), {}
    else:
        network, user = load_classifier(path)
    inputs = getattr(network, "input_size", None)
    image = getattr(network, "input_dim", None)  # a CNN's (channels, height, width)
    image = None if image is None else tuple(image)
    if inputs not in (None, SIZE * SIZE) or image not in (None, (1, SIZE, SIZE)):
        expects = f"images of shape {image}" if image is not None else f"{inputs} inputs"
        raise ValueError(
            f"{path}: the model expects {expects}, not 28x28 images; "
            "serve a model trained on MNIST or Fashion-MNIST"
        )
    dataset = user.get("dataset") if isinstance(user.get("dataset"), dict) else {}
    names = dataset.get("class_names") or list(CLASS_NAMES[model_dataset(user)])
    return ServedModel(network=network, source=str(path), class_names=[str(n) for n in names])


# -- inputs -------------------------------------------------------------------------------------


def pixels_from_json(obj) -> np.ndarray:
    """The 784 inputs of ``{"pixels": [...]}`` (flat, or 28 rows of 28), validated.

    Raises ValueError saying what is wrong: not an object, no ``pixels``, the
    wrong count, a non-number, NaN or infinity, or a value outside 0..1.
    """
    if not isinstance(obj, dict) or "pixels" not in obj:
        raise ValueError(
            'expected a JSON object {"pixels": [784 numbers from 0 to 1]} (row by row, '
            "white ink on black as in MNIST)"
        )
    raw = obj["pixels"]
    if isinstance(raw, list) and len(raw) == SIZE and all(isinstance(r, list) for r in raw):
        raw = [v for row in raw for v in row]
    if not isinstance(raw, list):
        raise ValueError(f"'pixels' must be a list of {SIZE * SIZE} numbers, got {_kind(raw)}")
    if len(raw) != SIZE * SIZE:
        raise ValueError(
            f"'pixels' must hold {SIZE * SIZE} numbers (a 28x28 image row by row), got {len(raw)}"
        )
    for i, v in enumerate(raw):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise ValueError(f"pixels[{i}] must be a number from 0 to 1, got {_kind(v)}")
        if not math.isfinite(v):
            raise ValueError(f"pixels[{i}] is {v}: every pixel must be a finite number from 0 to 1")
        if not 0 <= v <= 1:
            raise ValueError(f"pixels[{i}] is {v}: every pixel must be from 0 to 1")
    return np.asarray(raw, dtype=np.float32)


def _kind(v) -> str:
    return "null" if v is None else type(v).__name__


def prepare_upload(data: bytes, *, max_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS):
    """The :class:`dlscratch.imaging.PreparedDigit` ``dlscratch predict`` makes of ``data``.

    The same two steps as the command: :func:`~dlscratch.imaging.open_image`
    (byte and pixel caps checked before decoding) and
    :func:`~dlscratch.imaging.prepare_digit`. Raises ValueError for an unreadable,
    empty or oversized image.
    """
    from dlscratch.imaging import open_image, prepare_digit

    image = open_image(data, max_bytes=max_bytes, max_pixels=max_pixels, name="the upload")
    return prepare_digit(image)
