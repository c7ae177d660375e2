"""The shape of a call as a small picture: a talk-share bar and a timeline of who spoke when.

A PNG written here with numpy and zlib (no imaging library, no display, no font): the bar at
the top is split in each participant's colour by their share of the talk; below it one row
per participant, in the shape's order, coloured where they spoke on the call's timeline
(first speech to last); a thin dark line marks each moment hints were sent. The picture has
no text: whoever shows it names the colours (``legend``), so no name needs a font.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from storage.shape import Shape, Spoken

WIDTH = 640
BAR = 28  # the share bar's height
GAP = 10
ROW = 16  # one participant's timeline row
MARGIN = 8
BACKGROUND = (255, 255, 255)
TRACK = (236, 236, 236)  # a row where nobody of that row spoke
HINT = (40, 40, 40)
# Okabe-Ito: told apart by most colour-blind readers too.
PALETTE = [
    ((0, 114, 178), "blue"),
    ((230, 159, 0), "orange"),
    ((0, 158, 115), "green"),
    ((204, 121, 167), "pink"),
    ((86, 180, 233), "sky blue"),
    ((213, 94, 0), "vermilion"),
    ((240, 228, 66), "yellow"),
    ((0, 0, 0), "black"),
]


@dataclass(frozen=True)
class Picture:
    png: bytes
    colours: list[tuple[str, str]]  # (participant, colour name), in the shape's order

    def legend(self) -> str:
        return ", ".join(f"{name} {colour}" for name, colour in self.colours)


def colour_of(index: int) -> tuple[tuple[int, int, int], str]:
    return PALETTE[index % len(PALETTE)]


def png(pixels: np.ndarray) -> bytes:
    """An RGB image (height x width x 3, uint8) as PNG bytes."""
    height, width, _ = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def draw(shape: Shape, spoken: list[Spoken], *, width: int = WIDTH) -> Picture:
    names = [p.name for p in shape.participants]
    height = MARGIN + BAR + GAP + ROW * max(len(names), 1) + MARGIN
    img = np.full((height, width, 3), BACKGROUND, np.uint8)
    inner = width - 2 * MARGIN
    colours = {name: colour_of(i) for i, name in enumerate(names)}

    # The share bar: segments left to right in the shape's order, rounded so they fill it exactly.
    x = MARGIN
    acc = 0.0
    for p in shape.participants:
        acc += p.share
        end = MARGIN + int(round(acc * inner))
        img[MARGIN : MARGIN + BAR, x:end] = colours[p.name][0]
        x = end
    if x == MARGIN:  # nobody spoke
        img[MARGIN : MARGIN + BAR, MARGIN : MARGIN + inner] = TRACK

    # The timeline: the call from its first speech to its last.
    top = MARGIN + BAR + GAP
    starts = [u.start for u in spoken]
    t0 = min(starts, default=0.0)
    span = max(shape.duration, 1e-9)

    def column(t: float) -> int:
        return MARGIN + min(inner - 1, max(0, int((t - t0) / span * inner)))

    for i in range(len(names)):
        y = top + i * ROW
        img[y + 2 : y + ROW - 2, MARGIN : MARGIN + inner] = TRACK
    for u in spoken:
        if u.speaker not in colours:
            continue
        y = top + names.index(u.speaker) * ROW
        a, b = column(u.start), column(u.end)
        img[y + 2 : y + ROW - 2, a : max(b, a + 1)] = colours[u.speaker][0]
    for h in shape.hints:
        if t0 <= h.at <= t0 + span:
            c = column(h.at)
            img[top : top + ROW * len(names), c : c + 1] = HINT
    return Picture(png(img), [(name, colours[name][1]) for name in names])
