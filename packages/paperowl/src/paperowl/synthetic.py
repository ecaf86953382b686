"""Synthetic scientific diagrams with captions that can only be written by looking at the image.

Three families, drawn with Pillow: bar charts (caption names the number of bars and which one is highest), line
charts (trend direction and colour) and tables (rows x columns; tables are drawn tall so shape-adaptive cropping
matters). A caption prior (the most frequent training caption) cannot get the counts and positions right, so a
captioner that reads the image must beat it on held-out diagrams.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six"]
ORDINALS = ["first", "second", "third", "fourth", "fifth"]
COLORS = {"red": (210, 40, 40), "blue": (40, 70, 210), "green": (30, 150, 60)}


@dataclass(frozen=True)
class SyntheticDiagram:
    image: Image.Image
    caption: str
    kind: str


def _background(rng: random.Random) -> tuple[int, int, int]:
    """A light, slightly tinted background (nuisance variation a pixel-matching baseline must cope with)."""
    return tuple(rng.randint(225, 255) for _ in range(3))  # type: ignore[return-value]


def bar_chart(rng: random.Random, size: int = 64) -> SyntheticDiagram:
    n = rng.randint(2, 5)
    heights = rng.sample(range(3, 10), n)
    top = max(range(n), key=lambda i: heights[i])
    image = Image.new("RGB", (size, size), _background(rng))
    draw = ImageDraw.Draw(image)
    draw.line((4, size - 4, size - 4, size - 4), fill="black")
    width = (size - 8) // n
    fill = rng.choice([(60, 60, 60), (40, 70, 210), (210, 120, 30), (30, 150, 60)])
    for i, h in enumerate(heights):
        x0 = 4 + i * width + 2
        draw.rectangle((x0, size - 4 - h * (size - 12) // 10, x0 + width - 4, size - 5), fill=fill)
    caption = f"a bar chart with {NUMBERS[n]} bars where the {ORDINALS[top]} bar is the highest"
    return SyntheticDiagram(image, caption, "bar")


def line_chart(rng: random.Random, size: int = 64) -> SyntheticDiagram:
    color = rng.choice(sorted(COLORS))
    increasing = rng.random() < 0.5
    points = []
    for i in range(6):
        base = i if increasing else 5 - i
        y = size - 8 - int((base + rng.uniform(-0.3, 0.3)) * (size - 16) / 5)
        points.append((6 + i * (size - 12) // 5, y))
    image = Image.new("RGB", (size, size), _background(rng))
    draw = ImageDraw.Draw(image)
    draw.line((4, size - 4, size - 4, size - 4), fill="black")
    draw.line((4, 4, 4, size - 4), fill="black")
    draw.line(points, fill=COLORS[color], width=3)
    trend = "increasing" if increasing else "decreasing"
    return SyntheticDiagram(image, f"a line chart showing an {trend} trend in {color}", "line")


def table(rng: random.Random, size: int = 64) -> SyntheticDiagram:
    rows, cols = rng.randint(2, 6), rng.randint(2, 4)
    cell_w, cell_h = size // 4, size // 6
    image = Image.new("RGB", (cols * cell_w + 2, rows * cell_h * 2 + 2), "white")
    draw = ImageDraw.Draw(image)
    for r in range(rows):
        for c in range(cols):
            box = (c * cell_w, r * cell_h * 2, (c + 1) * cell_w, (r + 1) * cell_h * 2)
            draw.rectangle(box, outline="black", fill=(225, 225, 225) if r == 0 else "white")
            draw.line((box[0] + 3, box[1] + cell_h, box[2] - 3, box[1] + cell_h), fill=(90, 90, 90), width=2)
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
