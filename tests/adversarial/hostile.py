"""Generators of hostile and broken inputs, and a child process that loads them.

Each ``make_*`` function writes files into a folder and returns ``{name: path}``.
:func:`load_in_child` loads a list of files in a fresh Python, one after the
other, and reports for each whether it was refused with a clean error (the
message) or accepted, plus the child's peak memory above its baseline (after
imports), from ``resource.getrusage``.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np

from dlscratch.data.idx import write_idx
from dlscratch.io import METADATA_KEY, save_model
from dlscratch.nets import MultiLayerNet

MB = 2**20

# -- pickles -----------------------------------------------------------------------------------

P2 = b"\x80\x02"  # protocol 2 header


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def make_pickles(folder: Path) -> dict:
    """Hostile book-weight pickles: nesting, sizes, dtypes, code execution, persistent ids."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for depth in (1_000, 100_000, 1_000_000):  # a dict key: a tuple nested ``depth`` deep
        files[f"deep_tuple_key_{depth}"] = P2 + b"}" + b")" + b"\x85" * depth + b"K\x01s."
    files["deep_marks"] = P2 + b"(" * 100_000 + b"."
    files["deep_dicts"] = P2 + b"}" * 2 + (b"K\x01}" * 50_000) + b"s" * 50_000 + b"."
    # an object-dtype array of 2**30 elements: numpy.dtype('O8') then _reconstruct + BUILD
    rec = _global("numpy.core.multiarray", "_reconstruct")
    files["object_dtype_bomb"] = (
        P2
        + b"}X\x01\x00\x00\x00a"
        + rec
        + _global("numpy", "ndarray")
        + b"K\x00\x85C\x01b\x87R"
        + b"(K\x01J\x00\x00\x00@\x85"
        + _global("numpy", "dtype")
        + b"X\x02\x00\x00\x00O8"
        + b"K\x00K\x01\x87R(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb"
        + b"\x89]tbs."
    )
    good = pickle.dumps({"W1": np.zeros(3, np.float32)}, protocol=2)
    files["huge_declared_array"] = good.replace(b"K\x03\x85", b"J\x00\x00\x00@\x85")
    files["declared_bigger_than_data"] = good.replace(b"K\x03\x85", b"K\x09\x85")
    for name in ("O", "O8", "V8", "U4", "S4", "c16", "M8"):
        files[f"dtype_{name}"] = (
            P2
            + _global("numpy", "dtype")
            + b"X"
            + struct.pack("<I", len(name))
            + name.encode()
            + b"K\x00K\x01\x87R."
        )
    for module, name in (
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("numpy.lib.npyio", "load"),
        ("numpy", "frombuffer"),
        ("functools", "partial"),
        ("importlib", "import_module"),
        ("pickle", "loads"),
        ("io", "open"),
        ("shutil", "rmtree"),
        ("numpy.core.multiarray", "_reconstruct_evil"),
    ):
        files[f"global_{module}.{name}"] = (
            P2 + _global(module, name) + b"X\x04\x00\x00\x00echo\x85R."
        )
    files["stack_global_os_system"] = (
        b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94"
        b"\x93\x94\x8c\x04echo\x94\x85\x94R\x94."
    )
    files["persistent_id"] = P2 + b"X\x01\x00\x00\x00xQ."
    files["persistent_id_text"] = b"Pxyz\n."
    files["newobj"] = P2 + _global("numpy", "ndarray") + b")\x81."
    files["inst"] = b"(ios\nsystem\nS'echo'\n."
    files["ext_code"] = P2 + b"\x82\x01."
    files["reconstruct_subclass"] = P2 + rec + _global("numpy", "ma") + b"K\x00\x85C\x01b\x87R."
    files["codecs_utf16"] = (
        P2 + _global("_codecs", "encode") + b"X\x01\x00\x00\x00aX\x06\x00\x00\x00utf-16\x86R."
    )
    files["long_int_text"] = b"I" + b"9" * 100_000 + b"\n."
    files["list_of_a_million"] = P2 + b"](" + b"K\x01" * 1_000_000 + b"e."
    files["truncated"] = pickle.dumps({"W1": np.zeros((50, 50))}, protocol=2)[:-500]
    files["empty"] = b""
    files["not_a_dict"] = pickle.dumps((np.zeros(3),), protocol=2)
    files["set_opcode"] = b"\x80\x04\x8f."
    files["huge_file"] = b""  # replaced by a sparse file below
    paths = {}
    for name, data in files.items():
        path = folder / f"{name}.pkl"
        path.write_bytes(data)
        paths[name] = path
    with open(paths["huge_file"], "wb") as f:
        f.truncate(2**31)  # 2 GiB, sparse: never read
    return paths


