"""The JSON API of ``dlscratch serve``, through FastAPI's test client.

Predictions are checked against the network itself and against ``dlscratch predict``
on real MNIST test images; every kind of bad input must get a 4xx with a message;
run names and file names from URLs must not leave the runs folder.
"""

import io
import json
import os
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from shared_data import BOOK_WEIGHTS, needs_mnist, needs_weights

pytest.importorskip("fastapi", reason="dlscratch serve needs FastAPI: pip install 'dlscratch[web]'")
pytest.importorskip("httpx2", reason="the test client needs httpx2: pip install 'dlscratch[test]'")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from dlscratch.serve import create_app  # noqa: E402
from dlscratch.serve.app import LOOPBACK_HOSTS  # noqa: E402
from dlscratch.serve.runs import UnsafePathError, safe_child  # noqa: E402


def png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def png_0x0() -> bytes:
    """A PNG file whose header declares 0x0 pixels (Pillow will not write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def mnist_test():
    from dlscratch.data import load_mnist

    _, (x, t) = load_mnist(normalize=False)
    return x[:20], t[:20]


@pytest.fixture(scope="module")
def book_client(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with TestClient(create_app(model=BOOK_WEIGHTS, runs_dir=runs)) as client:
        yield client


@pytest.fixture(scope="module")
def book_net():
    from dlscratch.io import load_book_weights

    return load_book_weights(BOOK_WEIGHTS)


# -- predictions --------------------------------------------------------------------------------


@needs_weights
def test_pixels_give_the_networks_own_prediction(book_client, book_net, mnist_test):
    x, t = mnist_test
    inputs = x.astype(np.float32) / 255
    expected = book_net.predict_proba(inputs)
    for i in range(len(x)):
        r = book_client.post("/api/predict", json={"pixels": inputs[i].tolist()})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["label"] == int(np.argmax(expected[i]))
        np.testing.assert_allclose(answer["probabilities"], expected[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.float32(answer["input"]), inputs[i])
        assert answer["blank"] is False and answer["class_name"] == str(answer["label"])
    # and the book's network reads these digits as the labels say (93% on the test set)
    labels = [
        book_client.post("/api/predict", json={"pixels": v.tolist()}).json()["label"]
        for v in inputs
    ]
    assert np.mean(np.array(labels) == t) >= 0.85


@needs_weights
def test_rows_of_pixels_are_accepted(book_client, mnist_test):
    x, _ = mnist_test
    flat = (x[0] / 255).tolist()
    rows = [flat[r * 28 : (r + 1) * 28] for r in range(28)]
    a = book_client.post("/api/predict", json={"pixels": flat}).json()
    b = book_client.post("/api/predict", json={"pixels": rows}).json()
    assert a["probabilities"] == b["probabilities"]


@needs_weights
def test_image_upload_reproduces_dlscratch_predict(book_client, mnist_test, tmp_path, capsys):
    from dlscratch.cli import main
    from dlscratch.imaging import open_image, prepare_digit

    x, t = mnist_test
    files = []
    for i in range(6):
        path = tmp_path / f"digit{i}.png"
        path.write_bytes(png_bytes(x[i].reshape(28, 28)))
        files.append(path)
    assert main(["predict", "--model", str(BOOK_WEIGHTS), "--json", *map(str, files)]) == 0
    command = json.loads(capsys.readouterr().out)
    right = 0
    for path, expected, label in zip(files, command, t):
        data = path.read_bytes()
        raw = book_client.post("/api/predict", content=data, headers={"content-type": "image/png"})
        form = book_client.post("/api/predict", files={"file": (path.name, data, "image/png")})
        for r in (raw, form):
            assert r.status_code == 200, r.text
            answer = r.json()
            top = expected["top"][0]
            assert answer["label"] == top["index"]
            assert answer["probabilities"][top["index"]] == pytest.approx(top["probability"])
            pixels = prepare_digit(open_image(path)).pixels
            np.testing.assert_array_equal(np.float32(answer["input"]), pixels)
        right += answer["label"] == label
    assert right >= 5


@needs_weights
def test_hidden_units_are_the_first_layer_activations(book_client, book_net, mnist_test):
    x, _ = mnist_test
    v = x[3].astype(np.float32) / 255
    answer = book_client.post("/api/predict", json={"pixels": v.tolist()}).json()
    W1, b1 = (np.asarray(book_net.params[k], dtype=np.float64) for k in ("W1", "b1"))
    expected = 1 / (1 + np.exp(-(v @ W1 + b1)))  # the book's first sigmoid layer
    hidden = answer["hidden"]
    assert hidden["layer"] == "Activation1"
    np.testing.assert_allclose(hidden["values"], expected, rtol=1e-4, atol=1e-6)
    assert hidden["top"] == list(np.argsort(-np.asarray(hidden["values"]), kind="stable")[:10])


@needs_mnist
def test_a_cnn_run_is_served_without_a_heat_map(tmp_path, mnist_test):
    from dlscratch.io import save_model
    from dlscratch.nets import SimpleConvNet

    net = SimpleConvNet(rng=0)
    run = tmp_path / "runs" / "cnn-run"
    save_model(run / "model.npz", net)
    x, _ = mnist_test
    with TestClient(create_app(model=run, runs_dir=tmp_path / "runs")) as client:
        info = client.get("/api/model").json()
        assert info["config"]["class"] == "SimpleConvNet" and info["fully_connected"] is False
        v = x[:5].astype(np.float32) / 255
        expected = net.predict(v.reshape(5, 1, 28, 28)).argmax(axis=1)
        for pixels, label in zip(v, expected):
            answer = client.post("/api/predict", json={"pixels": pixels.tolist()}).json()
            assert answer["label"] == label and answer["hidden"] is None
            assert sum(answer["probabilities"]) == pytest.approx(1.0)
        r = client.post(
            "/api/predict",
            content=png_bytes(x[0].reshape(28, 28)),
            headers={"content-type": "image/png"},
        )
        assert r.status_code == 200 and r.json()["hidden"] is None
        assert r.json()["label"] in range(10)


def test_a_model_for_other_images_is_refused(tmp_path):
    from dlscratch.io import save_model
    from dlscratch.nets import SimpleConvNet

    path = save_model(tmp_path / "m.npz", SimpleConvNet(input_dim=(1, 16, 16), rng=0))
    with pytest.raises(ValueError, match=r"expects images of shape \(1, 16, 16\), not 28x28"):
        create_app(model=path, runs_dir=tmp_path / "runs")


SIMPLE_CONVNET = BOOK_WEIGHTS.parent / "simple_convnet_params.pkl"


@needs_mnist
@pytest.mark.skipif(not SIMPLE_CONVNET.is_file(), reason=f"{SIMPLE_CONVNET} missing")
def test_the_books_cnn_weights_are_served(tmp_path, mnist_test):
    from dlscratch.book_weights import load_book_network

    net = load_book_network(SIMPLE_CONVNET)
    x, _ = mnist_test
    with TestClient(create_app(model=SIMPLE_CONVNET, runs_dir=tmp_path)) as client:
        assert client.get("/api/model").json()["config"]["class"] == "SimpleConvNet"
        v = x[:5].astype(np.float32) / 255
        labels = [
            client.post("/api/predict", json={"pixels": p.tolist()}).json()["label"] for p in v
        ]
    assert labels == list(net.predict(v.reshape(5, 1, 28, 28)).argmax(axis=1))


@needs_weights
def test_a_blank_canvas_asks_for_a_digit(book_client):
    white = png_bytes(np.full((280, 280), 255))
    for r in (
        book_client.post("/api/predict", content=white, headers={"content-type": "image/png"}),
        book_client.post("/api/predict", json={"pixels": [0] * 784}),
    ):
        assert r.status_code == 200
        answer = r.json()
        assert answer["blank"] is True and answer["label"] is None
        assert answer["probabilities"] is None
        assert "draw a digit" in answer["message"]
        assert answer["input"] == [0.0] * 784


@needs_weights
def test_two_digits_side_by_side_are_not_guessed(book_client, mnist_test):
    x, _ = mnist_test
    pair = np.hstack([x[0].reshape(28, 28), np.zeros((28, 20)), x[1].reshape(28, 28)])
    r = book_client.post(
        "/api/predict", content=png_bytes(pair), headers={"content-type": "image/png"}
    )
    answer = r.json()
    assert r.status_code == 200 and answer["label"] is None and answer["digits"] == 2
    assert "one digit" in answer["message"]


# -- bad input: a 4xx with a message, never a 500 ---------------------------------------------

nan_body = '{"pixels": [' + ", ".join(["0.5"] * 783 + ["NaN"]) + "]}"
BAD_INPUTS = {
    "malformed JSON": ("application/json", b'{"pixels": [0.1, ', 400, "malformed JSON"),
    "not an object": ("application/json", b"[1, 2, 3]", 422, "pixels"),
    "no pixels": ("application/json", b'{"pixel": []}', 422, "pixels"),
    "wrong count": ("application/json", json.dumps({"pixels": [0.1] * 783}).encode(), 422, "784"),
    "NaN": ("application/json", nan_body.encode(), 422, "finite"),
    "above 1": ("application/json", json.dumps({"pixels": [1.5] * 784}).encode(), 422, "0 to 1"),
    "text pixel": (
        "application/json",
        json.dumps({"pixels": ["a"] + [0] * 783}).encode(),
        422,
        "number",
    ),
    "0x0 image": ("image/png", png_0x0(), 422, "image"),
    "not an image": ("image/png", b"this is not a PNG file", 422, "image"),
    "empty body": ("image/png", b"", 400, "empty"),
    "wrong type": ("text/plain", b"7", 415, "content type"),
    "no type": ("", b"7", 415, "content type"),
}


@needs_weights
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_clear_4xx(book_client, case):
    content_type, body, status, words = BAD_INPUTS[case]
    headers = {"content-type": content_type} if content_type else {}
    r = book_client.post("/api/predict", content=body, headers=headers)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and words in detail


@needs_weights
def test_uploads_over_the_caps_are_refused(tmp_path, mnist_test):
    x, _ = mnist_test
    app = create_app(model=BOOK_WEIGHTS, runs_dir=tmp_path, max_upload_bytes=2000, max_pixels=800)
    client = TestClient(app)
    big = np.random.default_rng(0).integers(0, 256, (60, 60))  # noise: > 2000 bytes as PNG
    r = client.post("/api/predict", content=png_bytes(big), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "larger than 2000 bytes" in r.json()["detail"]
    many = np.zeros((30, 30))  # 900 pixels > 800, tiny file
    r = client.post("/api/predict", content=png_bytes(many), headers={"content-type": "image/png"})
    assert r.status_code == 422 and "pixels" in r.json()["detail"]
    ok = client.post(
        "/api/predict",
        content=png_bytes(x[0].reshape(28, 28)),
        headers={"content-type": "image/png"},
    )
    assert ok.status_code == 200


@needs_weights
def test_form_uploads_need_an_image_file(book_client):
    r = book_client.post("/api/predict", files={"other": ("a.png", b"x", "image/png")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = book_client.post("/api/predict", files={"file": ("a.txt", b"7", "text/plain")})
    assert r.status_code == 415


@needs_weights
def test_requests_from_other_sites_and_hosts_are_refused(tmp_path):
    app = create_app(model=BOOK_WEIGHTS, runs_dir=tmp_path, allowed_hosts=LOOPBACK_HOSTS)
    local = TestClient(app, base_url="http://127.0.0.1:8000")
    assert local.get("/").status_code == 200
    r = local.post("/api/train/stop", headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    assert (
        local.post("/api/train/stop", headers={"origin": "http://127.0.0.1:8000"}).status_code
        == 409
    )
    rebound = TestClient(app, base_url="http://evil.example")  # DNS rebinding
    assert rebound.get("/api/model").status_code == 400


# -- pages --------------------------------------------------------------------------------------


@needs_weights
def test_pages_and_their_files_are_served_by_the_app(book_client):
    for path in ("/", "/train", "/runs", "/docs"):
        r = book_client.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "default-src 'self'" in r.headers["content-security-policy"]
        for ref in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
            assert book_client.get(ref).status_code == 200, ref
        assert not re.search(r'(?:src|href)="(?:https?:)?//', r.text)  # nothing from a CDN
    assert book_client.get("/openapi.json").json()["paths"]["/api/predict"]


# -- models -------------------------------------------------------------------------------------


def _save_run(folder: Path, seed: int, hidden=(8,)):
    from dlscratch.io import save_model
    from dlscratch.nets import MultiLayerNet

    folder.mkdir(parents=True)
    net = MultiLayerNet(784, list(hidden), 10, rng=seed)
    save_model(folder / "model.npz", net, metadata={"dataset": {"name": "mnist"}})
    (folder / "config.json").write_text(json.dumps({"hidden": list(hidden)}))
    return net


@needs_weights
def test_default_model_is_the_newest_run_else_the_books(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSCRATCH_WEIGHTS", str(BOOK_WEIGHTS))
    runs = tmp_path / "runs"
    assert create_app(runs_dir=runs).state.model.source == str(BOOK_WEIGHTS)
    _save_run(runs / "older", 1, hidden=(8,))
    newer = _save_run(runs / "newer", 2, hidden=(16,))
    old_time = time.time() - 100
    os.utime(runs / "older" / "model.npz", (old_time, old_time))
    client = TestClient(create_app(runs_dir=runs))
    info = client.get("/api/model").json()
    assert info["source"] == str(runs / "newer") and info["config"]["hidden_size_list"] == [16]
    v = np.linspace(0, 1, 784, dtype=np.float32)
    answer = client.post("/api/predict", json={"pixels": v.tolist()}).json()
    np.testing.assert_allclose(answer["probabilities"], newer.predict_proba(v[None])[0], rtol=1e-5)
    assert len(answer["hidden"]["values"]) == 16
    # the runs page's "draw with this model"
    r = client.post("/api/model", json={"run": "older"})
    assert r.status_code == 200 and r.json()["config"]["hidden_size_list"] == [8]
    assert client.post("/api/model", json={"run": "../older"}).status_code == 400


# -- runs and safe paths ------------------------------------------------------------------------


@pytest.fixture
def runs_tree(tmp_path):
    """runs/good (finished), runs/interrupted, and links that point out of runs/."""
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    good = runs / "good"
    good.mkdir(parents=True)
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (outside / "secret.png").write_bytes(b"secret")
    config = {"dataset": "mnist", "hidden": [50], "activation": "relu", "optimizer": "adam"}
    (good / "config.json").write_text(json.dumps(config))
    (good / "metrics.json").write_text(
        json.dumps(
            {
                "config": config,
                "final": {"test_acc": 0.9612, "val_acc": 0.958},
                "epochs_completed": 2,
                "wall_time_s": 3.5,
            }
        )
    )
    (good / "history.csv").write_text(
        "epoch,step,lr,batch_loss,train_loss,train_acc,val_loss,val_acc,time_s\n"
        "1,450,0.001,0.31,0.29,0.91,0.30,0.905,1.2\n"
        "2,900,0.001,0.17,0.15,0.955,,,1.1\n"
    )
    (good / "curves.png").write_bytes(png_bytes(np.zeros((4, 4))))
    (good / "notes.txt").write_text("not a figure")
    (good / "link.png").symlink_to(outside / "secret.png")
    (runs / "escape").symlink_to(outside)
    stopped = runs / "interrupted"
    stopped.mkdir()
    (stopped / "config.json").write_text(json.dumps(config))
    (stopped / "checkpoint.npz").write_bytes(b"")
    (runs / "not-a-run").mkdir()
    return runs


@needs_weights
def test_runs_are_listed_with_config_metrics_and_history(runs_tree):
    client = TestClient(create_app(model=BOOK_WEIGHTS, runs_dir=runs_tree))
    data = client.get("/api/runs").json()
    by_name = {r["name"]: r for r in data["runs"]}
    assert set(by_name) == {"good", "interrupted"}  # not the link out, not the plain folder
    good = by_name["good"]
    assert good["status"] == "finished" and good["final"]["test_acc"] == 0.9612
    assert good["config"]["hidden"] == [50] and good["figures"] == ["curves.png", "link.png"]
    assert by_name["interrupted"]["status"] == "interrupted"
    assert data["report"] is None
    history = client.get("/api/runs/good/history").json()
    assert history["columns"][:2] == ["epoch", "step"]
    assert history["rows"][1][:2] == [2, 900] and history["rows"][1][5] == 0.955
    assert history["rows"][1][7] is None  # an empty cell
    assert client.get("/api/runs/interrupted/history").status_code == 404
    r = client.get("/runs/good/files/curves.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


@needs_weights
@pytest.mark.parametrize(
    "url, status",
    [
        ("/api/runs/%2e%2e", 400),
        ("/api/runs/escape", 400),  # a link out of the runs folder
        ("/api/runs/.hidden", 400),
        ("/api/runs/not-a-run", 404),
        ("/api/runs/missing/history", 404),
        ("/api/runs/%2Fetc/history", 404),  # a slash never reaches the handler as a name
        ("/api/runs/..%5C..%5Cetc/history", 400),
        ("/runs/escape/files/secret.png", 400),
        ("/runs/good/files/link.png", 400),  # a link to a file outside
        ("/runs/good/files/..%2F..%2Foutside%2Fsecret.png", 404),
        ("/runs/good/files/notes.txt", 404),  # not a figure
        ("/runs/good/files/%2e%2e.png", 400),
    ],
)
def test_names_in_urls_cannot_leave_the_runs_folder(runs_tree, url, status):
    client = TestClient(create_app(model=BOOK_WEIGHTS, runs_dir=runs_tree))
    r = client.get(url)
    assert r.status_code == status, (url, r.text)
    assert b"secret" not in r.content


def test_safe_child_refuses_every_way_out(tmp_path):
    (tmp_path / "ok").mkdir()
    (tmp_path / "out").symlink_to("/")
    assert safe_child(tmp_path, "ok") == (tmp_path / "ok").resolve()
    for name in ("", ".", "..", "/etc", "a/b", "..\\x", ".git", "out", "x\0y"):
        with pytest.raises(UnsafePathError):
            safe_child(tmp_path, name)
    with pytest.raises(FileNotFoundError):
        safe_child(tmp_path, "missing")


@needs_weights
def test_the_experiment_report_is_linked_and_served_safely(runs_tree, tmp_path):
    (runs_tree / "index.html").write_text("<h1>report</h1>")
    (runs_tree / "good" / "curves.png").write_bytes(b"png")
    client = TestClient(create_app(model=BOOK_WEIGHTS, runs_dir=runs_tree))
    assert client.get("/api/runs").json()["report"] == "/report/"
    assert client.get("/report/").text == "<h1>report</h1>"
    assert client.get("/report/good/curves.png").content == b"png"
    assert client.get("/report/escape/secret.png").status_code == 400
    assert client.get("/report/%2e%2e/outside/secret.png").status_code == 400


# -- training -----------------------------------------------------------------------------------


@needs_weights
def test_train_form_choices_come_from_the_registries(book_client):
    from dlscratch.layers import ACTIVATIONS
    from dlscratch.optim import OPTIMIZERS

    form = book_client.get("/api/train/options").json()
    assert [a["name"] for a in form["activations"]] == list(ACTIVATIONS)
    assert [o["name"] for o in form["optimizers"]] == list(OPTIMIZERS)
    assert {o["name"]: o["default_lr"] for o in form["optimizers"]} == {
        n: OPTIMIZERS[n].default_lr for n in OPTIMIZERS
    }


@needs_weights
@pytest.mark.parametrize(
    "options, words",
    [
        ({"hidden": "100,x"}, "--hidden"),
        ({"activation": "softplus"}, "--activation"),
        ({"optimizer": "lbfgs"}, "--optimizer"),
        ({"lr": -0.1}, "--lr"),
        ({"epochs": 0}, "--epochs"),
        ({"dropout": 1.5}, "--dropout"),
    ],
)
def test_bad_train_options_get_the_commands_message(book_client, options, words):
    r = book_client.post("/api/train", json=options)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("dlscratch train: ") and words in r.json()["detail"]
    assert book_client.get("/api/train").json()["state"] == "idle"


@needs_weights
def test_train_requests_of_the_wrong_shape_get_422(book_client):
    assert book_client.post("/api/train", json={"epochs": "many"}).status_code == 422
    assert book_client.post("/api/train", json={"unknown": 1}).status_code == 422
    assert (
        book_client.post(
            "/api/train", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    r = book_client.post("/api/train/stop")
    assert r.status_code == 409 and "no training" in r.json()["detail"]


def _events(client) -> list[tuple[str, dict]]:
    text = client.get(
        f"/api/train/events?since={client.get('/api/train').json()['since']}&once=1"
    ).text
    found = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def _wait(client, done, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get("/api/train").json()
        if done(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"training did not get there in {timeout} s: {state}")


@needs_mnist
@pytest.mark.slow
def test_training_runs_streams_its_epochs_and_can_be_stopped(tmp_path):
    import csv

    runs = tmp_path / "runs"
    with TestClient(create_app(model=BOOK_WEIGHTS, runs_dir=runs)) as client:
        # a short run to the end: its epoch events are the numbers in its history.csv
        r = client.post("/api/train", json={"hidden": "20", "epochs": 2, "limit": 1000})
        assert r.status_code == 202, r.text
        name = r.json()["run"]
        busy = client.post("/api/train", json={"epochs": 1})
        assert busy.status_code == 409 and "one training at a time" in busy.json()["detail"]
        state = _wait(client, lambda s: s["state"] not in ("running", "stopping"))
        assert state["state"] == "finished" and state["exit_code"] == 0, state
        epochs = [data for kind, data in _events(client) if kind == "epoch"]
        with open(runs / name / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [e["epoch"] for e in epochs] == [1, 2] == [int(r["epoch"]) for r in rows]
        for event, row in zip(epochs, rows):
            assert event["train_acc"] == pytest.approx(float(row["train_acc"]), abs=6e-5)
            assert event["val_loss"] == pytest.approx(float(row["val_loss"]), abs=6e-5)
        run = client.get(f"/api/runs/{name}").json()
        assert run["status"] == "finished" and run["config"]["hidden"] == [20]

        # a diverging run: the command's own message, as on the command line
        r = client.post(
            "/api/train",
            json={"hidden": "20", "optimizer": "sgd", "lr": 1e6, "limit": 1000, "epochs": 1},
        )
        assert r.status_code == 202
        state = _wait(client, lambda s: s["state"] not in ("running", "stopping"))
        assert state["state"] == "failed" and state["exit_code"] == 1
        assert state["message"].startswith("dlscratch train: error: ")
        assert "diverging" in state["message"] and "lower the learning rate" in state["message"]

        # a longer run, stopped like Ctrl-C once its progress shows: checkpoint saved
        r = client.post("/api/train", json={"hidden": "400,400", "epochs": 5, "limit": 30000})
        name = r.json()["run"]
        deadline = time.monotonic() + 60
        while not any(k in ("progress", "epoch") for k, _ in _events(client)):
            assert time.monotonic() < deadline, _events(client)
            time.sleep(0.2)
        assert client.post("/api/train/stop").status_code == 202
        state = _wait(client, lambda s: s["state"] not in ("running", "stopping"))
        assert state["state"] == "stopped" and state["exit_code"] == 130
        assert (runs / name / "checkpoint.npz").is_file()
        assert client.get(f"/api/runs/{name}").json()["status"] == "interrupted"


# -- the command ---------------------------------------------------------------------------------


def test_serve_options_are_checked(capsys):
    from dlscratch.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "70000"])
    assert exc.value.code == 2 and "0-65535" in capsys.readouterr().err


@needs_weights
def test_a_taken_port_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import socket

    from dlscratch.cli import main
    from dlscratch.cli.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(
            ["serve", "--model", str(BOOK_WEIGHTS), "--runs", str(tmp_path), "--port", str(port)]
        )
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_progress_lines_of_the_train_command_become_events():
    import io

    from dlscratch.nets import MultiLayerNet
    from dlscratch.optim import SGD
    from dlscratch.serve.training import parse_line
    from dlscratch.training import Trainer
    from dlscratch.training.callbacks import format_epoch
    from dlscratch.training.progress import JsonProgress

    rng = np.random.default_rng(0)
    x = rng.random((200, 784), dtype=np.float32)
    t = rng.integers(0, 10, 200)
    out = io.StringIO()  # what `dlscratch train --progress jsonl` writes, from a real run
    net = MultiLayerNet(784, [8], 10, rng=0)
    jsonl = JsonProgress(mininterval=0, file=out)
    trainer = Trainer(
        net, SGD(lr=0.1), x, t, x[:50], t[:50], epochs=2, batch_size=20, rng=1, callbacks=[jsonl]
    )
    history = trainer.fit()
    events = [parse_line(line) for line in out.getvalue().splitlines()]
    progress = [data for kind, data in events if kind == "progress"]
    epochs = [data for kind, data in events if kind == "epoch"]
    assert [kind for kind, _ in events] == (["progress"] * 10 + ["epoch"]) * 2
    assert progress[0]["epoch"] == 1 and progress[-1]["epoch"] == 2
    assert [p["step"] for p in progress[:10]] == list(range(1, 11))
    assert set(progress[0]) == {"epoch", "epochs", "step", "steps", "loss", "acc"}
    assert progress[0]["epochs"] == 2 and progress[0]["steps"] == 10
    assert 0 <= progress[-1]["acc"] <= 1 and progress[-1]["loss"] > 0
    for event, row in zip(epochs, history.epochs):  # the History rows themselves
        assert event["epochs"] == 2
        for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert event[key] == pytest.approx(row[key]), key
    # every other line is a log line; a broken or foreign JSON line too
    line = format_epoch(history.epochs[0], 2)
    assert parse_line(line + "\n") == ("log", {"line": line})
    broken = '{"event": "progress", "epoch"'
    assert parse_line(broken) == ("log", {"line": broken})
    assert parse_line('{"event": "other"}') == ("log", {"line": '{"event": "other"}'})
    assert parse_line("   \n") is None


def test_connections_of_the_served_socket_send_without_delay():
    """TCP_NODELAY on each connection: else Nagle's algorithm and delayed ACKs add ~40 ms."""
    import asyncio
    import socket

    from dlscratch.cli.serve import _bind

    sock = _bind("127.0.0.1", 0)

    async def accepted_nodelay():
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport):
                got.set_result(transport.get_extra_info("socket"))

        server = await loop.create_server(Accept, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        conn = await asyncio.wait_for(got, 10)
        value = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        await server.wait_closed()
        return value

    assert asyncio.run(accepted_nodelay()) != 0
