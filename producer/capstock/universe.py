"""Which symbols to follow: ranked from one ``GET /api/v3/ticker/24hr`` answer.

The ranking is pure (no I/O) so it is easy to test; the jobs fetch the tickers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from capstock.transforms import BadRecord, dec

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


def rank_universe(
    tickers: Iterable[dict],
    *,
    size: int,
    rank_by: str = "quote_volume",
    quote_asset: str = "USDT",
    min_quote_volume: Decimal = Decimal(0),
    symbols: list[str] | None = None,
) -> list[Ranked]:
    """Rank ticker/24hr entries and keep the first ``size``.

    * Top-N mode (``symbols`` empty): only pairs quoted in ``quote_asset`` with
      ``quoteVolume >= min_quote_volume``, ordered by ``rank_by`` (``quote_volume`` or
      ``price_change``, i.e. 24h ``priceChangePercent``: the gainers), largest first.
    * Explicit mode: exactly the listed symbols that appear in ``tickers`` (no quote-asset,
      volume or size filter), ranked by the same metric.

    Ties are broken by symbol so the order is deterministic. Entries with malformed numbers
    are skipped with a log line.
    """
    wanted = set(symbols or ())
    scored: list[tuple[Decimal, str, dict]] = []
    for t in tickers:
        symbol = t.get("symbol")
        if not isinstance(symbol, str):
            continue
        if wanted:
            if symbol not in wanted:
                continue
        elif not symbol.endswith(quote_asset) or symbol == quote_asset:
            continue
        try:
            metric = _metric(t, rank_by)
            volume = dec(t.get("quoteVolume"))
        except BadRecord as e:
            log.warning("skipping ticker with bad numbers symbol=%s error=%s", symbol, e)
            continue
        if not wanted and volume < min_quote_volume:
            continue
        scored.append((metric, symbol, t))
    scored.sort(key=lambda s: (-s[0], s[1]))
    if not wanted:
        scored = scored[:size]
    return [Ranked(symbol, i, t) for i, (_, symbol, t) in enumerate(scored, start=1)]
