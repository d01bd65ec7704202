"""`BodyBudget`: how many bytes of request bodies the /rerank calls in flight may hold together.

Each admitted call holds its body's size until it is answered (its parsed documents live that long too);
a call that would pass the budget is refused before its body is read, so a burst of large requests costs
a bounded amount of memory instead of all of it (503 with Retry-After: the client may come back).
"""

from __future__ import annotations


class BodyBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold `size` bytes if they fit (a lone request always fits); False when they do not."""
        if self.held and self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size
