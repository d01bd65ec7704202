"""Run in a subprocess by tests/test_upstream_contract.py: call a hostile upstream through one transport and
print, per case, how the call ended and the peak RSS growth it cost (a clean process measures only itself).

    python -m tests.fakes.hostile_client TRANSPORT BASE_URL PATH [PATH ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from proxy.errors import ProxyError
from proxy.http_body import ResponseLimits
from proxy.providers import UpstreamRequest
from proxy.transport import AiohttpTransport, ClientOptions, HttpxTransport, PoolTransport

TRANSPORTS = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport, "pool": PoolTransport}
UNLIMITED = ClientOptions(limits=ResponseLimits(base_body_bytes=1 << 40))
"""For the deadline case: no size limit, so only the deadline can end the decoding."""


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


def reset_peak() -> float:
    """The current RSS, with the peak (VmHWM) reset to it where the kernel allows. Not `ru_maxrss`: after
    fork and exec it still holds the parent's (pytest's) peak."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def peak_mib() -> float:
    return _status_mib("VmHWM")


async def main(name: str, base: str, paths: list[str]) -> None:
    for path in paths:
        unlimited = path.endswith("?unlimited")
        transport = TRANSPORTS[name](options=UNLIMITED if unlimited else None)
        warm = await transport.send(UpstreamRequest(url=base + "/ok", json={"query": "q"}, timeout=10))
        assert warm.status == 200
        baseline = reset_peak()
        started = time.perf_counter()
        timeout = 0.5 if unlimited else 10.0
        try:
            response = await transport.send(UpstreamRequest(url=base + path.removesuffix("?unlimited"),
                                                            json={"query": "q"}, timeout=timeout, documents=100))
            outcome = {"status": response.status, "bytes": len(response.body)}
        except ProxyError as exc:
            outcome = {"error": exc.kind, "status": exc.status, "message": exc.message[:200]}
        outcome.update(path=path, seconds=round(time.perf_counter() - started, 3),
                       growth_mib=round(peak_mib() - baseline, 1))
        await transport.aclose()
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
