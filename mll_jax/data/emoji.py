"""Emoji art in five styles from npm packages: one 64×64 RGB picture per emoji and style, on white.

    google       emoji-datasource-google 16.0.0: Noto Emoji, cut from its 64 px sheet
    twitter      emoji-datasource-twitter 16.0.0: Twemoji, cut from its 64 px sheet
    fluent_3d    @lobehub/fluent-emoji-3d 1.1.0: Microsoft's Fluent Emoji, 3D renders (WebP)
    fluent_flat  @lobehub/fluent-emoji-flat 1.1.0: the same set, flat (SVG)
    openmoji     openmoji 17.0.0: OpenMoji, colour (SVG)

Pictures are keyed by the emoji's code points as `emoji.json` of emoji-datasource spells
them (`unified`, e.g. "1F436"). SVGs are drawn by resvg (a PyPI wheel); every file is
read through `packages.path`, which checks it. Which emoji picture which WordNet noun
is the `emoji` catalog's business (`concepts/emoji_catalog.py` writes it).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json

import numpy as np

from mll_jax.data import packages
from mll_jax.data.drawing import on_white

__all__ = ["SIZE", "STYLES", "Style", "drawn", "entries", "pictures"]

SIZE = 64  # the sheets' cell size; the other styles are drawn or scaled to it


@dataclasses.dataclass(frozen=True)
class Style:
    package: str  # a key of packages.PACKAGES
    where: str  # the sheet (a file), or the folder of one file per emoji
    kind: str  # "sheet" | "webp" | "svg"
    upper: bool = False  # file names spell code points in upper case


STYLES = {
    "google": Style("emoji-datasource-google", "package/img/google/sheets-clean/64.png", "sheet"),
    "twitter": Style("emoji-datasource-twitter", "package/img/twitter/sheets-clean/64.png", "sheet"),
    "fluent_3d": Style("fluent-emoji-3d", "package/assets", "webp"),
    "fluent_flat": Style("fluent-emoji-flat", "package/assets", "svg"),
    "openmoji": Style("openmoji", "package/color/svg", "svg", upper=True),
}


@functools.cache
def entries() -> tuple[dict, ...]:
    """emoji-datasource's table of emoji (name, code points, category, sheet position, ...), as shipped."""
    return tuple(json.loads(packages.path("emoji-datasource-google", "package/emoji.json").read_text()))


def _file_names(style: Style, code: str) -> list[str]:
    """The names a picture of `code` may have in a style's folder (with and without the variation selector)."""
    names = [code, code.replace("-FE0F", "")]
    return [n if style.upper else n.lower() for n in dict.fromkeys(names)]


@functools.cache
def _where(style: str) -> dict[str, str | tuple[int, int]]:
    """Code -> where `style` draws it: its file's name in the folder, or its cell (x, y) on the sheet."""
    chosen = STYLES[style]
    if chosen.kind == "sheet":
        return {e["unified"]: (e["sheet_x"], e["sheet_y"]) for e in entries() if e.get(f"has_img_{style}")}
    present = {m.rsplit("/", 1)[-1].rsplit(".", 1)[0] for m in packages.members(chosen.package, chosen.where)}
    out = {}
    for e in entries():
        name = next((n for n in _file_names(chosen, e["unified"]) if n in present), None)
        if name is not None:
            out[e["unified"]] = name
    return out


def drawn(style: str) -> list[str]:
    """The codes of the emoji `style` draws (of emoji-datasource's table)."""
    _style(style)
    return list(_where(style))


def _style(style: str) -> Style:
    if style not in STYLES:
        raise ValueError(f"unknown emoji style {style!r}; use one of {sorted(STYLES)}")
    return STYLES[style]


def _from_sheet(style: str, codes: list[str]) -> dict[str, np.ndarray]:
    from PIL import Image

    where = _where(style)
    with Image.open(packages.path(STYLES[style].package, STYLES[style].where)) as sheet:
        sheet.load()
        out = {}
        for code in (c for c in codes if c in where):
            cell_x, cell_y = where[code]
            x, y = cell_x * (SIZE + 2) + 1, cell_y * (SIZE + 2) + 1  # 1 px of padding round each cell
            out[code] = on_white(sheet.crop((x, y, x + SIZE, y + SIZE)), SIZE)
    return out


def _from_files(style: str, codes: list[str]) -> dict[str, np.ndarray]:
    from PIL import Image

    chosen, where = STYLES[style], _where(style)
    out = {}
    for code in (c for c in codes if c in where):
        file = packages.path(chosen.package, f"{chosen.where}/{where[code]}.{chosen.kind}")
        if chosen.kind == "svg":
            import resvg_py

            png = resvg_py.svg_to_bytes(svg_path=str(file), width=SIZE, height=SIZE, skip_system_fonts=True)
            out[code] = on_white(Image.open(io.BytesIO(bytes(png))), SIZE)
        else:
            with Image.open(file) as picture:
                out[code] = on_white(picture, SIZE)
    return out


def pictures(style: str, codes: list[str]) -> dict[str, np.ndarray]:
    """The pictures [SIZE, SIZE, 3] uint8 of `codes` (emoji-datasource `unified` spellings) in `style`; a code the
    style does not draw is left out."""
    return (_from_sheet if _style(style).kind == "sheet" else _from_files)(style, list(codes))
