"""Training patches (train/patches.py): input, output and augmentation window sizes."""


def test_default_patch_depends_on_the_device():
    from napari_unet.models.unet import preset
    from napari_unet.train.patches import default_patch_size

    light, standard = preset("light"), preset("standard")
    assert default_patch_size(light, "cpu") == 132  # 44-pixel outputs: fast steps on a CPU
    assert standard.output_size(default_patch_size(standard, "cuda")) >= 96  # context where compute is cheap
    assert standard.output_size(default_patch_size(standard, "cpu")) >= 40
    assert light.output_size(default_patch_size(light, "cuda")) >= 96
