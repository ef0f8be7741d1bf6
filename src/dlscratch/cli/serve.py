"""``dlscratch serve``: the local web app (draw a digit, train with live curves, browse runs).

::

    dlscratch serve                          # newest run under runs/, else the book's weights
    dlscratch serve --model runs/<run> --port 8080
    dlscratch serve --runs experiment-results

Binds to 127.0.0.1 (this computer only) unless ``--host`` says otherwise; the app
has no authentication, so binding to another address prints a warning. Ctrl-C
stops the server (and interrupts a training started from the page, which saves
its checkpoint).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path

from dlscratch.cli.options import positive_int
from dlscratch.serve.runs import DEFAULT_RUNS


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"a port number is 0-65535 (0: any free port), got {value}"
        )
    return value


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "serve",
        help="local web app: draw a digit, train with live curves, browse runs",
        description="Start a local web app: draw a digit and see the probabilities, the "
        "28x28 input the network receives and its hidden units; train a network with live "
        "loss and accuracy curves; compare run folders. Also a JSON API under /api "
        "(documented at /docs). Needs the web extra: pip install 'dlscratch[web]'.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="RUN_OR_FILE",
        help="a run folder, .npz model file or the book's .pkl weights (default: the newest "
        "run folder with a model under --runs, else the book's pretrained weights)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; the app has no "
        "authentication)",
    )
    parser.add_argument(
        "--port", type=port_number, default=8000, help="TCP port (default 8000; 0: any free port)"
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=DEFAULT_RUNS,
        metavar="DIR",
        help="folder of run folders, listed on /runs and written by /train "
        f"(default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="BLAS threads (default: all)",
    )
    parser.set_defaults(func=run)
    return parser


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, so that a taken port fails here with a clear message."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"--host {host}: not an address of this computer ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    # proto IPPROTO_TCP, not 0: asyncio then sets TCP_NODELAY on each connection (without
    # it, Nagle's algorithm and delayed ACKs add about 40 ms to every browser request)
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port "
            "(0: any free port)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def run(args) -> int:
    try:
        import uvicorn

        from dlscratch.serve.app import LOOPBACK_HOSTS, create_app
        from dlscratch.serve.model import load_served_model
    except ImportError as exc:
        raise ValueError(
            f"dlscratch serve needs FastAPI and uvicorn ({exc}); install them with "
            "pip install 'dlscratch[web]'"
        ) from None
    if args.threads is not None:
        from dlscratch.backend import set_num_threads

        set_num_threads(args.threads)

    model = load_served_model(args.model, args.runs)
    loopback = is_loopback(args.host)
    app = create_app(
        model=model,
        runs_dir=args.runs,
        allowed_hosts=LOOPBACK_HOSTS if loopback else None,
    )
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    if not loopback:
        print(
            f"warning: listening on {args.host}: anyone who can reach this address can use the "
            "app (it has no authentication) and start trainings; use the default --host "
            "127.0.0.1 unless you mean it",
            file=sys.stderr,
        )
    print(f"serving {model.source}", flush=True)
    print(f"dlscratch is running at http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="on"
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # Ctrl-C: end the event streams, then stop
            app.state.closing.set()
            super().handle_exit(sig, frame)

    server = Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down for
        pass
    finally:
        sock.close()
    print("stopped", flush=True)
    return 0
