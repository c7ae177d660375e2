"""The talk-share bar and timeline PNG, decoded back and read pixel by pixel."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from storage import get_session, open_database
from storage.export import call_picture, render
from storage.picture import BAR, GAP, MARGIN, ROW, WIDTH, colour_of
from storage.queries import detail_shape
from tests.summary.conftest import store_call
from tests.summary.test_shape import SHAPED


def decode(data: bytes) -> np.ndarray:
    """An 8-bit RGB PNG's pixels (filter type 0 on every row, as written here)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2)
            size = (height, width)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(size[0], 1 + size[1] * 3)
    assert not raw[:, 0].any()
    return raw[:, 1:].reshape(size[0], size[1], 3)


@pytest.fixture
def detail(tmp_path: Path):
    path = tmp_path / "picture.db"
    sid = store_call(path, SHAPED, "en", hints=[(15.0, "Ask about the chairs", ["alice"])])
    with open_database(str(path)) as db:
        found = get_session(db, sid)
    assert found is not None
    return found


def test_the_bar_is_split_by_talk_share_and_the_rows_show_who_spoke_when(detail) -> None:
    shape = detail_shape(detail)
    picture = call_picture(detail)
    img = decode(picture.png)
    assert img.shape == (MARGIN + BAR + GAP + 3 * ROW + MARGIN, WIDTH, 3)
    assert picture.colours == [("bob", "blue"), ("alice", "orange"), ("carol", "green")]
    inner = WIDTH - 2 * MARGIN
    bar = img[MARGIN + BAR // 2, MARGIN : MARGIN + inner]
    for i, p in enumerate(shape.participants):
        colour = np.array(colour_of(i)[0], np.uint8)
        pixels = int((bar == colour).all(axis=1).sum())
        assert abs(pixels - p.share * inner) <= 1.0, p.name
    # Timeline rows: carol (third row) speaks from 20.0 to 21.0 of a call running 0.0 to 27.0.
    top = MARGIN + BAR + GAP
    carol = img[top + 2 * ROW + ROW // 2, MARGIN : MARGIN + inner]
    green = np.array(colour_of(2)[0], np.uint8)
    spoke = np.flatnonzero((carol == green).all(axis=1))
    assert spoke.size and abs(spoke[0] - 20.0 / 27.0 * inner) <= 1 and abs(spoke[-1] + 1 - 21.0 / 27.0 * inner) <= 1
    # The hint at 15.0 is a dark line across the rows, in the silence between 14.0 and 20.0.
    line = img[top + ROW // 2, MARGIN : MARGIN + inner]
    dark = np.flatnonzero((line == np.array((40, 40, 40), np.uint8)).all(axis=1))
    assert dark.size == 1 and abs(dark[0] - 15.0 / 27.0 * inner) <= 1


def test_the_md_export_embeds_the_picture_when_there_is_a_summary(detail, tmp_path: Path) -> None:
    import base64
    from dataclasses import replace

    from storage.summaries import SummaryInfo

    summary = SummaryInfo(detail.id, "extractive", "en", [], None, None, detail.started_at)
    md = render(replace(detail, summary=summary), "md")
    start = md.index("(data:image/png;base64,") + len("(data:image/png;base64,")
    data = base64.b64decode(md[start : md.index(")", start)])
    assert decode(data).shape[1] == WIDTH
    assert "Colours: bob blue, alice orange, carol green" in md
