"""Shared test setup.  KERAS_BACKEND is chosen per process by tools/run_tests.sh."""

import keras
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    # free_memory=False skips a full gc per test (0.5-1 s each).
    keras.utils.clear_session(free_memory=False)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def backend_name():
    return keras.backend.backend()


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))
