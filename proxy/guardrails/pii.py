"""`pii_mask`: find e-mail addresses, phone numbers, card numbers, IBANs, US SSNs and IP addresses in a query.

Found values are replaced by `<EMAIL>`, `<PHONE>`, `<CREDIT_CARD>`, `<IBAN>`, `<SSN>`, `<IP_ADDRESS>` before the
query leaves the proxy (or the query is blocked, with `on_flagged: block`). Checksums cut false positives:
card numbers must pass Luhn, IBANs mod-97, IPv6 candidates `ipaddress`. Detectors run in a fixed order
(e-mail first, phone last) so a value claimed by a stricter detector is not re-read as a phone number.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from .contract import ALLOW, Decision, GuardContext

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d.+])(?:\d[ -]?){12,18}\d(?!\d)")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:.])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)")
_DIGIT = re.compile(r"\d")
_DATE = re.compile(r"^(?:\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{4})$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _card(match: str) -> bool:
    digits = match.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _ipv6(match: str) -> bool:
    if not any(c.isdigit() for c in match):  # "::", "a::b": words around colons, not addresses
        return False
    try:
        ipaddress.IPv6Address(match)
    except ValueError:
        return False
    return True


def _phone(match: str) -> bool:
    digits = sum(c.isdigit() for c in match)
    if not 7 <= digits <= 15 or _DATE.match(match):
        return False
    return match.startswith(("+", "(")) or any(c in " .-" for c in match)


def _always(_: str) -> bool:
    return True


# (entity, pattern, validator) in the order they run.
DETECTORS: tuple[tuple[str, re.Pattern[str], Callable[[str], bool]], ...] = (
    ("EMAIL", _EMAIL, _always),
    ("IBAN", _IBAN, iban_valid),
    ("CREDIT_CARD", _CARD, _card),
    ("SSN", _SSN, _always),
    ("IP_ADDRESS", _IPV4, _always),
    ("IP_ADDRESS", _IPV6, _ipv6),
    ("PHONE", _PHONE, _phone),
)
ENTITIES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SSN", "IP_ADDRESS")
# Presidio / LiteLLM names for the same entities.
ALIASES = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "US_SSN": "SSN", "IBAN_CODE": "IBAN"}


def mask(query: str, entities: Iterable[str] = ENTITIES) -> tuple[str, tuple[str, ...]]:
    """The query with every found entity replaced by its tag, and the entity types found (in order)."""
    if "@" not in query and _DIGIT.search(query) is None:  # every entity needs an "@" or a digit
        return query, ()
    wanted = set(entities)
    found: list[str] = []
    for entity, pattern, valid in DETECTORS:
        if entity not in wanted:
            continue

        def replace(match: re.Match[str], entity: str = entity, valid: Callable[[str], bool] = valid) -> str:
            if not valid(match.group(0)):
                return match.group(0)
            if entity not in found:
                found.append(entity)
            return f"<{entity}>"

        query = pattern.sub(replace, query)
    return query, tuple(found)


def entity_names(value: Any) -> tuple[str, ...]:
    """Validate an `entities` config value (None means all)."""
    if value is None:
        return ENTITIES
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("entities must be a non-empty list of names")
    names = []
    for raw in value:
        name = ALIASES.get(raw.upper(), raw.upper())
        if name not in ENTITIES:
            raise ValueError(f"unknown PII entity {raw!r}; known: {', '.join(ENTITIES)}")
        names.append(name)
    return tuple(dict.fromkeys(names))


class PiiMask:
    """Mask (default) or block queries containing the configured entities."""

    def __init__(self, *, entities: list[str] | None = None, on_flagged: str = "mask") -> None:
        if on_flagged not in ("mask", "block"):
            raise ValueError("on_flagged must be 'mask' or 'block'")
        self.entities = entity_names(entities)
        self.block = on_flagged == "block"

    def check(self, query: str, context: GuardContext) -> Decision:
        masked, found = mask(query, self.entities)
        if not found:
            return ALLOW
        if self.block:
            return Decision("block", reason=f"the query contains personal data ({', '.join(found)})",
                            entities=found)
        return Decision("mask", query=masked, entities=found)
