import pytest

from tests.calls import shared

CAMPPLUS = "models/speaker/campplus-zh-en-common.onnx"


@pytest.fixture(scope="session")
def campplus_path() -> str:
    return str(shared(*CAMPPLUS.split("/")))


@pytest.fixture(scope="session")
def speaker_model(campplus_path):
    from bot.speaker.model import SpeakerModel

    return SpeakerModel(campplus_path)


@pytest.fixture(scope="session")
def vad():
    from bot.audio.vad import SileroModel

    return SileroModel()


@pytest.fixture
def speaker_env(monkeypatch, campplus_path):
    """The CLI (which reads the environment) uses the shared CAM++ model."""
    monkeypatch.setenv("STALK_SPEAKER_MODEL", campplus_path)
    return campplus_path
