"""Suite-wide guards shared by every test module."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Put torch's process-wide thread count back after every test.

    Code under test may pin it (the escape runners use one core); a leaked setting
    changes the reduction order of later in-process training runs, so their numbers
    would differ in the last bits from the same run in a fresh process.
    """
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
