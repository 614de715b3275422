"""The stream feed: what the market's streams carry, computed tick by tick from the market.

:meth:`StreamFeed.tick` is called with the market's lock held (the websocket server does,
every :data:`~capstock.simulator.websocket.TICK_SECONDS`), with the streams somebody is
subscribed to. It advances the market to now, exactly as a REST request does, and
returns ``(stream name, payload)`` pairs in the order they are to be sent:

* ``@trade`` / ``@aggTrade``: every trade the market made since the last tick, in id
  order, caught by :attr:`Market.on_trade` as it was made; ids are the ones REST
  ``/trades`` returns (an id gap made with ``/_sim/trade_gap`` is a gap in both);
* ``@depth`` / ``@depth@100ms``: the changes of the symbol's
  :class:`~capstock.simulator.book.OrderBook` since the last event of that stream, merged
  per level (the quantity after the last id), once per 1000 or 100 ms of the simulator's
  clock and only when something changed. Consecutive events chain (``U`` = previous
  ``u`` + 1) and REST ``/depth``'s ``lastUpdateId`` is an id of the same sequence;
* ``@depth<N>``: the top N levels every 1000 or 100 ms;
* ``@kline_<i>``: the open candle at least every 2 s, and each candle that closed since
  the last tick with ``x`` true, before the next one opens;
* ``@ticker`` / ``@miniTicker``: every second; ``!miniTicker@arr``: every second, the
  symbols whose last trade changed.

Times are the simulator's clock (a test's fake clock included): a stream is due when the
clock has moved on far enough, not when wall time has passed. Recording starts when a
stream is first wanted (a symbol's book keeps a change log only while its depth is).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from capstock.simulator import streams as st
from capstock.simulator.book import ASK, BID, Change
from capstock.simulator.market import Market, Trade

Event = tuple[str, Any]
"""(stream name, payload): a JSON object, or an array for ``!miniTicker@arr``."""

MAX_CLOSED_KLINES = 1000
"""Closed candles sent at most per stream and tick (after a long jump of the clock)."""


@dataclass
class _DiffWindow:
    """Changes of one diff-depth stream not yet sent: per side, price → qty after ``last``."""

    due_ms: int
    first: int | None = None
    last: int | None = None
    levels: dict[str, dict[Decimal, Decimal]] = field(default_factory=lambda: {BID: {}, ASK: {}})

    def add(self, changes: list[Change]) -> None:
        for c in changes:
            if self.first is None:
                self.first = c.update_id
            self.last = c.update_id
            self.levels[c.side][c.price] = c.qty

    def take(self) -> tuple[int, int, list, list]:
        first, last = self.first, self.last
        assert first is not None and last is not None
        bids = sorted(self.levels[BID].items(), reverse=True)
        asks = sorted(self.levels[ASK].items())
        self.first = self.last = None
        self.levels = {BID: {}, ASK: {}}
        return first, last, bids, asks


@dataclass
class _KlineState:
    open_ms: int
    sent_ms: int


class StreamFeed:
    """The events of the streams of one :class:`Market` (see the module docstring).

    Installs itself as the market's ``on_trade`` hook; not thread-safe: call with the
    market's lock held.
    """

    def __init__(self, market: Market) -> None:
        self.market = market
        market.on_trade = self._on_trade
        self._trades: dict[str, list[Trade]] = {}
        self._windows: dict[str, _DiffWindow] = {}
        self._depth_symbols: set[str] = set()
        self._due: dict[str, int] = {}
        self._klines: dict[str, _KlineState] = {}
        self._mini_last_ids: dict[str, int] = {}

    def _on_trade(self, symbol: str, trade: Trade) -> None:
        pending = self._trades.get(symbol)
        if pending is not None:
            pending.append(trade)

    def tick(self, now_ms: int, wanted: Iterable[st.Stream]) -> list[Event]:
        """Advance the market to ``now_ms`` and return the events due for ``wanted``."""
        streams = {s.name: s for s in wanted if s.symbol is None or s.symbol in self.market.symbols}
        self._track(streams.values())
        self.market.advance(now_ms)
        now = self.market.now_ms
        events: list[Event] = []
        tickers: dict[str, dict[str, Any]] = {}
        changes = self._drain_books()
        for stream in sorted(streams.values(), key=_send_order):
            if stream.kind in (st.TRADE, st.AGG_TRADE):
                events += self._trade_events(stream, now)
            elif stream.kind == st.DEPTH:
                events += self._diff_event(stream, changes.get(stream.symbol, []), now)
            elif stream.kind == st.PARTIAL_DEPTH:
                events += self._partial_depth(stream, now)
            elif stream.kind == st.KLINE:
                events += self._kline_events(stream, now)
            elif self._is_due(stream, now, st.TICKER_EVERY_MS):
                events += self._ticker_events(stream, now, tickers)
        for symbol in self._trades:
            self._trades[symbol] = []
        self._forget(streams)
        return events

    # -- what is recorded ------------------------------------------------------------------

    def _track(self, streams: Iterable[st.Stream]) -> None:
        trade_symbols, depth_symbols = set(), set()
        for s in streams:
            if s.kind in (st.TRADE, st.AGG_TRADE):
                trade_symbols.add(s.symbol)
            elif s.kind == st.DEPTH:
                depth_symbols.add(s.symbol)
        for symbol in trade_symbols - set(self._trades):
            self._trades[symbol] = []
        for symbol in set(self._trades) - trade_symbols:
            del self._trades[symbol]
        for symbol in depth_symbols - self._depth_symbols:
            book = self.market.order_book(symbol)
            book.log = []
        for symbol in self._depth_symbols - depth_symbols:
            self.market.books[symbol].log = None
        self._depth_symbols = depth_symbols

    def _drain_books(self) -> dict[str, list[Change]]:
        drained = {}
        for symbol in self._depth_symbols:
            book = self.market.books[symbol]
            drained[symbol], book.log = book.log or [], []
        return drained

    def _forget(self, streams: dict[str, st.Stream]) -> None:
        for table in (self._windows, self._due, self._klines):
            for name in [n for n in table if n not in streams]:
                del table[name]
        if not any(s.kind == st.ALL_MINI_TICKERS for s in streams.values()):
            self._mini_last_ids.clear()

    def _is_due(self, stream: st.Stream, now: int, every_ms: int) -> bool:
        due = self._due.get(stream.name)
        if due is not None and now < due:
            return False
        self._due[stream.name] = now + every_ms
        return True

    # -- events ----------------------------------------------------------------------------

    def _trade_events(self, stream: st.Stream, now: int) -> list[Event]:
        assert stream.symbol is not None
        build = st.trade_event if stream.kind == st.TRADE else st.agg_trade_event
        return [(stream.name, build(stream.symbol, t, now)) for t in self._trades[stream.symbol]]

    def _diff_event(self, stream: st.Stream, changes: list[Change], now: int) -> list[Event]:
        window = self._windows.setdefault(stream.name, _DiffWindow(due_ms=now))
        window.add(changes)
        if window.first is None or now < window.due_ms:
            return []
        window.due_ms = now + stream.every_ms
        first, last, bids, asks = window.take()
        assert stream.symbol is not None
        return [(stream.name, st.depth_update_event(stream.symbol, first, last, bids, asks, now))]

    def _partial_depth(self, stream: st.Stream, now: int) -> list[Event]:
        if not self._is_due(stream, now, stream.every_ms):
            return []
        assert stream.symbol is not None and stream.levels is not None
        update_id, bids, asks = self.market.book(stream.symbol, stream.levels)
        return [(stream.name, st.partial_depth_event(update_id, bids, asks))]

    def _kline_events(self, stream: st.Stream, now: int) -> list[Event]:
        assert stream.symbol is not None and stream.interval is not None
        interval_ms = stream.interval_ms
        open_ms = now // interval_ms * interval_ms
        state = self._klines.get(stream.name)
        events: list[Event] = []
        if state is not None and open_ms > state.open_ms:
            closed = self.market.klines(
                stream.symbol, interval_ms, MAX_CLOSED_KLINES, state.open_ms, open_ms - 1
            )
            events += [self._kline(stream, row, closed=True, now=now) for row in closed]
        elif state is not None and now - state.sent_ms < st.KLINE_EVERY_MS:
            return []
        current = self.market.klines(stream.symbol, interval_ms, 1)
        if current and current[0][0] == open_ms:
            events.append(self._kline(stream, current[0], closed=False, now=now))
        self._klines[stream.name] = _KlineState(open_ms, now)
        return events

    def _kline(self, stream: st.Stream, row: tuple, *, closed: bool, now: int) -> Event:
        assert stream.symbol is not None and stream.interval is not None
        s = self.market.symbols[stream.symbol]
        ids = st.kline_trade_ids(s, row[0], row[6], row[8])
        payload = st.kline_event(s.symbol, stream.interval, row, ids, closed=closed, event_ms=now)
        return stream.name, payload

    def _ticker_events(
        self, stream: st.Stream, now: int, tickers: dict[str, dict[str, Any]]
    ) -> list[Event]:
        def ticker(symbol: str) -> dict[str, Any]:
            if symbol not in tickers:
                tickers[symbol] = self.market.ticker_24hr(symbol)
            return tickers[symbol]

        if stream.kind == st.TICKER:
            assert stream.symbol is not None
            return [(stream.name, st.ticker_event(ticker(stream.symbol), now))]
        if stream.kind == st.MINI_TICKER:
            assert stream.symbol is not None
            return [(stream.name, st.mini_ticker_event(ticker(stream.symbol), now))]
        changed = []
        for symbol, s in self.market.symbols.items():
            last_id = s.next_trade_id - 1
            if self._mini_last_ids.get(symbol) != last_id:
                self._mini_last_ids[symbol] = last_id
                changed.append(st.mini_ticker_event(ticker(symbol), now))
        return [(stream.name, changed)] if changed else []


def _send_order(stream: st.Stream) -> tuple[int, str]:
    """Trades first, then books, candles and tickers; by name within a kind."""
    rank = {st.TRADE: 0, st.AGG_TRADE: 1, st.DEPTH: 2, st.PARTIAL_DEPTH: 3, st.KLINE: 4}
    return rank.get(stream.kind, 5), stream.name
