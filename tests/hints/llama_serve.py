"""``python tests/hints/llama_serve.py ARGS``: llama-cpp-python's OpenAI-compatible server with
weight repacking off, so that it runs on any x86-64 CPU whatever the wheel was built for.

A llama-cpp-python built natively on a CPU with AVX-512 or AMX moves the weights into
"extra buffer types" (repacked for those instruction sets) at load, and on such CPUs the
first decode then dies with a general protection fault inside libggml-cpu. A pip wheel
cache keeps such a build even when a later install asks for a portable one. Loading the
model without extra buffer types (llama.cpp's ``use_extra_bufts``; the server has no option
for it) uses the plain CPU kernels, which work with any build. The tests and benchmarks
start the server through this file; the arguments are ``python -m llama_cpp.server``'s.
"""

from __future__ import annotations

import llama_cpp.llama_cpp as native

_default_params = native.llama_model_default_params


def _params_without_repacking():
    params = _default_params()
    params.use_extra_bufts = False
    return params


if __name__ == "__main__":
    # llama_cpp.Llama reads its defaults through this module attribute at load time.
    native.llama_model_default_params = _params_without_repacking
    from llama_cpp.server.__main__ import main

    main()
