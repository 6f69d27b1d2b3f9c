"""Every reliance on a private torch / dynamo / inductor API, grouped by what it touches.

Nothing else in perfguard touches a private torch API. Each helper is feature-detected:
where a torch version lacks what it needs it returns ``None`` (or raises
:class:`Unavailable` with the reason), and the caller records the metric as
``unavailable (reason)``, never as 0. Checked on torch 2.13.0 (CPU) and 2.11.0+cu130
(H100); the design targets torch 2.11 to 2.14.

- :mod:`.inductor`: inductor's config, caches and generated code
- :mod:`.inductor_bytes`: inductor's byte count (metrics log, cache-hit replay)
- :mod:`.dynamo`: what dynamo compiles: graphs, graph breaks, recompiles, its logs
- :mod:`.backends`: the backend ``torch.compile`` would build, wrapped to see each graph
- :mod:`.aten`: aten operators (dispatcher table, dispatch mode, op tags)
- :mod:`.model`: a model's tensors and outputs (pytree, tensor versions, ``nn.Module``)
- :mod:`.profiler`: the profiler's raw event tree (allocation events for peak memory)
"""

from __future__ import annotations


class Unavailable(Exception):
    """A private API this measurement needs is missing in this torch version."""
