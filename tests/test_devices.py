"""When a job gives torch's cached GPU memory back (``release_memory=None``)."""

from __future__ import annotations

import pytest
import torch

from napari_unet import devices

GIB = 1 << 30


def fake_card(monkeypatch, total: float, free: float, reserved: float, allocated: float) -> None:
    """CUDA's memory figures (GiB) as a card with these would report them."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free * GIB), int(total * GIB)))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: int(reserved * GIB))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: int(allocated * GIB))


@pytest.mark.parametrize(
    ("total", "free", "reserved", "allocated", "expected"),
    [
        (80, 70, 8, 0, False),  # an 8192 x 8192 job on an H100: kept for the next image
        (8, 3, 4, 0, True),  # the same kind of job on a laptop's card: a large share, given back
        (24, 4, 2, 0, True),  # little cached, but the card is nearly full (other programs)
        (80, 40, 30, 28, False),  # mostly tensors still in use (a model training): little to give back
    ],
)
def test_the_cache_is_given_back_when_it_is_a_large_share_or_the_card_is_full(
    monkeypatch, total, free, reserved, allocated, expected
):
    fake_card(monkeypatch, total, free, reserved, allocated)
    assert devices.worth_releasing(torch.device("cuda")) is expected


def test_an_explicit_choice_wins_and_cpus_have_nothing_to_give_back(monkeypatch):
    fake_card(monkeypatch, 8, 1, 6, 0)
    cuda = torch.device("cuda")
    assert devices.gives_back(cuda, None) and devices.gives_back(cuda, True) and not devices.gives_back(cuda, False)
    assert not devices.worth_releasing(torch.device("cpu"))
    assert devices.worth_releasing(torch.device("mps"))  # Apple GPUs share the computer's memory


def test_released_asks_at_the_end_of_the_job(monkeypatch):
    asked, given = [], []
    monkeypatch.setattr(devices, "worth_releasing", lambda device: asked.append(device.type) or True)
    monkeypatch.setattr(devices, "release", lambda device: given.append(device.type))
    with devices.released(torch.device("cuda")):
        assert asked == []  # the job's cache is judged once the job is done
    assert asked == ["cuda"] and given == ["cuda"]
    with devices.released(torch.device("cuda"), release_memory=False):
        pass
    assert asked == ["cuda"] and given == ["cuda"]
