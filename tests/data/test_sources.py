"""dvsnet.data.sources: what a source path names (globs, image extensions, natural order)."""
from dvsnet.data.sources import holds_images, is_glob, is_image, natural_key


def test_a_pattern_is_a_glob_unless_a_file_of_that_name_exists(tmp_path):
    assert is_glob(str(tmp_path / "*.png")) and is_glob(str(tmp_path / "f?.png"))
    assert is_glob(str(tmp_path / "[ab].png")) and not is_glob(str(tmp_path / "clip.mp4"))
    named = tmp_path / "clip[1].mp4"
    named.write_bytes(b"")
    assert not is_glob(str(named))


def test_images_folders_and_globs_hold_images_videos_do_not(tmp_path):
    assert is_image("a/B.PNG") and is_image("x.webp") and not is_image("x.mp4")
    assert holds_images(tmp_path) and holds_images(str(tmp_path / "*.jpg")) and holds_images("frame.png")
    assert not holds_images(str(tmp_path / "clip.mp4"))


def test_natural_order_sorts_numbers_by_value():
    names = ["f10.png", "f2.png", "F1.png", "f2b.png"]
    assert sorted(names, key=natural_key) == ["F1.png", "f2.png", "f2b.png", "f10.png"]
