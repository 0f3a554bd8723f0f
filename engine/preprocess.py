"""Images to model inputs, as torchvision's classification transforms do:
resize the shorter side, crop the centre, scale to [0, 1], normalise.

The settings travel in the model file (graph.meta['preprocess'], written at
conversion), with ImageNet's as the default.  Decoding files and resizing
need Pillow; arrays already at the crop size need nothing but NumPy."""
import numpy as np

IMAGENET = {'resize': 256, 'crop': 224, 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def default_spec(input_shape):
    """ImageNet's transform scaled to the model's input (resize = crop / 0.875)."""
    _, c, h, w = input_shape
    crop = min(h, w)
    mean, std = IMAGENET['mean'], IMAGENET['std']
    if c != 3:
        mean, std = [0.5] * c, [0.5] * c
    return {'resize': int(round(crop / 0.875)), 'crop': crop, 'mean': mean, 'std': std}


def check_spec(spec, channels):
    """The preprocessing settings, validated (they come from a file or a caller)."""
    if not isinstance(spec, dict):
        raise ValueError(f'preprocessing settings must be a mapping, got {spec!r}')
    unknown = sorted(str(k) for k in spec if k not in IMAGENET)
    if unknown:
        raise ValueError(f'unknown preprocessing setting(s) {", ".join(map(repr, unknown))} '
                         f'(the settings are {", ".join(IMAGENET)})')
    out = {}
    for key in ('resize', 'crop'):
        v = spec.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 16384:
            raise ValueError(f'preprocessing {key!r} must be an integer from 1 to 16384, got {v!r}')
        out[key] = v
    if out['crop'] > out['resize']:
        raise ValueError(f'preprocessing crop {out["crop"]} is larger than resize {out["resize"]}')
    for key in ('mean', 'std'):
        v = spec.get(key)
        if (not isinstance(v, list) or len(v) != channels or
                not all(isinstance(e, (int, float)) and not isinstance(e, bool) and abs(e) < 1e6 for e in v)):
            raise ValueError(f'preprocessing {key!r} must be {channels} numbers, got {v!r}')
        out[key] = [float(e) for e in v]
    if min(out['std']) <= 0:
        raise ValueError(f'preprocessing std must be positive, got {out["std"]}')
    return out


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError('decoding or resizing images needs Pillow: pip install Pillow '
                          '(or pass arrays already cropped to the model\'s input size)') from None
    return Image


def to_array(item, spec, channels, name=None):
    """One image (path, open binary file, PIL image, or HxW / HxWxC uint8
    array) -> CxHxW float32; errors name it as `name` if given."""
    crop, resize = spec['crop'], spec['resize']
    name = name or _name(item)
    if isinstance(item, np.ndarray):
        arr = _checked_array(item)
        if min(arr.shape[:2]) == resize:        # resizing would change nothing: crop in NumPy
            top, left = _crop_origin(arr.shape[0], arr.shape[1], crop)
            return _normalise(_channels(arr[top:top + crop, left:left + crop], channels), spec)
    arr = np.asarray(_resize_and_crop(decode(item, channels, name), resize, crop), dtype=np.uint8)
    return _normalise(arr[:, :, None] if arr.ndim == 2 else arr, spec)


def decode(item, channels, name=None):
    """One image (path, open binary file, PIL image, or HxW / HxWxC uint8
    array) as a PIL image, greyscale for 1 channel, else RGB; errors name
    it as `name` if given."""
    name = name or _name(item)
    if isinstance(item, np.ndarray):
        arr = _checked_array(item)
        image = _pil().fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    elif isinstance(item, (str, bytes)) or hasattr(item, '__fspath__') or hasattr(item, 'read'):
        image = _open(item, name)
    elif hasattr(item, 'convert') and hasattr(item, 'resize'):
        image = item
    else:
        raise TypeError(f'an image must be a path, a PIL image or a uint8 array, got {type(item).__name__}')
    image = _eight_bit(image, name).convert('L' if channels == 1 else 'RGB')
    if min(image.size) == 0:
        raise ValueError(f'image {name} is empty ({image.size[0]}x{image.size[1]} pixels)')
    return image


def _checked_array(item):
    """An image array as HxWxC uint8 of 1, 3 or 4 channels, or ValueError."""
    if item.dtype != np.uint8 or item.ndim not in (2, 3):
        raise ValueError(f'image arrays must be HxW or HxWxC uint8, got {item.dtype} {item.shape}')
    arr = item if item.ndim == 3 else item[:, :, None]
    if arr.shape[2] not in (1, 3, 4):
        raise ValueError(f'image arrays need 1, 3 or 4 channels, got {arr.shape[2]}')
    if min(arr.shape[:2]) == 0:
        raise ValueError(f'the image array is empty ({arr.shape[0]}x{arr.shape[1]} pixels)')
    return arr


MAX_RESIZED_PIXELS = 1 << 24     # beyond this, resize only the part the crop keeps


def _resize_and_crop(image, resize, crop):
    """torchvision's Resize(resize) then CenterCrop(crop).  An image so
    elongated that its resized whole would not fit in memory (1x20000 resized
    to 256x5120000) has only the part under the crop resized: the same
    sampling, within one grey level."""
    Image = _pil()
    w, h = image.size
    # the shorter side to `resize`, the longer in proportion
    size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    top, left = _crop_origin(size[1], size[0], crop)
    if size[0] * size[1] > MAX_RESIZED_PIXELS:
        sx, sy = w / size[0], h / size[1]
        return image.resize((crop, crop), Image.BILINEAR,
                            box=(left * sx, top * sy, (left + crop) * sx, (top + crop) * sy))
    if size != (w, h):
        image = image.resize(size, Image.BILINEAR)
    return image.crop((left, top, left + crop, top + crop))


def _name(item):
    return str(item) if isinstance(item, (str, bytes)) or hasattr(item, '__fspath__') else 'given'


def _open(path, name):
    """A decoded image file (a path or an open file); ValueError naming it
    for anything that is not one (a text file, a dangling or looping link, a
    decompression bomb)."""
    Image = _pil()
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # Pillow names an open file by its repr (<_io.BytesIO object at ...>): name it as given
        raise ValueError(f'cannot read image {name}: ' + str(e).replace(repr(path), name)) from None
    return image


def _eight_bit(image, name):
    """16-bit greyscale ('I;16*', and 'I' as Pillow reads 16-bit PNGs) scaled
    to 8 bits instead of clipped at 255."""
    if image.mode.startswith('I;16') or image.mode == 'I':
        arr = np.asarray(image)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(f'image {name}: 32-bit integer pixels are not supported '
                             '(save it with 8 or 16 bits per channel)')
        return _pil().fromarray(np.round(arr.astype(np.float64) / 257).astype(np.uint8))
    if image.mode == 'F':
        raise ValueError(f'image {name}: floating-point pixels are not supported '
                         '(save it with 8 or 16 bits per channel)')
    return image


def _crop_origin(h, w, crop):
    """torchvision's CenterCrop: top-left corner of the centred crop."""
    return int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))


def _channels(arr, channels):
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if channels == 1 and arr.shape[2] == 3:     # ITU-R 601 luma, as Pillow's convert('L')
        arr = (arr @ np.array([0.299, 0.587, 0.114]))[:, :, None]
    elif channels == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr


def _normalise(arr, spec):
    x = arr.astype(np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(spec['mean'], np.float32)[:, None, None]
    std = np.asarray(spec['std'], np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32)


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
