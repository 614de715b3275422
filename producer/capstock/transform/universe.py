"""Which symbols to follow: ranked from one ``GET /api/v3/ticker/24hr`` answer.

The ranking is pure (no I/O) so it is easy to test; the jobs fetch the tickers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from capstock.transform.rows import BadRecord, dec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ranked:
    symbol: str
    rank: int
    """1 = first by the ranking metric."""
    ticker: dict
    """The raw ticker/24hr entry the rank came from (reused for the top_24hr rows)."""


def _metric(ticker: dict, rank_by: str) -> Decimal:
    key = "quoteVolume" if rank_by == "quote_volume" else "priceChangePercent"
    return dec(ticker.get(key))


@dataclass(frozen=True)
class Selection:
    """The ranked universe and, per reason, the symbols left out of it."""

    ranked: list[Ranked]
    left_out: dict[str, list[tuple[str, str | None]]]
    """Reason (e.g. ``"under UNIVERSE_MIN_QUOTE_VOLUME=1000000"``) -> (symbol, detail or
    None), most relevant first: the volume shortfalls closest to the minimum, the next
    ranks beyond the size."""


def select_universe(
    tickers: Iterable[dict],
    *,
    size: int,
    rank_by: str = "quote_volume",
    quote_asset: str = "USDT",
    min_quote_volume: Decimal = Decimal(0),
    symbols: list[str] | None = None,
) -> Selection:
    """Rank ticker/24hr entries and keep the first ``size``.

    * Top-N mode (``symbols`` empty): only pairs quoted in ``quote_asset`` with
      ``quoteVolume >= min_quote_volume``, ordered by ``rank_by`` (``quote_volume`` or
      ``price_change``, i.e. 24h ``priceChangePercent``: the gainers), largest first.
    * Explicit mode: exactly the listed symbols that appear in ``tickers`` (no quote-asset,
      volume or size filter), ranked by the same metric.

    Ties are broken by symbol so the order is deterministic. Entries with malformed numbers
    are skipped with a log line. Every symbol not selected is in :attr:`Selection.left_out`
    with the reason.
    """
    wanted = list(dict.fromkeys(symbols or ()))
    not_quoted: list[tuple[str, str | None]] = []
    bad: list[tuple[str, str | None]] = []
    low_volume: list[tuple[Decimal, str]] = []
    seen: set[str] = set()
    scored: list[tuple[Decimal, str, dict]] = []
    for t in tickers:
        symbol = t.get("symbol")
        if not isinstance(symbol, str):
            continue
        seen.add(symbol)
        if wanted:
            if symbol not in wanted:
                continue
        elif not symbol.endswith(quote_asset) or symbol == quote_asset:
            not_quoted.append((symbol, None))
            continue
        try:
            metric = _metric(t, rank_by)
            volume = dec(t.get("quoteVolume"))
        except BadRecord as e:
            log.warning("skipping ticker with bad numbers symbol=%s error=%s", symbol, e)
            bad.append((symbol, None))
            continue
        if not wanted and volume < min_quote_volume:
            low_volume.append((volume, symbol))
            continue
        scored.append((metric, symbol, t))
    scored.sort(key=lambda s: (-s[0], s[1]))
    left_out: dict[str, list[tuple[str, str | None]]] = {}
    if wanted:
        left_out["not listed by the exchange"] = [(s, None) for s in wanted if s not in seen]
    else:
        left_out[f"beyond UNIVERSE_SIZE={size}"] = [(s[1], None) for s in scored[size:]]
        scored = scored[:size]
        low_volume.sort(key=lambda v: (-v[0], v[1]))
        left_out[f"under UNIVERSE_MIN_QUOTE_VOLUME={min_quote_volume:f}"] = [
            (symbol, f"{volume}") for volume, symbol in low_volume
        ]
        left_out[f"not quoted in {quote_asset}"] = sorted(not_quoted)
    left_out["with malformed numbers"] = bad
    ranked = [Ranked(symbol, i, t) for i, (_, symbol, t) in enumerate(scored, start=1)]
    return Selection(ranked, {reason: out for reason, out in left_out.items() if out})


def describe_left_out(left_out: dict[str, list[tuple[str, str | None]]], examples: int) -> str:
    """``"1 under UNIVERSE_MIN_QUOTE_VOLUME=1000000 (PEPEUSDT=591710.26), 2 not quoted in
    USDT (BNBBTC, ETHBTC)"``: at most ``examples`` symbols named per reason, ``"none"``
    when nothing was left out."""
    parts = []
    for reason, entries in left_out.items():
        names = [f"{s}={detail}" if detail else s for s, detail in entries[:examples]]
        more = f" and {len(entries) - examples} more" if len(entries) > examples else ""
        parts.append(f"{len(entries)} {reason} ({', '.join(names)}{more})")
    return ", ".join(parts) or "none"