# -- model files -------------------------------------------------------------------------------


def _model_arrays(path: Path) -> tuple[dict, dict]:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays[METADATA_KEY].tobytes())
    return arrays, meta


def _write_npz(path: Path, arrays: dict, meta=None, raw_meta: bytes | None = None) -> Path:
    arrays = dict(arrays)
    if raw_meta is None and meta is not None:
        raw_meta = json.dumps(meta).encode()
    if raw_meta is not None:
        arrays[METADATA_KEY] = np.frombuffer(raw_meta, dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _patch_declared_size(path: Path, member: str, size: int) -> None:
    """Make the zip directory claim ``member`` inflates to ``size`` bytes (data unchanged)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.rfind(b"PK\x01\x02" + b"", 0)
    while at >= 0:
        n = struct.unpack("<H", data[at + 28 : at + 30])[0]
        if data[at + 46 : at + 46 + n] == name:
            data[at + 24 : at + 28] = struct.pack("<I", size)
            # drop a zip64 extra field, which would override the 32-bit size
            m, k = struct.unpack("<HH", data[at + 30 : at + 34])
            extra = at + 46 + n
            if m >= 4 and data[extra : extra + 2] == b"\x01\x00":
                data[extra : extra + 2] = b"\xfe\xca"  # an unknown extra id: ignored
            break
        at = data.rfind(b"PK\x01\x02", 0, at)
    path.write_bytes(bytes(data))


def make_models(folder: Path) -> tuple[Path, dict]:
    """A legitimate MNIST-sized model file and hostile variants of it."""
    folder.mkdir(parents=True, exist_ok=True)
    net = MultiLayerNet(784, [100, 100], 10, rng=0)
    good = save_model(folder / "good.npz", net)
    arrays, meta = _model_arrays(good)
    weights = {k: v for k, v in arrays.items() if k != METADATA_KEY}
    out = {}

    def variant(name, arrays=weights, meta=meta, raw_meta=None):
        out[name] = _write_npz(folder / f"{name}.npz", arrays, meta, raw_meta)

    def with_config(**changes):
        m = json.loads(json.dumps(meta))
        m["config"].update(changes)
        return m

    def with_meta(**changes):
        m = json.loads(json.dumps(meta))
        m.update(changes)
        return m

    # absurd networks in the metadata
    variant("hidden_20000x20000", meta=with_config(hidden_size_list=[20000, 20000]))
    variant("hidden_1e9", meta=with_config(hidden_size_list=[10**9]))
    variant("hidden_1e300", meta=with_config(hidden_size_list=[1e300]))
    variant("hidden_negative", meta=with_config(hidden_size_list=[-5]))
    variant("hidden_string", meta=with_config(hidden_size_list="100"))
    variant("hidden_nested", meta=with_config(hidden_size_list=[[100]]))
    variant("hidden_bool", meta=with_config(hidden_size_list=[True]))
    variant("hidden_10000_layers", meta=with_config(hidden_size_list=[1] * 10_000))
    variant("input_size_huge", meta=with_config(input_size=2**40))
    variant("activation_unknown", meta=with_config(activation="os.system"))
    variant("dtype_object", meta=with_config(dtype="object"))
    variant("unknown_class", meta=with_config(**{"class": "Evil"}))
    variant("extra_config_key", meta=with_config(evil=1))
    variant("config_list", meta=with_meta(config=[1, 2]))
    variant("config_missing", meta={k: v for k, v in meta.items() if k != "config"})
    variant("user_list", meta=with_meta(user=[1, 2]))
    variant("optimizer_list", meta=with_meta(optimizer=[1]))
    variant("random_state_list", meta=with_meta(random_state=[1]))
    variant(
        "format_version_inf",
        raw_meta=json.dumps(meta)
        .replace('"format_version": 1', '"format_version": 1e999')
        .encode(),
    )
    variant("format_version_99", meta=with_meta(format_version=99))
    variant("metadata_not_json", raw_meta=b"\xff\xfe not json")
    variant("metadata_deep_json", raw_meta=b"[" * 100_000 + b"]" * 100_000)
    variant(
        "metadata_deep_in_user",
        raw_meta=json.dumps(meta)[:-1].encode()
        + b', "user": '
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}",
    )
    variant("metadata_list", raw_meta=b"[1, 2, 3]")
    # bad weights
    for name, value in (
        ("nan", np.nan),
        ("inf", np.inf),
        ("1e300_float64", 1e300),
        ("complex", 1 + 2j),
        ("int", 3),
    ):
        bad = dict(weights)
        dtype = {"complex": np.complex64, "int": np.int64, "1e300_float64": np.float64}.get(
            name, np.float32
        )
        w = bad["W2"].astype(dtype)
        w[3, 4] = value
        bad["W2"] = w
        variant(f"weights_{name}", arrays=bad)
    bad = dict(weights)
    bad["W1"] = np.zeros((784, 99), np.float32)
    variant("weights_wrong_shape", arrays=bad)
    variant("weights_missing", arrays={k: v for k, v in weights.items() if k != "b3"})
    variant("weights_extra_entry", arrays=dict(weights, evil=np.zeros(3)))
    bad = dict(weights)
    bad["W1"] = np.asfortranarray(weights["W1"])
    variant("weights_fortran", arrays=bad)
    bad = dict(weights)
    bad["W1"] = np.array([object()] * 4, dtype=object)
    variant("weights_object", arrays=bad)
    bad = dict(weights)
    bad["W1"] = np.zeros(784 * 100, dtype=[("a", "<f4")]).reshape(784, 100)
    variant("weights_structured", arrays=bad)
    # a member declaring 3 GiB (zip directory patched; the data is never inflated)
    for member in ("W1.npy", "evil.npy"):
        arrays_big = dict(weights) if member == "W1.npy" else dict(weights, evil=np.zeros(4))
        name = f"declares_3gib_{member[:-4]}"
        variant(name, arrays=arrays_big)
        _patch_declared_size(out[name], member, 3 * 2**30)
    # a .npy header declaring a huge shape, entry size consistent with it in the directory
    big = folder / "huge_header.npz"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in weights.items():
            if k != "W1":
                with zf.open(k + ".npy", "w") as f:
                    np.lib.format.write_array(f, v)
        header = {"descr": "<f4", "fortran_order": False, "shape": (784, 2**28)}
        with zf.open("W1.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(b"\x00" * 4096)
        with zf.open(METADATA_KEY + ".npy", "w") as f:
            np.lib.format.write_array(f, arrays[METADATA_KEY])
    out["huge_header"] = big
    # broken archives
    for name, data in (
        ("empty", b""),
        ("random_bytes", os.urandom(5000)),
        ("truncated_zip", good.read_bytes()[: good.stat().st_size // 2]),
        ("zip64_end_record", b"PK\x05\x06" + b"\x00" * 6 + b"\xff\xff" + b"\xff" * 8 + b"\x00\x00"),
    ):
        (folder / f"{name}.npz").write_bytes(data)
        out[name] = folder / f"{name}.npz"
    many = folder / "many_entries.npz"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(12_000):
            zf.writestr(f"e{i}.npy", b"")
    out["many_entries"] = many
    single = folder / "single_npy.npz"
    np.save(single, np.zeros(3))
    single.rename(folder / "single_npy.npz") if single.exists() else None
    out["single_npy"] = folder / "single_npy.npz.npy"
    fifo = folder / "fifo.npz"
    os.mkfifo(fifo)
    out["fifo"] = fifo
    corrupt = folder / "corrupt_member.npz"
    data = bytearray(good.read_bytes())
    data[2000:2100] = b"\x00" * 100  # inside W1's data: CRC mismatch
    corrupt.write_bytes(bytes(data))
    out["corrupt_member"] = corrupt
    return good, out


# -- IDX files ---------------------------------------------------------------------------------


def make_idx(folder: Path) -> dict:
    """Hostile IDX files: gzip bombs, overflowing or absurd headers, truncation."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}

    def raw(name, data, gz=True):
        path = folder / f"{name}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data, compresslevel=1, mtime=0) if gz else data)
        out[name] = path

    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28)
    # a 256 MiB stream of zeros behind an honest 47 MB header (1/3 MB compressed)
    bomb = gzip.compress(header, mtime=0)
    z = gzip.compress(b"\x00" * (256 * MB), compresslevel=9, mtime=0)
    (folder / "bomb_trailing.gz").write_bytes(bomb + z)  # two gzip members
    out["bomb_trailing"] = folder / "bomb_trailing.gz"
    raw("header_4gib_squared", bytes([0, 0, 8, 2]) + struct.pack(">2I", 2**32 - 1, 2**32 - 1))
    raw("header_overflow_int64", bytes([0, 0, 0x0E, 4]) + struct.pack(">4I", *[2**32 - 1] * 4))
    raw("header_2gib", bytes([0, 0, 8, 1]) + struct.pack(">I", 2**31) + b"\x00" * 100)
    raw(
        "header_overflow_raw",
        bytes([0, 0, 0x0E, 4]) + struct.pack(">4I", *[2**32 - 1] * 4),
        gz=False,
    )
    raw("truncated_data", header + b"\x00" * 1000)
    raw("zero_dims", bytes([0, 0, 8, 0]))
    raw("bad_type", bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]))
    raw("bad_magic", b"\x01\x02\x08\x01" + b"\x00" * 8)
    raw("empty", b"")
    path = folder / "truncated_gzip.gz"
    path.write_bytes(gzip.compress(header + b"\x00" * 5000)[:40])
    out["truncated_gzip"] = path
    path = folder / "not_gzip.gz"
    path.write_bytes(header)
    out["not_gzip"] = path
    sparse = folder / "sparse_1gib"
    with open(sparse, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 2**30))
        f.truncate(2**30 + 8)
    out["sparse_1gib"] = sparse
    fifo = folder / "fifo.gz"
    os.mkfifo(fifo)
    out["fifo"] = fifo
    return out


