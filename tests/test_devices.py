"""Several GPUs on one runner: each xdist worker gets its own card (issue 20, item 7).

The choice is plain logic over ``CUDA_VISIBLE_DEVICES`` and a GPU count, so it is tested
here on CPU; ``docs/gpu-validation.md`` says what was checked on a real multi-GPU box.
"""

from __future__ import annotations

import json

import pytest

from pytest_perfguard import devices


def test_workers_spread_over_the_visible_cards_round_robin() -> None:
    cards = ["0", "1", "2", "3"]
    chosen = [devices.assign(f"gw{i}", cards) for i in range(6)]
    assert [c.card for c in chosen if c] == ["0", "1", "2", "3", "0", "1"]
    assert all(c is not None and c.of == 4 for c in chosen)


def test_nothing_to_spread_without_workers_or_with_one_card() -> None:
    assert devices.assign("master", ["0", "1"]) is None
    assert devices.assign("gw0", ["0"]) is None
    assert devices.assign("gw1", []) is None


def test_a_users_cuda_visible_devices_is_respected_and_read_as_cuda_does() -> None:
    never = lambda: pytest.fail("a set CUDA_VISIBLE_DEVICES must not ask the driver")  # noqa: E731
    assert devices.visible_cards({"CUDA_VISIBLE_DEVICES": "2,3"}, never) == ["2", "3"]
    uuids = "GPU-8f1c2d3e-aaaa-bbbb-cccc-000000000001,GPU-8f1c2d3e-aaaa-bbbb-cccc-000000000002"
    assert devices.visible_cards({"CUDA_VISIBLE_DEVICES": uuids}, never) == uuids.split(",")
    # CUDA stops at the first entry it cannot parse; an empty value hides every card.
    assert devices.visible_cards({"CUDA_VISIBLE_DEVICES": "1,x,2"}, never) == ["1"]
    assert devices.visible_cards({"CUDA_VISIBLE_DEVICES": ""}, never) == []
    assert devices.visible_cards({}, lambda: 3) == ["0", "1", "2"]
    assert devices.visible_cards({}, lambda: None) == []


def test_a_worker_is_scoped_to_its_card_unless_cuda_already_started() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "4,5,6"}
    chosen = devices.give_worker_a_card("gw2", environ, started=lambda: False)
    assert isinstance(chosen, devices.Assignment) and chosen.card == "6"
    assert environ["CUDA_VISIBLE_DEVICES"] == "6"

    environ = {"CUDA_VISIBLE_DEVICES": "4,5,6"}
    refused = devices.give_worker_a_card("gw1", environ, started=lambda: True)
    assert isinstance(refused, str) and "CUDA already started" in refused
    assert environ["CUDA_VISIBLE_DEVICES"] == "4,5,6"

    environ = {}
    assert devices.give_worker_a_card("master", environ, count=lambda: 8) is None
    assert environ == {}


def test_xdist_workers_each_get_their_own_card(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end with real xdist workers: two cards visible, two workers, two tests that
    wait for each other so that both workers run one; each sees exactly one card, a
    different one. (On this CPU machine CUDA is absent, so scoping it harms nothing.)"""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    pytester.makepyfile(test_cards="""
        import json, os, pathlib, time
        import pytest

        @pytest.mark.parametrize("n", [0, 1])
        def test_card(n, worker_id, tmp_path_factory):
            out = tmp_path_factory.getbasetemp().parent / f"card-{worker_id}.json"
            out.write_text(json.dumps({"worker": worker_id,
                                       "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}))
            deadline = time.monotonic() + 60
            while len(list(out.parent.glob("card-gw*.json"))) < 2:
                assert time.monotonic() < deadline, "the other worker never ran a test"
                time.sleep(0.05)
    """)
    result = pytester.runpytest("--perfguard", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=2)
    seen = {}
    for path in pytester.path.parent.glob("**/card-gw*.json"):
        data = json.loads(path.read_text())
        seen[data["worker"]] = data["visible"]
    assert seen == {"gw0": "0", "gw1": "1"}


def test_without_perfguard_workers_are_left_alone(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    pytester.makepyfile(test_cards="""
        import os

        def test_card():
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    """)
    result = pytester.runpytest("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=1)
