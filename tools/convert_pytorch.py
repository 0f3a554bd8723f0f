#!/usr/bin/env python3
"""Convert a PyTorch model to the engine's model file: the same command as
`python -m engine convert` (engine/convert_command.py), kept here for
checkouts and scripts.

  python tools/convert_pytorch.py tests.torch_models:shufflenet_v2_x1_0 -o shufflenet.engine
  python tools/convert_pytorch.py mypkg.nets:build --checkpoint ckpt.pth -o net.engine --check
  python tools/convert_pytorch.py torchvision:shufflenet_v2_x1_0 --pretrained -o sn.engine
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine.convert_command import TOLERANCE, main, relative_error  # noqa: E402,F401

if __name__ == '__main__':
    sys.exit(main(prog='convert_pytorch.py'))
