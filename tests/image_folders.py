"""Image folders for the tests, written from scikit-learn's bundled digits (no download)."""

from pathlib import Path

from PIL import Image

# Every file type and image mode the readers must take.
_FORMATS = (("png", "L"), ("png", "RGB"), ("jpg", "RGB"), ("bmp", "RGB"), ("gif", "P"), ("png", "RGBA"))


def digit_images(digit, count, *, offset=0):
    """``count`` 8x8 images of ``digit`` as uint8 arrays (0..255), from ``offset`` on."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images[digits.target == digit][offset : offset + count]
    return (images * (255.0 / 16.0)).astype("uint8")


def write_digit_folder(root, *, digits=(0, 1, 2), per_class=20, offset=0, size=16, mixed=False, names=None):
    """A class-per-subfolder folder of digit images (PNG; ``mixed``: all formats, modes and sizes).

    ``names``: the subfolder of each digit (default ``digit_<d>``). Returns ``root``.
    """
    root = Path(root)
    for index, digit in enumerate(digits):
        folder = root / (names[index] if names else f"digit_{digit}")
        folder.mkdir(parents=True, exist_ok=True)
        for number, pixels in enumerate(digit_images(digit, per_class, offset=offset)):
            suffix, mode = _FORMATS[number % len(_FORMATS)] if mixed else ("png", "L")
            side = size + (number % 3) * 4 if mixed else size
            image = Image.fromarray(pixels, "L").resize((side, side), Image.NEAREST)
            if mode == "P":
                image = image.convert("RGB").convert("P")
            else:
                image = image.convert(mode)
            image.save(folder / f"{digit}_{offset + number:04d}.{suffix}")
    return root
