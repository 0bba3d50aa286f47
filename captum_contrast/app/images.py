"""The command line's one image loader: any file Pillow reads, as the picture a viewer shows.

:func:`load_image` decodes a file into an 8-bit ``"RGB"`` or ``"L"`` image, whatever it
was stored as:

- *bit depth*: 16-bit grey (``I;16``, and ``I`` from a 16-bit PNG) is scaled from
  ``[0, 65535]`` to ``[0, 255]``, not clipped; 32-bit float (``F``) must lie in ``[0, 1]``;
- *orientation*: the EXIF orientation tag is applied, so a phone's portrait JPEG is
  explained upright;
- *modes*: palette (``P``, ``PA``), alpha (``RGBA``, ``LA``: composited on white, as a
  viewer on a white page shows them), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` and 1-bit images
  are converted;
- *size*: an image over :data:`MAX_PIXELS` pixels (a decompression bomb) is refused before
  it is decoded.

Every failure is a :class:`~captum_contrast.app.loading.CommandError` naming the file, which
the command line prints as one line (exit status 2).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

MAX_PIXELS = 89_478_485
"""Pillow's own default limit (a 0.25 GiB RGB image): larger files are refused unread."""


class ImageError(ValueError):
    """An image the command line cannot use; the message names the file."""


def load_image(path: str | Path) -> Any:
    """The image at ``path`` as an 8-bit ``"RGB"`` or ``"L"`` PIL image (see the module).

    Raises:
        CommandError: naming the file, when it cannot be read, is too large or holds
            values that cannot be read as an image.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from captum_contrast.app.images import load_image
        >>> path = Path(tempfile.mkdtemp()) / "ramp.png"
        >>> Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(path)
        >>> image = load_image(path)
        >>> image.mode, list(image.getdata())
        ('L', [0, 128, 255])
    """
    from captum_contrast.app.loading import CommandError

    try:
        return _decoded(Path(path))
    except ImageError as error:
        raise CommandError(str(error)) from None


def image_transform(
    resize: int, crop: int, channels: int, interpolation: Any = None
) -> Callable[[Any], Tensor]:
    """PIL image -> ``(channels, crop, crop)`` float tensor in [0, 1]."""
    from torchvision import transforms

    mode = "L" if channels == 1 else "RGB"
    resize_kwargs = {} if interpolation is None else {"interpolation": interpolation}
    return transforms.Compose(
        [
            transforms.Lambda(lambda image: image.convert(mode)),
            transforms.Resize(resize, **resize_kwargs),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
        ]
    )


def _decoded(path: Path) -> Any:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice that: refuse both alike.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                pixels = opened.width * opened.height
                if pixels > MAX_PIXELS:
                    raise ImageError(_too_large(path, opened.width, opened.height))
                opened.load()
                image = ImageOps.exif_transpose(opened)
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"image {path} is too large to decode safely: {error}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as error:
        if isinstance(error, ImageError):
            raise
        raise ImageError(f"cannot read image {path}: {error}") from None
    return _eight_bit(image, path)


def _too_large(path: Path, width: int, height: int) -> str:
    return (
        f"image {path} is {width}x{height} = {width * height} pixels, over the limit of "
        f"{MAX_PIXELS} (a decompression bomb, or an image to downscale first)"
    )


def _eight_bit(image: Any, path: Path) -> Any:
    """``image`` as 8-bit ``"RGB"`` or ``"L"``, scaled and composited (see the module)."""
    from PIL import Image

    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode.startswith("I;16") or (mode == "I" and image.format == "PNG"):
        # A 16-bit PNG opens as I;16 (or I): scale the full 16-bit range, never clip it.
        values = np.asarray(image, dtype=np.float64) / 65535.0
        return Image.fromarray(np.round(values * 255.0).astype(np.uint8), mode="L")
    if mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F" and np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1:
            return Image.fromarray(np.round(values * 255.0).astype(np.uint8), mode="L")
        raise ImageError(
            f"image {path} holds {mode!r} pixels (32-bit {'float' if mode == 'F' else 'int'}) "
            f"in [{values.min()}, {values.max()}], whose display range is unknown; save it "
            "as an 8- or 16-bit PNG"
        )
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        base = "L" if mode.startswith("L") else "RGB"
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert(base)
    if mode == "1":
        return image.convert("L")
    # CMYK, YCbCr, LAB, HSV, RGBX...: Pillow's conversions to RGB.
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageError(f"cannot convert image {path} of mode {mode!r} to RGB: {error}") from None
