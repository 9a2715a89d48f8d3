"""runtime.configure: thread pools, op determinism and the device it names (in a subprocess, so
this process's TensorFlow settings stay as they are). TensorFlow has no public getter for op
determinism, hence its private config module."""

import subprocess
import sys

SCRIPT = """
import logging, tensorflow as tf
from tensorflow.python.framework import config as tf_config
from emotionnet import runtime
logging.basicConfig(level=logging.INFO, format="%(message)s")
runtime.configure(threads=4)
print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads(), tf_config.is_op_determinism_enabled())
tf.config.list_physical_devices = lambda kind=None: ["fake-gpu"]
runtime.configure(threads=1, deterministic=False)
"""


def test_configure_sizes_thread_pools_enables_determinism_and_names_the_device():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["4", "2", "True"]   # inter-op pool capped at 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("TensorFlow ")]
    assert "on the CPU, 4 thread(s)" in lines[0] and "on 1 GPU(s), 1 thread(s)" in lines[1], lines
