from __future__ import annotations

import pytest

from tests.fakes.cohere import FakeCohere

CAPITALS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. "
    "Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) "
    "is the capital of the United States. It is a federal district.",
    "Capital punishment has existed in the United States since before the United States was a country. "
    "As of 2017, capital punishment is legal in 30 of the 50 states.",
]
CAPITAL_QUERY = "What is the capital of the United States?"


@pytest.fixture(scope="session")
def fake_cohere():
    fake = FakeCohere().start()
    yield fake
    fake.stop()


@pytest.fixture
def cohere_upstream(fake_cohere):
    fake_cohere.reset()
    return fake_cohere
