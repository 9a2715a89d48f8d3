"""EmotionNet: facial expression recognition on FER2013-format data."""

import os

# Keep TensorFlow's C++ start-up chatter out of job logs; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
