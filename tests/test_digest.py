"""file_digest: one content hash for every cache key and recorded weights id."""
import hashlib

from dvsnet.digest import file_digest


def test_a_file_is_named_by_its_contents_and_a_missing_one_is_none(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    assert file_digest(a, 10) == file_digest(b, 10) == hashlib.sha256(b"weights").hexdigest()[:10]
    assert file_digest(a, 12, "sha1") == hashlib.sha1(b"weights").hexdigest()[:12]  # the confidence cache's
    b.write_bytes(b"other weights")
    assert file_digest(b, 10) != file_digest(a, 10)
    assert file_digest(tmp_path / "missing.bin", 10) == "none"
