"""One GPU per xdist worker on a runner with several GPUs. No torch.

``pytest -n auto --perfguard`` on a box with four GPUs would otherwise put every worker's
model on ``cuda:0``: four measurements share one card (their NVML samples and timings mix)
while three cards idle. Each worker instead sees one card of those visible to the run, by
``CUDA_VISIBLE_DEVICES`` set in the worker before CUDA starts, the way CUDA itself scopes a
process to a device: ``"cuda"`` and ``"cuda:0"`` in the user's code then mean the worker's
card, and nothing else in the project has to change.

The number of cards is read without starting CUDA in this process (NVML, or
``nvidia-smi -L``): once CUDA has started, ``CUDA_VISIBLE_DEVICES`` no longer applies, so a
worker whose CUDA already runs (a conftest that touched the GPU at import) keeps every card
and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

#: The variable CUDA reads once, when it starts in a process.
VISIBLE = "CUDA_VISIBLE_DEVICES"

_WORKER_ID = re.compile(r"gw(\d+)")


@dataclass(frozen=True)
class Assignment:
    """The card a worker was given: the entry of ``CUDA_VISIBLE_DEVICES`` it now holds
    (an index or a ``GPU-``/``MIG-`` UUID), and how many cards the run could see."""

    card: str
    of: int

    def describe(self) -> str:
        return f"{self.card} (one of {self.of} visible)"


def worker_index(worker_id: str) -> int | None:
    """xdist's ``gw3`` -> 3; anything else (the controller, ``master``) -> None."""
    match = _WORKER_ID.fullmatch(worker_id)
    return int(match.group(1)) if match else None


def visible_cards(environ: Mapping[str, str], count_gpus: Callable[[], int | None]) -> list[str]:
    """The cards this process may use, as ``CUDA_VISIBLE_DEVICES`` entries. A set variable
    wins (the user already chose: ``"2,3"`` gives ``["2", "3"]``; CUDA stops at the first
    entry it cannot read, and so does this); otherwise every card the machine has."""
    if VISIBLE in environ:
        cards: list[str] = []
        for entry in environ[VISIBLE].split(","):
            entry = entry.strip()
            if not entry or not re.fullmatch(r"\d+|(GPU|MIG)-[0-9A-Za-z/-]+", entry):
                break
            cards.append(entry)
        return cards
    count = count_gpus()
    return [str(i) for i in range(count)] if count else []


def assign(worker_id: str, cards: list[str]) -> Assignment | None:
    """The card for one xdist worker: worker ``gwN`` takes ``cards[N % len(cards)]`` (more
    workers than cards share them round-robin). None when there is nothing to spread: not a
    worker, or fewer than two cards."""
    index = worker_index(worker_id)
    if index is None or len(cards) < 2:
        return None
    return Assignment(card=cards[index % len(cards)], of=len(cards))


def count_gpus() -> int | None:
    """How many NVIDIA GPUs the machine has, asked without starting CUDA here: NVML first
    (``nvidia-ml-py``), then ``nvidia-smi -L``; None when neither can tell."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))


def cuda_started() -> bool:
    """Whether CUDA already runs in this process (then the variable no longer applies).
    Only asks torch if the program imported it already."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_initialized())
    except Exception:
        return False


def give_worker_a_card(worker_id: str, environ: MutableMapping[str, str] | None = None,
                       count: Callable[[], int | None] = count_gpus,
                       started: Callable[[], bool] = cuda_started) -> Assignment | str | None:
    """Scope this worker process to its card by setting ``CUDA_VISIBLE_DEVICES``. Returns
    the assignment; None when there is nothing to spread (not a worker, under two cards);
    or, as text, why a card could not be given."""
    if worker_index(worker_id) is None:
        return None
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    choice = assign(worker_id, visible_cards(env, count))
    if choice is None:
        return None
    if started():
        return (f"CUDA already started in worker {worker_id} before perfguard could choose "
                f"its GPU (something imported at collection touched the GPU); it shares "
                f"every visible card")
    env[VISIBLE] = choice.card
    return choice
