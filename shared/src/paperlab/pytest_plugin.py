"""pytest plugin (auto-loaded through the ``pytest11`` entry point when paperlab is installed).

Fixtures:

- ``real_data``: a function ``real_data(*parts) -> Path`` for a file or folder under ``PAPERLAB_DATA``.
  When it is absent the test is skipped with a message naming ``PAPERLAB_DATA``, or fails when
  ``PAPERLAB_REQUIRE_DATA=1`` (as ``.ci/run`` sets), so CI can never pass by skipping real-data tests.
- ``tiny_lm``: a session-wide ``(model, tokenizer)`` pair from :func:`paperlab.models.tiny_model_and_tokenizer`.
- ``openai_server``: a running OpenAI-compatible server (:func:`paperlab.served.start_served_model`:
  ``transformers serve`` on 127.0.0.1 with the tiny checkpoint of :func:`paperlab.models.save_tiny_checkpoint`,
  behind a counting, fault-injecting proxy), one per test process, started at first use and stopped at the end;
  each test gets it with the recorded requests and the fault injection reset.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paperlab.data import ENV_DATA, ENV_REQUIRE, DataUnavailableError, data_path, require_data


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_data: needs the real data under PAPERLAB_DATA")


@pytest.fixture
def real_data(request: pytest.FixtureRequest) -> Callable[..., Path]:
    request.applymarker(pytest.mark.real_data)

    def get(*parts: str) -> Path:
        try:
            return data_path(*parts)
        except DataUnavailableError as err:
            if require_data():
                pytest.fail(f"{err} [{ENV_REQUIRE}=1, so missing real data is a failure]", pytrace=False)
            pytest.skip(f"real data absent; set {ENV_DATA} to run this test ({err})")
        raise AssertionError("unreachable")

    return get


@pytest.fixture(scope="session")
def tiny_lm() -> tuple[Any, Any]:
    from paperlab.models import tiny_model_and_tokenizer

    return tiny_model_and_tokenizer()


@pytest.fixture(scope="session")
def _served_model(tmp_path_factory: pytest.TempPathFactory):
    from paperlab.models import save_tiny_checkpoint
    from paperlab.served import start_served_model

    folder = tmp_path_factory.mktemp("served")
    # 8,192 positions (RoPE: no more weights) so that long benchmark prompts fit without truncation
    checkpoint = save_tiny_checkpoint(folder / "tiny-llama", max_position=8192)
    served = start_served_model(checkpoint, log=folder / "serve.log")
    yield served
    served.stop()


@pytest.fixture
def openai_server(_served_model):
    _served_model.reset()
    yield _served_model
    _served_model.reset()
