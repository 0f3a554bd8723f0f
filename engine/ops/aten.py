"""How the converter (engine/convert.py) makes graph nodes from PyTorch's
ATen ops: each op module registers handlers here for the ATen ops that mean
it (`@converts('conv2d', 'convolution')`).

A handler is called as handler(cv, fx, args, kwargs), args and kwargs the
ATen call's with tensors replaced by the converter's values, and returns
the value(s) the ATen op produces.  cv offers add(fx, op, inputs, attrs,
params) (a node; its value), param(tensor) (a constant as float32 numpy),
is_tensor(value) (an activation, not a number) and fail(fx, why) (the op
cannot run: listed in the converter's error)."""
ATEN = {}       # ATen op name (no overload, no trailing _) -> handler


def converts(*names):
    """Decorator: the handler of these ATen ops."""
    def register(handler):
        for name in names:
            ATEN[name] = handler
        return handler
    return register


def arg(args, kw, i, name, default):
    """Argument i, or keyword `name`, or default."""
    if len(args) > i:
        return args[i]
    return kw.get(name, default)


def pair(v):
    """An int or a 1- or 2-list as two ints (kernel sizes, strides, ...)."""
    if isinstance(v, int):
        return [v, v]
    v = list(v)
    return v * 2 if len(v) == 1 else v


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)
