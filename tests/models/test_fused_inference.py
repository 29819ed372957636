"""The fused inference copy computes what the network computes (the unfused arithmetic, on the CPU)."""

from __future__ import annotations

import pytest
import torch

from napari_unet.models.fused_inference import FusedUNet, can_fuse
from napari_unet.models.unet import UNet, UNetConfig
from tests.conftest import cuda


def _trained_looking(config: UNetConfig) -> UNet:
    """A network whose biases are not zero and whose batch norms have real statistics and parameters."""
    net = UNet(config).double()
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and module.bias is not None:
            module.bias.data.copy_(torch.randn(module.bias.shape, generator=generator, dtype=torch.float64))
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
            module.running_var.copy_(torch.rand(channels, generator=generator, dtype=torch.float64) + 0.5)
            module.weight.data.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
            module.bias.data.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
    return net.eval()


@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_fused_copy_computes_the_same_logits(norm, padding):
    config = UNetConfig(depth=2, base_filters=4, norm=norm, padding=padding, in_channels=2, n_classes=3, dropout=0.5)
    net = _trained_looking(config)
    x = torch.randn(2, 2, 108, 92, dtype=torch.float64)
    fused = FusedUNet(net, dtype=torch.float64)
    with torch.no_grad():
        expected = net(x)
        torch.testing.assert_close(fused(x), expected, rtol=1e-10, atol=1e-10)
        net.down[0][0].weight.add_(1.0)  # a frozen copy: later changes to the network are not seen
        torch.testing.assert_close(fused(x), expected, rtol=1e-10, atol=1e-10)
    assert not any(p.requires_grad for p in fused.parameters())


def test_group_norm_is_not_fused():
    net = UNet(UNetConfig(depth=2, base_filters=8, norm="group"))
    assert not can_fuse(net)
    with pytest.raises(ValueError, match="group norm"):
        FusedUNet(net)


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_fused_cudnn_kernels_match_on_a_gpu(norm):
    net = _trained_looking(UNetConfig(depth=3, base_filters=16, norm=norm)).float().cuda()
    x = torch.randn(2, 1, 316, 316, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        reference = net.double()(x.double()).float()
        fused = FusedUNet(net.float(), dtype=torch.bfloat16)(x).float()
    error = (fused - reference).norm() / reference.norm()
    assert error < 2e-2, error


def test_prediction_with_the_fused_copy_matches_and_leaves_the_network_alone(tiny_model):
    import numpy as np

    from napari_unet import PredictConfig, drain, predict_probabilities

    image = np.random.default_rng(0).random((120, 140)).astype(np.float32)
    state = {k: v.clone() for k, v in tiny_model.net.state_dict().items()}
    fused = drain(predict_probabilities(tiny_model, image, PredictConfig(device="cpu", fuse=True, tile=92)))
    plain = drain(predict_probabilities(tiny_model, image, PredictConfig(device="cpu", fuse=False, tile=92)))
    np.testing.assert_allclose(fused, plain, atol=1e-5)
    assert all(torch.equal(v, tiny_model.net.state_dict()[k]) for k, v in state.items())


def test_without_cudnn_fusion_the_copy_falls_back_once_with_a_warning(monkeypatch):
    from napari_unet.models import fused_inference as fused_module

    net = _trained_looking(UNetConfig(depth=2, base_filters=4, norm="batch"))
    x = torch.randn(1, 1, 92, 92, dtype=torch.float64)
    monkeypatch.setitem(fused_module.cudnn_fusion, "available", True)
    # CPU tensors go to cuDNN's fused kernel as CUDA tensors would; it cannot run them and raises
    monkeypatch.setattr(fused_module, "_tries_cudnn", lambda x: fused_module.cudnn_fusion["available"])
    copy = FusedUNet(net, dtype=torch.float64)
    with torch.no_grad(), pytest.warns(UserWarning, match="separate kernels"):
        logits = copy(x)
    assert fused_module.cudnn_fusion["available"] is False
    with torch.no_grad():
        torch.testing.assert_close(logits, net(x), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(copy(x), logits)  # no second attempt, no second warning


@pytest.mark.parametrize(("channels", "padding"), [(1, "valid"), (2, "same"), (3, "valid")])
def test_first_convolution_as_a_matrix_product_computes_the_same_logits(channels, padding):
    config = UNetConfig(depth=2, base_filters=4, norm="batch", in_channels=channels, padding=padding)
    net = _trained_looking(config)
    x = torch.randn(2, channels, 92, 92, dtype=torch.float64)
    copy = FusedUNet(net, dtype=torch.float64, first_as_gemm=True)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), net(x), rtol=1e-10, atol=1e-10)


def test_the_cache_key_changes_with_every_change_to_the_network():
    from napari_unet.models.fused_inference import _key, _sources

    net = _trained_looking(UNetConfig(depth=2, base_filters=4, norm="batch")).float()

    def key() -> tuple:
        return _key(_sources(net), torch.bfloat16)

    held = _sources(net)  # as the cache holds them: their storage cannot be reused
    first = key()
    assert key() == first
    with torch.no_grad():
        net.down[0][0].weight.add_(1.0)
    second = key()
    assert second != first
    net.load_state_dict(net.state_dict())
    third = key()
    assert third != second
    net.double().float()  # new storage for every tensor, versions unchanged
    fourth = key()
    assert fourth != third
    net.train()(torch.randn(2, 1, 92, 92))  # batch norm statistics move in training mode
    assert key() != fourth
    assert held


@cuda
@pytest.mark.gpu
def test_a_second_copy_comes_from_the_host_cache_and_sees_changes():
    from napari_unet.models import fused_inference as fused_module

    net = _trained_looking(UNetConfig(depth=3, base_filters=16, norm="batch")).float()
    x = torch.randn(2, 1, 316, 316, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        first = FusedUNet(net, dtype=torch.bfloat16, device=torch.device("cuda"))
        cached = fused_module._host_copies[net]
        again = FusedUNet(net, dtype=torch.bfloat16, device=torch.device("cuda"))
        assert fused_module._host_copies[net] is cached
        assert all(torch.equal(first.weights()[k], again.weights()[k]) for k in first.names)
        torch.testing.assert_close(again(x), first(x))
    with torch.no_grad():
        net.head.bias.add_(5.0)
    with torch.inference_mode():
        changed = FusedUNet(net, dtype=torch.bfloat16, device=torch.device("cuda"))
    assert fused_module._host_copies[net] is not cached
    assert not torch.equal(changed.head_bias, first.head_bias)


@pytest.mark.parametrize("shape", [(2, 16, 36, 50), (1, 8, 37, 51), (3, 1, 2, 2)])
def test_pooling_by_reshape_is_max_pool2d(shape):
    from napari_unet.models.fused_inference import pool_by_reshape

    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    pooled = pool_by_reshape(x)
    assert torch.equal(pooled, torch.nn.functional.max_pool2d(x, 2))
    assert pooled.is_contiguous(memory_format=torch.channels_last)
