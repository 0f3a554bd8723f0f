#!/usr/bin/env python3
"""Convert an ONNX file to the engine's model file: the same command as
`python -m engine convert MODEL.onnx` (engine/convert_command.py).

  python tools/convert_onnx.py model.onnx -o model.engine --check
  python tools/convert_onnx.py model.onnx -o model.engine --input-shape 1,3,160,160 --labels labels.txt
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine.convert_command import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(prog='convert_onnx.py'))
