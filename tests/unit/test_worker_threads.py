"""Each worker process caps torch's compute threads at its lane's share (T2G_TORCH_THREADS, set per lane by
scripts/run.sh; the launcher's environment per lane is checked in tests/faults/test_supervision.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from text2grad_web import celery


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_pool_process_caps_torch_threads_at_its_lanes_setting(settings, restore_threads):
    torch.set_num_threads(2)
    settings.T2G_TORCH_THREADS = 1
    celery.cap_compute_threads()  # what worker_process_init calls in each pool child
    assert torch.get_num_threads() == 1
    settings.T2G_TORCH_THREADS = 0  # unset: torch's own default is left alone
    torch.set_num_threads(2)
    celery.cap_compute_threads()
    assert torch.get_num_threads() == 2


@pytest.mark.heavy
def test_the_lane_setting_reaches_a_worker_process_from_its_environment():
    """From the environment run.sh gives a lane to torch in a fresh process, as the worker starts it."""
    code = (
        "import django; django.setup(); import torch; from text2grad_web import celery; "
        "torch.set_num_threads(2); celery.cap_compute_threads(); print(torch.get_num_threads())"
    )
    env = {**os.environ, "T2G_TORCH_THREADS": "1", "DJANGO_SETTINGS_MODULE": "text2grad_web.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.split()[-1] == "1", out.stderr[-2000:]
