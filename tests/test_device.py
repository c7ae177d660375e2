"""Where Whisper runs: asr.device / asr.compute_type auto, resolved from the CUDA devices CTranslate2 counts."""

from __future__ import annotations

import pytest

from bot.asr.model import check_device, choose_device


@pytest.mark.parametrize(
    ("device", "compute_type", "gpus", "expected"),
    [
        ("auto", "auto", 0, ("cpu", "int8")),
        ("auto", "auto", 1, ("cuda", "float16")),
        ("auto", "auto", 4, ("cuda", "float16")),
        # An explicit compute type is kept wherever auto puts the model.
        ("auto", "int8_float16", 1, ("cuda", "int8_float16")),
        ("auto", "float32", 0, ("cpu", "float32")),
        # An explicit device is kept, even with a GPU there; check_device refuses cuda without one.
        ("cpu", "auto", 2, ("cpu", "int8")),
        ("cuda", "auto", 0, ("cuda", "float16")),
        ("cpu", "int8", 1, ("cpu", "int8")),
    ],
)
def test_choice_from_the_counted_devices(device, compute_type, gpus, expected) -> None:
    choice = choose_device(device, compute_type, gpus)
    assert (choice.device, choice.compute_type) == expected


def test_choice_says_why() -> None:
    assert str(choose_device("auto", "auto", 0)) == (
        "cpu, int8; asr.device auto: no CUDA GPU seen by CTranslate2, asr.compute_type auto: int8 on cpu"
    )
    assert str(choose_device("auto", "auto", 2)) == (
        "cuda, float16; asr.device auto: 2 CUDA GPUs seen by CTranslate2, asr.compute_type auto: float16 on cuda"
    )
    assert str(choose_device("cpu", "int8", 1)) == "cpu, int8; asr.device cpu"


def test_auto_on_this_machine_is_what_ctranslate2_sees() -> None:
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    choice = check_device("auto", "auto")
    assert (choice.device, choice.compute_type) == (("cuda", "float16") if gpus else ("cpu", "int8"))
    # The resolved pair is itself a valid setting: loading with it resolves to the same.
    again = check_device(choice.device, choice.compute_type)
    assert (again.device, again.compute_type) == (choice.device, choice.compute_type)


def test_default_config_on_a_cpu_only_machine_loads_int8_on_the_cpu(tmp_path) -> None:
    import ctranslate2

    from bot.asr.transcriber import WhisperTranscriber
    from tests.calls import offline_config, tiny_en_dir

    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA GPU")
    config = offline_config(STALK_ASR_MODEL=tiny_en_dir(), STALK_ASR_WORKERS="1")
    assert (config.asr.device, config.asr.compute_type) == ("auto", "auto")
    transcriber = WhisperTranscriber.from_config(config)
    assert transcriber.device is not None
    assert (transcriber.device.device, transcriber.device.compute_type) == ("cpu", "int8")
    # CTranslate2 names int8 on a CPU by its accumulation type.
    assert transcriber.model.model.device == "cpu" and transcriber.model.model.compute_type.startswith("int8")
