"""Label spaces: Cityscapes' table and the ClassSet of any K-class segmenter."""
import numpy as np
import pytest
import torch

from dvsnet.data.labels import CITYSCAPES, CLASS_NAMES, class_set, classes_of, generated_palette


@pytest.mark.parametrize("count", [2, 21, 150])
def test_generated_palettes_are_distinct(count):
    palette = generated_palette(count)
    assert palette.shape == (count, 3) and palette.dtype == np.uint8
    assert len({tuple(c) for c in palette.tolist()}) == count


def test_nineteen_classes_without_declarations_are_cityscapes():
    assert class_set(19) is CITYSCAPES and CITYSCAPES.cityscapes and CITYSCAPES.names == CLASS_NAMES
    assert CITYSCAPES.colorize(np.array([[0, 255]], np.uint8)).tolist() == [[[128, 64, 128], [0, 0, 0]]]
    assert not class_set(19, names=[f"c{k}" for k in range(19)]).cityscapes


def test_a_segmenters_declared_classes_and_palette_are_used():
    class Net(torch.nn.Module):
        num_classes = 2
        class_names = ("background", "person")
        palette = ((0, 0, 0), (255, 0, 0))

    classes = classes_of(Net())
    assert classes.names == ("background", "person") and classes.colors.tolist() == [[0, 0, 0], [255, 0, 0]]


def test_attributes_of_another_shape_are_not_taken_for_a_palette():
    class Net(torch.nn.Module):
        num_classes = 3

        def __init__(self):
            super().__init__()
            self.register_buffer("palette", torch.rand(6, 3))  # the module's own, not class colours

    classes = classes_of(Net())
    assert classes.names == ("class 0", "class 1", "class 2")
    assert classes.colors.tolist() == generated_palette(3).tolist()
