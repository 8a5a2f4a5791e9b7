"""TensorBoard event files without TensorFlow: what
:class:`keras_lstm_gates.GateMonitor` writes with ``log_dir``.

The files are written with TensorBoard's own record writer and protocol
buffers (the ``tensorboard`` package), one file per writer, written and
flushed synchronously, so that they work alike on every Keras backend.
"""

import io
import itertools
import os
import socket
import struct
import time

import numpy as np

INSTALL_HINT = (
    "GateMonitor(log_dir=...) writes TensorBoard event files and needs the "
    "`tensorboard` package; install it with `pip install "
    "'keras-lstm-gates[tensorboard]'` (or `pip install tensorboard`), or leave "
    "log_dir out to keep the statistics in `monitor.history` only."
)

_uid = itertools.count()


def tensorboard_modules():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return event_pb2, summary_pb2, RecordWriter


def png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()


class EventWriter:
    """Event files with TensorBoard's own record writer and protos (no
    TensorFlow): one file per writer, written and flushed synchronously."""

    def __init__(self, directory):
        self._event_pb2, self._summary_pb2, record_writer = tensorboard_modules()
        os.makedirs(directory, exist_ok=True)
        stamp = f"{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_uid)}"
        name = f"events.out.tfevents.{stamp}.klg-gates"
        self.path = os.path.join(directory, name)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._records = record_writer(self._file)
        self._event(file_version="brain.Event:2")
        self.flush()

    def _event(self, step=None, summary=None, **fields):
        event = self._event_pb2.Event(wall_time=time.time(), **fields)
        if step is not None:
            event.step = int(step)
        if summary is not None:
            event.summary.CopyFrom(summary)
        self._records.write(event.SerializeToString())

    def scalars(self, step, values):
        summary = self._summary_pb2.Summary(
            value=[
                self._summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
                for tag, v in values.items()
            ]
        )
        self._event(step, summary)

    def histogram(self, step, tag, values, low, high, bins=30):
        values = np.asarray(values, dtype=np.float64).ravel()
        counts, edges = np.histogram(values, bins=bins, range=(low, high))
        histo = self._summary_pb2.HistogramProto(
            min=float(values.min()) if values.size else 0.0,
            max=float(values.max()) if values.size else 0.0,
            num=float(values.size),
            sum=float(values.sum()),
            sum_squares=float((values**2).sum()),
            bucket_limit=[float(e) for e in edges[1:]],
            bucket=[float(c) for c in counts],
        )
        value = self._summary_pb2.Summary.Value(tag=tag, histo=histo)
        self._event(step, self._summary_pb2.Summary(value=[value]))

    def image(self, step, tag, png):
        width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR chunk
        image = self._summary_pb2.Summary.Image(
            height=height, width=width, colorspace=4, encoded_image_string=png
        )
        value = self._summary_pb2.Summary.Value(tag=tag, image=image)
        self._event(step, self._summary_pb2.Summary(value=[value]))

    def flush(self):
        self._records.flush()

    def close(self):
        self.flush()
        self._records.close()
