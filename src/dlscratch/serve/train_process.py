"""``python -m dlscratch.serve.train_process ARGS``: ``dlscratch train ARGS`` for the web app.

The same command, with one difference: Ctrl-C (SIGINT) is handled even when the
server was started from a shell that ignores it for background jobs (a child
inherits an ignored SIGINT, and the trainer then keeps ignoring it). The train
page's stop button relies on SIGINT to save a checkpoint.
"""

import signal
import sys

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from dlscratch.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
