import numpy as np

from napari_unet import TrainConfig, fit
from napari_unet.images.axes import crop, infer_layout
from napari_unet.train.config import TrainProgress
from napari_unet.train.preview import Preview, with_previews


def test_previews_come_between_steps_and_training_goes_on(tiny_model, scribbled):
    image, annotation, _ = scribbled
    config = TrainConfig(steps=12, batch_size=2, patch_size=60, device="cpu")
    box = (slice(10, 70), slice(20, 100))
    job = with_previews(
        tiny_model, fit(tiny_model, [image], [annotation], config), image, lambda: ((), box), every=0.0, device="cpu"
    )
    records = list(job)
    previews = [r for r in records if isinstance(r, Preview)]
    steps = [r for r in records if isinstance(r, TrainProgress)]
    assert steps[-1].done and steps[-1].step == 12
    assert len(previews) >= 10
    assert previews[0].classes.shape == (60, 80)
    assert tiny_model.history[-1]["steps"] == 12


def test_crop_keeps_channels_and_reports_their_axis():
    image = np.zeros((4, 2, 30, 40))  # Z, C, Y, X
    layout = infer_layout(image.shape, 2, channel_axis=1)
    part, axis = crop(image, layout, (3,), (slice(0, 10), slice(5, 25)))
    assert part.shape == (2, 10, 20) and axis == 0
    rgb = np.zeros((30, 40, 3))
    part, axis = crop(rgb, infer_layout(rgb.shape, 1), (), (slice(0, 10), slice(0, 10)))
    assert part.shape == (10, 10, 3) and axis == 2


def test_previews_leave_the_gpu_cache_to_the_training_run(tiny_model, scribbled, monkeypatch):
    import napari_unet.train.preview as preview

    configs = []
    real = preview.predict_probabilities
    monkeypatch.setattr(
        preview,
        "predict_probabilities",
        lambda m, part, config, *a: configs.append(config) or real(m, part, config, *a),
    )
    image, annotation, _ = scribbled
    config = TrainConfig(steps=3, batch_size=2, patch_size=60, device="cpu")
    job = with_previews(
        tiny_model,
        fit(tiny_model, [image], [annotation], config),
        image,
        lambda: ((), (slice(0, 40),) * 2),
        every=0.0,
        device="cpu",
    )
    list(job)
    assert configs and not any(c.release_memory for c in configs)  # training gives the memory back at its end
