"""Synthetic scientific diagrams with captions that can only be written by reading the image.

Three families, drawn with Pillow: bar charts (the caption names the number of bars and which one is highest), line
charts (trend direction and line colour) and tables (rows x columns; drawn tall, so shape-adaptive cropping matters).
Every diagram also varies in *style*, as figures from different papers do: background tint, margins, light
grid lines, tick marks, a legend box and a title bar (as dashes), bar colour and width, line width and markers,
cell sizes, ruled or booktabs-style tables. The caption never depends on the style, so a
captioner must read the structure; two baselines are measured beside it (:mod:`paperowl.evaluate`): the most
frequent training caption, which cannot get counts and positions right, and the caption of the nearest training
image in pixels, which matches style as much as content and so often retrieves a diagram with another caption.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six"]
ORDINALS = ["first", "second", "third", "fourth", "fifth"]
COLORS = {"red": (210, 40, 40), "blue": (40, 70, 210), "green": (30, 150, 60)}
#: Bar fills (style only: the bar caption does not name a colour).
BAR_FILLS = [(60, 60, 60), (40, 70, 210), (210, 120, 30), (30, 150, 60), (150, 60, 170), (120, 120, 120)]


@dataclass(frozen=True)
class SyntheticDiagram:
    image: Image.Image
    caption: str
    kind: str


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _canvas(
    rng: random.Random, size: int
) -> tuple[Image.Image, ImageDraw.ImageDraw, tuple[int, int, int, int]]:
    """A tinted background, a plot box with random margins, optional light horizontal grid lines, the axes."""
    image = Image.new("RGB", (size, size), tuple(rng.randint(225, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    m = max(2, size // 16)
    box = (
        rng.randint(m, 3 * m),
        rng.randint(m, 3 * m),
        size - rng.randint(m, 2 * m),
        size - rng.randint(m, 3 * m),
    )
    if rng.random() < 0.5:
        step = rng.randint(max(3, size // 10), max(4, size // 5))
        for y in range(box[3] - step, box[1], -step):
            draw.line((box[0], y, box[2], y), fill=_jitter((200, 200, 200), rng, 15))
    draw.line((box[0], box[3], box[2], box[3]), fill="black")
    if rng.random() < 0.7:
        draw.line((box[0], box[1], box[0], box[3]), fill="black")
    for x in range(box[0], box[2], rng.randint(max(4, size // 8), max(5, size // 4))):  # tick marks
        draw.line((x, box[3], x, box[3] + 2), fill="black")
    return image, draw, box


def _decorate(draw: ImageDraw.ImageDraw, rng: random.Random, size: int) -> None:
    """Caption-free clutter drawn last: a legend box in a random corner and a title line (dashes for text)."""
    if rng.random() < 0.6:
        w, h = rng.randint(size // 5, size // 3), rng.randint(size // 10, size // 6)
        x = rng.choice([size // 10, size - w - size // 10])
        y = rng.choice([size // 12, size // 3])
        draw.rectangle((x, y, x + w, y + h), fill="white", outline=_jitter((80, 80, 80), rng, 40))
        draw.rectangle(
            (x + 2, y + 2, x + 2 + h // 2, y + h - 2), fill=_jitter(rng.choice(BAR_FILLS), rng, 30)
        )
        draw.line((x + h // 2 + 4, y + h // 2, x + w - 2, y + h // 2), fill=(70, 70, 70), width=1)
    if rng.random() < 0.5:
        x = rng.randint(size // 8, size // 3)
        draw.line((x, 1, x + rng.randint(size // 4, size // 2), 1), fill=(40, 40, 40), width=2)


def bar_chart(rng: random.Random, size: int = 64) -> SyntheticDiagram:
    n = rng.randint(2, 5)
    heights = rng.sample(range(3, 10), n)
    top = max(range(n), key=lambda i: heights[i])
    image, draw, (x0, y0, x1, y1) = _canvas(rng, size)
    slot = (x1 - x0 - 2) / n
    width = max(2, int(slot * rng.uniform(0.45, 0.85)))
    fill = _jitter(rng.choice(BAR_FILLS), rng, 25)
    for i, h in enumerate(heights):
        left = int(x0 + 2 + i * slot + (slot - width) / 2)
        draw.rectangle((left, y1 - 1 - h * (y1 - y0 - 2) // 10, left + width - 1, y1 - 1), fill=fill)
    _decorate(draw, rng, size)
    caption = f"a bar chart with {NUMBERS[n]} bars where the {ORDINALS[top]} bar is the highest"
    return SyntheticDiagram(image, caption, "bar")


def line_chart(rng: random.Random, size: int = 64) -> SyntheticDiagram:
    color = rng.choice(sorted(COLORS))
    increasing = rng.random() < 0.5
    image, draw, (x0, y0, x1, y1) = _canvas(rng, size)
    k = rng.randint(4, 8)
    points = []
    for i in range(k):
        base = i if increasing else k - 1 - i
        y = y1 - 3 - (base + rng.uniform(-0.3, 0.3)) * (y1 - y0 - 6) / (k - 1)
        points.append((int(x0 + 3 + i * (x1 - x0 - 6) / (k - 1)), int(y)))
    fill = _jitter(COLORS[color], rng, 30)
    draw.line(points, fill=fill, width=rng.randint(2, 3))
    if rng.random() < 0.5:
        for x, y in points:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=fill)
    _decorate(draw, rng, size)
    trend = "an increasing" if increasing else "a decreasing"
    return SyntheticDiagram(image, f"a line chart showing {trend} trend in {color}", "line")


def table(rng: random.Random, size: int = 64) -> SyntheticDiagram:
    rows, cols = rng.randint(2, 6), rng.randint(2, 4)
    cell_w, cell_h = rng.randint(size // 6, size // 3), rng.randint(size // 8, size // 5)
    image = Image.new("RGB", (cols * cell_w + 2, rows * cell_h * 2 + 2), "white")
    draw = ImageDraw.Draw(image)
    header = _jitter((225, 225, 225), rng, 20)
    booktabs = rng.random() < 0.5  # rules above, below the header and at the bottom only, as with booktabs
    for r in range(rows):
        for c in range(cols):
            box = (c * cell_w, r * cell_h * 2, (c + 1) * cell_w, (r + 1) * cell_h * 2)
            if booktabs:
                if r == 0:
                    draw.rectangle(box, fill=header)
            else:
                draw.rectangle(box, outline="black", fill=header if r == 0 else "white")
            length = rng.randint(cell_w // 3, max(cell_w // 3 + 1, cell_w - 6))
            draw.line(
                (box[0] + 3, box[1] + cell_h, box[0] + 3 + length, box[1] + cell_h),
                fill=(90, 90, 90),
                width=2,
            )
    if booktabs:
        right, bottom = cols * cell_w, rows * cell_h * 2
        for y in (0, cell_h * 2, bottom):
            draw.line((0, y, right, y), fill="black", width=1 + (y != cell_h * 2))
    return SyntheticDiagram(image, f"a table with {NUMBERS[rows]} rows and {NUMBERS[cols]} columns", "table")


def make_diagrams(n: int, seed: int = 0, size: int = 64) -> list[SyntheticDiagram]:
    """``n`` diagrams cycling bar, line, table with a seeded generator."""
    rng = random.Random(seed)
    makers = (bar_chart, line_chart, table)
    return [makers[i % 3](rng, size) for i in range(n)]


def caption_vocabulary() -> list[str]:
    """Every word a synthetic caption can use (to train a word-level tokenizer)."""
    words = "a bar chart with bars where the bar is highest line showing an increasing decreasing trend in table rows"
    words += " and columns " + " ".join(NUMBERS + ORDINALS + sorted(COLORS))
    return [words]
