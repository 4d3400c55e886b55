from __future__ import annotations

import io

import pytest

from core import ids, media
from core.errors import EmptyUpload, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from serving.uploads import check_file, parse_metadata, parse_tags, safe_filename

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("rap\x00port.pdf", "rapport.pdf"),
        ("  .hidden. ", "hidden"),
        ("a<b>:c|d?.txt", "abcd.txt"),
        ("", "upload"),
        (None, "upload"),
        ("../..", "upload"),
        ("Facture n°12 – été.pdf", "Facture n°12 – été.pdf"),
    ],
)
def test_safe_filename(raw: str | None, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_long_filename_is_cut_keeping_its_extension() -> None:
    name = safe_filename("x" * 300 + ".pdf")
    assert len(name) == 255 and name.endswith(".pdf")


def test_check_file_hashes_sizes_and_sniffs() -> None:
    data = b"%PDF-1.7\nhello"
    checked = check_file(io.BytesIO(data), "../r\x00.pdf", max_bytes=1000)
    assert checked.sha256 == ids.sha256_hex(data)
    assert checked.size_bytes == len(data)
    assert checked.media_type == media.PDF
    assert checked.filename == "r.pdf" and checked.title == "r"
    assert checked.source.read() == data


def test_check_file_errors() -> None:
    with pytest.raises(PayloadTooLarge, match="10 byte limit"):
        check_file(io.BytesIO(b"x" * 11), "big.txt", max_bytes=10)
    with pytest.raises(EmptyUpload, match="empty"):
        check_file(io.BytesIO(b""), "e.txt", max_bytes=10)
    with pytest.raises(UnsupportedMediaType, match="application/pdf"):
        check_file(io.BytesIO(b"GIF89a\x00\x00"), "scan.pdf", max_bytes=100)


def test_tags() -> None:
    assert parse_tags(["b, a", "a", " ", "c"]) == ["a", "b", "c"]
    assert parse_tags(None) == []
    with pytest.raises(InvalidInput) as err:
        parse_tags(["x" * 101])
    assert err.value.field == "tags"
    with pytest.raises(InvalidInput, match="at most 50"):
        parse_tags([",".join(f"t{i}" for i in range(51))])


def test_tags_as_a_json_list() -> None:
    # issue #21: tags=["a","b"] was stored as the tags '["a"' and '"b"]'
    assert parse_tags(['["a", "b"]']) == ["a", "b"]
    assert parse_tags(['["x, y"]', "z"]) == ["x, y", "z"]  # a JSON tag may hold a comma
    for bad, message in [('["a", 1]', "list of strings"), ('["a"', "not valid JSON")]:
        with pytest.raises(InvalidInput, match=message) as err:
            parse_tags([bad])
        assert err.value.field == "tags"


def test_metadata() -> None:
    assert parse_metadata('{"dept": "hr", "year": 2024}') == {"dept": "hr", "year": 2024}
    assert parse_metadata(None) == {} and parse_metadata("  ") == {}
    for bad, message in [
        ("{bad", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"": 1}', "keys"),
    ]:
        with pytest.raises(InvalidInput, match=message) as err:
            parse_metadata(bad)
        assert err.value.field == "metadata"
    with pytest.raises(InvalidInput, match="larger"):
        parse_metadata('{"k": "' + "x" * 70_000 + '"}')


def test_ids_are_deterministic() -> None:
    assert ids.document_id("t", "c", "abc") == ids.document_id("t", "c", "abc")
    assert ids.document_id("t", "c", "abc") != ids.document_id("t2", "c", "abc")
    assert ids.version_id("d", 1) != ids.version_id("d", 2)
    key, key_hash = ids.new_api_key()
    assert key.startswith("gdr_") and ids.hash_api_key(key) == key_hash and key_hash != key
