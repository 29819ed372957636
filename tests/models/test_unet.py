import pytest
import torch

from napari_unet.models.unet import PRESETS, UNet, UNetConfig, count_conv_layers, count_parameters, preset


def test_paper_preset_matches_the_paper():
    net = UNet(preset("paper"))
    assert count_conv_layers(net) == 23
    assert round(count_parameters(net) / 1e6, 1) == 31.0


def test_paper_output_shape():
    net = UNet(UNetConfig(depth=4, base_filters=4, norm="none"))
    out = net(torch.zeros(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)


@pytest.mark.parametrize("norm", ["none", "batch", "group"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_any_valid_size_works(norm, depth):
    cfg = UNetConfig(depth=depth, base_filters=4, norm=norm, in_channels=3, n_classes=4)
    net = UNet(cfg).eval()
    size = cfg.valid_input_size(60)
    out = net(torch.zeros(2, 3, size, size + 2**depth))
    assert out.shape == (2, 4, cfg.output_size(size), cfg.output_size(size + 2**depth))


def test_same_padding_keeps_shape():
    cfg = UNetConfig(depth=3, base_filters=4, padding="same")
    assert UNet(cfg)(torch.zeros(1, 1, 64, 96)).shape == (1, 2, 64, 96)


def test_presets_are_lighter_than_the_paper():
    light = count_parameters(UNet(preset("light")))
    paper = count_parameters(UNet(preset("paper")))
    assert light < paper / 50
    assert set(PRESETS) >= {"light", "standard", "paper"}


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        UNetConfig(norm="layer")
    with pytest.raises(ValueError):
        UNetConfig(n_classes=1)
    with pytest.raises(ValueError):
        preset("huge")
