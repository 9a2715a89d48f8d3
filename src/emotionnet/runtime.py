"""Process set-up shared by every job: logging to the rule's log file, TensorFlow thread pools,
seeds and determinism. TensorFlow is imported only when a job asks for it."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


class _BriefFormatter(logging.Formatter):
    """Console lines without tracebacks (those go to the log file only)."""

    def formatException(self, exc_info):  # noqa: N802 - logging's name
        return ""


def setup_logging(log_path=None, level=logging.INFO):
    """Send the package's log lines (and warnings) to stderr and, if given, to ``log_path``."""
    line_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    console = logging.StreamHandler(sys.stderr)  # progress on the console, e.g. one line per epoch
    console.setFormatter(_BriefFormatter(line_format))
    handlers = [console]
    if log_path:
        log_file = logging.FileHandler(log_path, mode="w")
        log_file.setFormatter(logging.Formatter(line_format))
        handlers.append(log_file)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    logging.captureWarnings(True)


def configure(threads: int = 1, seed: int | None = None, deterministic: bool = True):
    """Size TensorFlow's thread pools to the job's threads, seed every generator, and make ops
    deterministic. Uses a GPU automatically when TensorFlow sees one."""
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:
        log.debug("TensorFlow was already initialised; thread pools unchanged")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    log.info("TensorFlow %s on %s, %d thread(s)", tf.__version__, f"{len(gpus)} GPU(s)" if gpus else "the CPU", threads)


class job:
    """Context manager for a workflow script: logs to the rule's log file; an error is logged with
    its traceback, echoed to stderr as one line naming the job, and ends the process with status 1."""

    def __init__(self, log_path, name):
        self.log_path, self.name = log_path, name

    def __enter__(self):
        setup_logging(self.log_path)
        log.info("%s: started", self.name)
        return self

    def __exit__(self, kind, error, traceback):
        if error is None:
            log.info("%s: done", self.name)
            return False
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            return False
        log.error("%s failed: %s (details: %s)", self.name, error, self.log_path, exc_info=(kind, error, traceback))
        raise SystemExit(1)
