"""The suite's compile-fast XLA flags: a flag the installed jaxlib rejects (XLA aborts on unknown flags) is left
out with a warning, never passed to a child."""

from __future__ import annotations

import pytest
from helpers import xla_flags


def test_rejected_flag_is_left_out_with_a_warning(monkeypatch):
    monkeypatch.delenv(xla_flags._CHECKED, raising=False)
    monkeypatch.setattr(xla_flags, "COMPILE_FAST", ("--xla_backend_optimization_level=0", "--xla_no_such_flag=1"))
    with pytest.warns(UserWarning, match="no_such_flag"):
        kept = xla_flags.compile_fast()
    assert kept == ("--xla_backend_optimization_level=0",)
    assert "no_such_flag" not in xla_flags.xla_flags(devices=2)  # remembered for this process and its children
    assert xla_flags.xla_flags(devices=2).endswith("--xla_force_host_platform_device_count=2")
