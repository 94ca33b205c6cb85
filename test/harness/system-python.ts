/** GStreamer's Python bindings come from Debian (python3-gi), so use Debian's interpreter, not a pyenv one. */
export const SYSTEM_PYTHON = '/usr/bin/python3';