def make_good_idx(folder: Path) -> Path:
    path = folder / "good-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((60000, 28, 28), np.uint8))
    return path


# -- loading in a child ------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import gc, json, sys, traceback
    import numpy as np
    import dlscratch.io, dlscratch.data.idx, dlscratch.cli.evaluate
    from pathlib import Path

    def status(key):  # kB, from /proc/self/status
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])

    kind = sys.argv[1]
    loaders = {
        "pickle": dlscratch.io.load_book_weights,
        "model": dlscratch.io.load_model,
        "checkpoint": dlscratch.io.load_checkpoint,
        "classifier": lambda p: dlscratch.cli.evaluate.load_classifier(Path(p)),
        "idx": dlscratch.data.idx.read_idx,
    }
    load = loaders[kind]
    results = {}
    for path in sys.argv[2:]:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to now
            f.write("5")
        base = status("VmRSS")
        try:
            obj = load(path)
            outcome, message = "accepted", ""
        except (ValueError, OSError) as exc:
            outcome, message = "refused", f"{type(exc).__name__}: {exc}"
        except BaseException as exc:
            outcome, message = "crashed", traceback.format_exc()
        obj = None
        peak_mb = (status("VmHWM") - base) / 1024
        results[path] = [outcome, message, peak_mb]
    print(json.dumps({"results": results}))
    """
)


def load_in_child(kind: str, paths, timeout: float = 120) -> dict:
    """Load ``paths`` with the ``kind`` loader in a fresh Python; results and peak memory.

    Returns ``{"results": {path: [outcome, message, peak MB above the RSS before]},
    "peak_mb": the largest of those, "returncode": ...}``; a child killed by a signal
    (a segfault) has no results. The peak of each load is measured alone: the
    kernel's peak-RSS mark is reset before it (``/proc/self/clear_refs``).
    """
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        return {
            "returncode": proc.returncode,
            "results": {},
            "stderr": proc.stderr,
            "peak_mb": None,
        }
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["returncode"] = 0
    report["peak_mb"] = max((r[2] for r in report["results"].values()), default=0.0)
    report["stderr"] = proc.stderr
    return report
