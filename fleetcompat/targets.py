"""What an evaluation run evaluates: a catalog's images, one target per platform.

`image_targets` turns the images `fleetcompat.oci.scan_layouts` found into
`ImageTarget`s (an image whose artifact could not be read is a target with its
problem, so that it still has a row in the report), naming each image as it is
evaluated: its name, with its layout where two layouts hold the same name.
`layout_status` keeps what the layouts said about themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetcompat.platforms import ANY_PLATFORM, ImageTarget

if TYPE_CHECKING:
    from fleetcompat.oci import Catalog


@dataclass(frozen=True)
class LayoutStatus:
    """What the layouts said about themselves, kept with the run's settings."""

    problems: tuple[str, ...] = ()
    """One line per layout-level problem, naming the layout."""
    unread: tuple[str, ...] = ()
    """Layouts (resolved paths) that gave no image because they could not be read."""
    image_layouts: tuple[tuple[str, str], ...] = ()
    """(image name as evaluated, resolved path of its layout)."""

    def settings(self) -> dict[str, Any]:
        """The stored form, merged into the run's settings."""
        return {
            "layout_problems": list(self.problems),
            "layouts_unread": list(self.unread),
            "image_layouts": dict(self.image_layouts),
        }


def layout_status(catalog: Catalog) -> LayoutStatus:
    """The layout-level problems of a catalog, and which layouts gave nothing.

    A layout with a problem and no image at all could not be read (a missing or
    broken index.json, an unsupported version); its problem says so.
    """
    with_images = {image.layout for image in catalog.images}
    problems: list[str] = []
    unread: list[str] = []
    for problem in catalog.problems:
        layout = _layout_of(catalog, problem)
        if layout is not None and layout not in with_images:
            problems.append(f"layout {layout} could not be read: {problem}")
            unread.append(str(layout.resolve()))
        elif layout is not None and not problem.startswith(str(layout)):
            problems.append(f"layout {layout}: {problem}")
        else:
            problems.append(f"layout problem: {problem}")
    names = zip(_image_names(catalog), catalog.images, strict=True)
    image_layouts = tuple((name, str(image.layout.resolve())) for name, image in names)
    return LayoutStatus(tuple(problems), tuple(dict.fromkeys(unread)), image_layouts)


def _layout_of(catalog: Catalog, problem: str) -> Path | None:
    """The layout a problem names at its start, if any."""
    for layout in catalog.layouts:
        if problem.startswith((f"{layout}/", f"{layout}:")):
            return layout
    if len(catalog.layouts) == 1:
        return catalog.layouts[0]
    return None


def _image_names(catalog: Catalog) -> list[str]:
    """Each image's name as evaluated: its name, with its layout when repeated."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for image in catalog.images:
        name = image.name
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({image.layout})")
    return names


def image_targets(catalog: Catalog) -> list[ImageTarget]:
    """The targets of a `fleetcompat.oci.Catalog`: one per image and platform."""
    targets: list[ImageTarget] = []
    for name, image in zip(_image_names(catalog), catalog.images, strict=True):
        problem = "; ".join(image.problems) or "no compatibility artifact"
        choices = list(image.choices)
        if not choices:
            targets.append(ImageTarget(name, ANY_PLATFORM, None, None, problem))
        for choice in choices:
            platform = choice.platform.name if choice.platform else ANY_PLATFORM
            artifact = choice.artifact
            if artifact is None:
                targets.append(ImageTarget(name, platform, None, None, problem))
            else:
                targets.append(
                    ImageTarget(name, platform, artifact.digest, artifact.spec_bytes)
                )
    return targets
