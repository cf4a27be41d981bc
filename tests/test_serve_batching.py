"""Dynamic batching (issue 19): concurrent requests of different sizes each get their own rows
back, a request that overflows a batch starts the next one, and a model that fails or answers
with the wrong number of rows fails only the requests of that batch — the batcher goes on, and
an app stopped and started again still answers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import netwright as nw
from netwright.serving.batching import Batcher


def _gather(batcher: Batcher, inputs: list[np.ndarray]) -> list:
    async def go():
        return await asyncio.gather(*(batcher.submit(x) for x in inputs), return_exceptions=True)

    return asyncio.run(go())


def test_requests_of_different_sizes_get_their_own_rows_back():
    calls = []

    def model(batch):
        calls.append(len(batch))
        return batch * 10 + 1

    batcher = Batcher(model, max_batch=5, max_wait_ms=50)
    sizes = [1, 3, 2, 4, 1, 1, 5, 2]  # 19 rows: batches of at most 5, some requests held over
    start = np.cumsum([0] + sizes)
    inputs = [np.arange(a, b, dtype=np.float32)[:, None] for a, b in zip(start, start[1:])]
    outs = _gather(batcher, inputs)
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out, x * 10 + 1)
    assert sum(calls) == 19 and max(calls) <= 5 and len(calls) < len(sizes)
    assert batcher.stats.requests == 8 and batcher.stats.model_calls == len(calls)
    batcher.close()


def test_a_larger_request_than_a_batch_runs_alone():
    batcher = Batcher(lambda b: b + 0, max_batch=4, max_wait_ms=20)
    big, small = np.ones((9, 2), np.float32), np.zeros((1, 2), np.float32)
    outs = _gather(batcher, [small, big, small])
    assert [len(o) for o in outs] == [1, 9, 1] and outs[1].sum() == 18
    assert batcher.stats.largest_batch == 9
    batcher.close()


@pytest.mark.parametrize("fault", ["raises", "wrong_rows", "scalar"])
def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on(fault):
    state = {"first": True}

    def model(batch):
        if state["first"]:
            state["first"] = False
            if fault == "raises":
                raise ValueError("boom")
            return batch[:-1] if fault == "wrong_rows" else np.float32(1.0)
        return batch * 2

    batcher = Batcher(model, max_batch=8, max_wait_ms=30)
    inputs = [np.full((2, 1), i, np.float32) for i in range(3)]
    outs = _gather(batcher, inputs)
    assert all(isinstance(o, Exception) for o in outs), outs  # one batch: all three failed
    assert ("boom" if fault == "raises" else "one output row per input row") in str(outs[0])
    again = _gather(batcher, inputs)  # the same batcher, the next batch
    for x, out in zip(inputs, again):
        np.testing.assert_array_equal(out, x * 2)
    batcher.close()


def test_batching_off_runs_one_call_per_request_in_order():
    seen = []
    batcher = Batcher(lambda b: (seen.append(float(b[0, 0])), b)[1], enabled=False)
    inputs = [np.full((1, 1), i, np.float32) for i in range(6)]
    outs = _gather(batcher, inputs)
    assert seen == list(range(6)) and [float(o[0, 0]) for o in outs] == seen
    assert batcher.stats.model_calls == 6
    batcher.close()


def test_an_app_stopped_and_started_again_still_answers(tmp_path):
    from starlette.testclient import TestClient

    result = nw.run({"name": "iris", "run_dir": str(tmp_path), "model": {"zoo": "mlp", "hidden": [8]},
                     "data": {"source": "iris"}, "loss": "cross_entropy",
                     "train": {"epochs": 1}}, verbose=0)
    X, _ = nw.load_builtin("iris")
    app = nw.serve(result.run_dir, runtime="torch")
    answers = []
    for _ in range(2):  # each `with` runs the app's startup and shutdown (its lifespan)
        with TestClient(app) as client:
            r = client.post("/predict", json={"rows": X[:3].tolist()})
            assert r.status_code == 200, r.text
            answers.append(r.json())
    assert answers[0] == answers[1]
