"""Import torchaudio without its compiled extension (reference side only).

ltx-core's audio modules import torchaudio at module level, and the torchaudio wheel pip resolves for ltx-core
1.0.0 on x86_64 is a CUDA build whose `.so` files cannot load next to the CPU torch (`libc10_cuda.so` missing),
so `import torchaudio` raises `OSError`. The parts ltx-core uses (`transforms.MelSpectrogram`,
`functional.resample`) are pure torch. `install()` puts a `sys.meta_path` hook in front of the import of
`torchaudio._extension.utils`: the module runs unchanged, then its `_load_lib` is wrapped so that a library that
fails to load counts as "not present" (torchaudio's own behaviour when the file is absent). site-packages is
never modified. Call `install()` (or `import_torchaudio()`) before importing `ltx_core.model.audio_vae`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

_TARGET = "torchaudio._extension.utils"


def _wrap(module: types.ModuleType) -> None:
    original = module._load_lib
    if getattr(original, "_unityshots_wrapped", False):
        return

    def load_lib(lib: str) -> bool:
        try:
            return original(lib)
        except OSError:  # a CUDA build's library next to a CPU torch: run without the extension
            return False

    load_lib._unityshots_wrapped = True
    module._load_lib = load_lib


class _WrappingLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._inner.exec_module(module)
        _wrap(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _WrappingLoader(spec.loader)
        return spec


def install() -> None:
    """Make later `import torchaudio` succeed without the extension (idempotent)."""
    if _TARGET in sys.modules:  # an earlier failed `import torchaudio` left the submodule loaded
        _wrap(sys.modules[_TARGET])
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def import_torchaudio() -> types.ModuleType:
    """`torchaudio`, imported through the hook."""
    install()
    import torchaudio

    return torchaudio
