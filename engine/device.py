"""What the benchmark should say about the machine it runs on: CPU model,
frequency governor, and (on a Raspberry Pi) throttling."""
import os
import platform
import shutil
import subprocess


def _read(path):
    try:
        with open(path, errors='replace') as f:
            return f.read().strip().strip('\x00')
    except OSError:
        return None


def cpu_model():
    model = _read('/proc/device-tree/model')       # "Raspberry Pi 4 Model B Rev 1.4"
    info = _read('/proc/cpuinfo') or ''
    for key in ('model name', 'Hardware', 'Model', 'CPU part'):
        for line in info.splitlines():
            if line.startswith(key) and ':' in line:
                name = line.split(':', 1)[1].strip()
                return f'{model} ({name})' if model and model not in name else (model or name)
    return model or platform.processor() or platform.machine()


def governor():
    return _read('/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor')


def throttled():
    """vcgencmd's get_throttled bits as an int, or None where there is no vcgencmd."""
    if not shutil.which('vcgencmd'):
        return None
    try:
        out = subprocess.run(['vcgencmd', 'get_throttled'], capture_output=True, text=True, timeout=5).stdout
        return int(out.strip().split('=')[1], 16)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def report():
    """(facts dict, list of warnings)"""
    facts = dict(cpu=cpu_model(), governor=governor(), throttled=throttled(), cores=os.cpu_count())
    warnings = []
    if facts['governor'] not in (None, 'performance'):
        warnings.append(f"CPU frequency governor is '{facts['governor']}', not 'performance': timings "
                        'vary with the clock (echo performance | sudo tee '
                        '/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)')
    if facts['throttled']:
        warnings.append(f"the Pi reports throttling or under-voltage (get_throttled=0x{facts['throttled']:x}): "
                        'check the power supply and cooling')
    return facts, warnings
