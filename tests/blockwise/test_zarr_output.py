"""One image block by block into zarr: fresh output names, progress by blocks, a stop that leaves nothing."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_unet import BlockConfig, InputError, PredictConfig, segment
from napari_unet.blockwise.zarr_output import MERGING_OBJECTS, fresh_outputs, iter_segment_zarr

KINDS = ("segmentation", "objects")


def test_fresh_outputs_never_name_an_existing_result(tmp_path):
    first = fresh_outputs(tmp_path / "results", "cells: day 2/3", KINDS)
    assert first == {k: tmp_path / "results" / f"cells_day_2_3_{k}.zarr" for k in KINDS}  # a safe file name
    first["objects"].mkdir()  # one of the pair exists: both move on
    second = fresh_outputs(tmp_path / "results", "cells: day 2/3", KINDS)
    assert [p.name for p in second.values()] == ["cells_day_2_3-2_segmentation.zarr", "cells_day_2_3-2_objects.zarr"]
    assert fresh_outputs(tmp_path, "...", KINDS)["segmentation"].name == "image_segmentation.zarr"
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file"):
        fresh_outputs(tmp_path / "file", "cells", KINDS)


def test_one_image_block_by_block_with_progress_equals_the_whole_image(tiny_model, nuclei, tmp_path):
    image = nuclei[0][:100, :120]
    outputs = fresh_outputs(tmp_path, "cells", KINDS)
    config = PredictConfig(device="cpu")
    records = list(iter_segment_zarr(tiny_model, image, outputs, config, blocks=BlockConfig(block=64, overlap=16)))
    assert records[-1].message == MERGING_OBJECTS
    blocks = [r.done for r in records[:-1]]
    assert blocks == sorted(blocks) and blocks[-1] == records[-1].total == 4
    reference = segment(tiny_model, image, config)
    np.testing.assert_array_equal(zarr.open_array(str(outputs["segmentation"]), mode="r")[:], reference.classes)


def test_closing_the_job_leaves_no_output(tiny_model, nuclei, tmp_path):
    outputs = fresh_outputs(tmp_path, "cells", KINDS)
    job = iter_segment_zarr(tiny_model, nuclei[0], outputs, PredictConfig(device="cpu"), blocks=BlockConfig(64, 16))
    next(job)
    job.close()
    assert list(tmp_path.iterdir()) == []
