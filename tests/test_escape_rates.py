"""The saddle experiment's tables: the mean exit time and its power law in the negative curvature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcamlab.escape.rates import saddle_exponent_table, saddle_table


def test_saddle_power_law():
    k = np.geomspace(0.25, 4.0, 6)
    frame = pd.DataFrame({
        "optimizer": "sgd", "k": np.repeat(k, 3), "hessian": -np.repeat(k, 3) * 9.6,
        "exposure": np.repeat(50.0 / k, 3) * np.tile([0.9, 1.0, 1.1], 6), "escaped": True,
    })
    table = saddle_table(frame)
    assert table["mean_time"].to_numpy() == pytest.approx(50.0 / k)
    exponent = saddle_exponent_table(table).iloc[0]
    assert exponent["exponent"] == pytest.approx(-1.0)
