"""A seeded random-walk spot market: trades, candles, books and 24h statistics.

Everything is exact :class:`~decimal.Decimal` and every time is integer milliseconds, so
the server can render Binance's shapes (string decimals, int ms) without rounding surprises.
Time only moves when :meth:`Market.advance` is called with a later ``now_ms``: trades for
the elapsed interval are generated then (a Poisson stream per symbol), and each trade
updates its one-minute candle. Longer intervals are aggregated from the one-minute candles.
The same seed and the same sequence of ``advance`` times give the same market.

Only the last :data:`~capstock.simulator.history.EAGER_HISTORY_MINUTES` of
``history_minutes`` are generated that way at start; the minutes before them are made on
demand, deterministically (:mod:`capstock.simulator.history`), so a day or a week of
history costs little. Trade ids run on without a break from that history into the live
trades, and every live trade is kept on a compact tape (:mod:`capstock.simulator.tape`):
:meth:`Market.trades_from_id` and :meth:`Market.trades_between` page through all of it.

Each symbol's order book (:mod:`capstock.simulator.book`) is seeded the first time it is
asked for and from then on changes with every update id a trade hands out, so a REST
snapshot and the depth stream describe one book.

:meth:`Market.to_state` and :meth:`Market.from_state` carry the whole market (prices, trade
ids, candles, 24h figures, the random generator) across a restart as plain JSON data, so
a restored market continues exactly where it stopped: no trades happen while it is away.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from capstock.simulator.book import OrderBook
from capstock.simulator.history import EAGER_HISTORY_MINUTES, MINUTE_MS, STEP_SIGMA, SymbolHistory
from capstock.simulator.tape import TradeTape

DAY_MS = 24 * 60 * MINUTE_MS
TRADE_HISTORY = 1000
"""Trades kept per symbol: the maximum ``limit`` of GET /api/v3/trades."""
CANDLE_HISTORY_MINUTES = 2 * 24 * 60
MAX_TRADES_PER_ADVANCE = 5000
"""Per symbol; a longer pause skips time (ids stay contiguous)."""
# Base asset -> rough price in USDT. Listed in the order symbols are created.
ANCHORS: tuple[tuple[str, str], ...] = (
    ("BTC", "65000"),
    ("ETH", "3200"),
    ("SOL", "150"),
    ("BNB", "580"),
    ("XRP", "0.52"),
    ("DOGE", "0.12"),
    ("SHIB", "0.00001234"),
    ("PEPE", "0.0000089"),
    ("ADA", "0.45"),
    ("AVAX", "35"),
    ("LINK", "14"),
    ("DOT", "7"),
    ("TRX", "0.12"),
    ("LTC", "80"),
    ("BCH", "450"),
    ("UNI", "7.5"),
    ("ATOM", "8"),
    ("XLM", "0.11"),
    ("NEAR", "5"),
    ("APT", "9"),
    ("ARB", "1.1"),
    ("OP", "2.3"),
    ("FIL", "5.5"),
    ("ICP", "12"),
    ("ETC", "27"),
    ("HBAR", "0.08"),
    ("VET", "0.03"),
    ("INJ", "25"),
    ("SUI", "1.2"),
    ("FLOKI", "0.00015"),
    ("BONK", "0.000021"),
    ("WIF", "2.5"),
    ("TIA", "8"),
    ("SEI", "0.45"),
)
CROSS_PAIRS: tuple[tuple[str, str, str], ...] = (("ETH", "BTC", "0.049"), ("BNB", "BTC", "0.0089"))
"""Non-USDT pairs added when at least 3 USDT symbols exist (the universe must skip them)."""

EIGHT = Decimal("0.00000001")


def fmt(d: Decimal) -> str:
    """Binance's fixed 8-decimal rendering: ``Decimal('4.000002')`` → ``'4.00000200'``."""
    return f"{d.quantize(EIGHT, rounding=ROUND_HALF_EVEN):f}"


def fmt_exact(d: Decimal) -> str:
    """Plain notation without trailing zeros (``quoteQty`` style): ``'48.000012'``."""
    text = f"{d.normalize():f}"
    return text if "." in text or "E" not in text else f"{d:f}"


def _pow10(exp: int) -> Decimal:
    return Decimal(1).scaleb(exp)


@dataclass
class Trade:
    id: int
    price: Decimal
    qty: Decimal
    time_ms: int
    is_buyer_maker: bool

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass
class Candle:
    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    count: int = 0
    taker_buy_base: Decimal = Decimal(0)
    taker_buy_quote: Decimal = Decimal(0)

    def add(self, t: Trade) -> None:
        self.high = max(self.high, t.price)
        self.low = min(self.low, t.price)
        self.close = t.price
        self.volume += t.qty
        self.quote_volume += t.quote_qty
        self.count += 1
        if not t.is_buyer_maker:
            self.taker_buy_base += t.qty
            self.taker_buy_quote += t.quote_qty


@dataclass
class SymbolState:
    symbol: str
    base: str
    quote: str
    price: Decimal
    tick: Decimal
    step: Decimal
    notional_median: float
    trade_rate: float
    """Mean trades per second."""
    next_trade_id: int
    open_24h: Decimal
    volume_24h_base: Decimal
    quote_volume_24h_base: Decimal
    count_24h_base: int
    clock_ms: int
    trades: deque[Trade] = field(default_factory=lambda: deque(maxlen=TRADE_HISTORY))
    candles: dict[int, Candle] = field(default_factory=dict)
    update_id: int = 1
    high_24h: Decimal = Decimal(0)
    low_24h: Decimal = Decimal(0)
    generated_volume: Decimal = Decimal(0)
    generated_quote_volume: Decimal = Decimal(0)
    generated_count: int = 0


class Market:
    """The simulated market for ``symbol_count`` USDT pairs (plus two BTC-quoted pairs).

    ``on_trade``, when set, is called with the symbol and each new trade as it is made
    (under whatever lock the caller of :meth:`advance` holds); the stream feed uses it.
    """

    on_trade: Callable[[str, Trade], None] | None = None

    def __init__(
        self,
        *,
        symbol_count: int = 20,
        seed: int = 1,
        now_ms: int,
        trade_rate: float = 1.0,
        history_minutes: int = 30,
    ) -> None:
        if symbol_count < 1:
            raise ValueError("symbol_count must be at least 1")
        self.symbol_count = symbol_count
        self.seed = seed
        self.trade_rate = trade_rate
        self.rng = random.Random(seed)
        self.symbols: dict[str, SymbolState] = {}
        self.history: dict[str, SymbolHistory] = {}
        """Per symbol, the past before the trades generated at start (may be empty)."""
        self.tapes: dict[str, TradeTape] = {}
        """Per symbol, every trade generated since this object was made."""
        self.books: dict[str, OrderBook] = {}
        start_ms = now_ms - min(history_minutes, EAGER_HISTORY_MINUTES) * MINUTE_MS
        for i in range(symbol_count):
            if i < len(ANCHORS):
                base, anchor = ANCHORS[i]
                price = Decimal(anchor) * Decimal(str(round(self.rng.uniform(0.9, 1.1), 4)))
            else:
                base = f"SIM{i:03d}"
                price = Decimal(str(10 ** self.rng.uniform(-5, 4.5)))
            self._add(base, "USDT", price, trade_rate, start_ms)
        if symbol_count >= 3:
            for base, quote, anchor in CROSS_PAIRS:
                self._add(base, quote, Decimal(anchor), trade_rate / 2, start_ms)
        first_minute = (now_ms - history_minutes * MINUTE_MS) // MINUTE_MS * MINUTE_MS
        past_minutes = (start_ms // MINUTE_MS * MINUTE_MS - first_minute) // MINUTE_MS
        if past_minutes > 0:
            for s in self.symbols.values():
                self.history[s.symbol] = self._history(
                    s, first_minute, past_minutes, s.next_trade_id, s.price
                )
        self.now_ms = start_ms
        self.advance(now_ms)

    def _history(
        self, s: SymbolState, start_ms: int, minutes: int, end_id: int, end_price: Decimal
    ) -> SymbolHistory:
        return SymbolHistory(
            seed=self.seed,
            symbol=s.symbol,
            start_ms=start_ms,
            minutes=minutes,
            end_id=end_id,
            end_price=end_price,
            tick=s.tick,
            step=s.step,
            trade_rate=s.trade_rate,
            notional_median=s.notional_median,
        )

    def _tape(self, s: SymbolState) -> TradeTape:
        tape = self.tapes.get(s.symbol)
        if tape is None:
            tape = self.tapes[s.symbol] = TradeTape(s.tick, s.step)
        return tape

    def _add(self, base: str, quote: str, price: Decimal, rate: float, start_ms: int) -> None:
        rng = self.rng
        magnitude = math.floor(math.log10(price))
        tick = max(EIGHT, min(Decimal("0.01"), _pow10(magnitude - 4)))
        price = max(tick, price.quantize(tick))
        # Lot size: whole units for sub-cent coins, 1e-5 for BTC-like prices.
        step = max(EIGHT, min(Decimal(1), _pow10(-max(0, magnitude + 2))))
        quote_volume = Decimal(str(round(10 ** rng.uniform(5.5, 10.3), 2)))
        open_24h = (price * Decimal(str(round(math.exp(rng.gauss(0, 0.06)), 6)))).quantize(tick)
        state = SymbolState(
            symbol=base + quote,
            base=base,
            quote=quote,
            price=price,
            tick=tick,
            step=step,
            notional_median=10 ** rng.uniform(1.5, 3.0),
            trade_rate=rate * rng.uniform(0.5, 1.5),
            # Ids grow with the start time (ten per millisecond, far above any simulated
            # trade rate, history included), so a restarted simulator continues above the
            # ids an earlier run issued, as Binance's do, and the producer keeps storing.
            next_trade_id=start_ms * 10 + rng.randrange(10_000, 5_000_000_000),
            open_24h=max(tick, open_24h),
            volume_24h_base=(quote_volume / price).quantize(step),
            quote_volume_24h_base=quote_volume,
            count_24h_base=rng.randrange(10_000, 5_000_000),
            clock_ms=start_ms,
        )
        state.high_24h = max(price, state.open_24h)
        state.low_24h = min(price, state.open_24h)
        state.update_id = rng.randrange(1_000_000, 90_000_000_000)
        self.symbols[state.symbol] = state

    # -- time ------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> None:
        """Generate every trade up to ``now_ms`` (earlier times are ignored)."""
        if now_ms <= self.now_ms:
            return
        self.now_ms = now_ms
        for s in self.symbols.values():
            self._generate(s, now_ms)

    def _generate(self, s: SymbolState, now_ms: int) -> None:
        rng = self.rng
        rate_per_ms = s.trade_rate / 1000
        span = now_ms - s.clock_ms
        if span * rate_per_ms > MAX_TRADES_PER_ADVANCE:
            s.clock_ms = now_ms - int(MAX_TRADES_PER_ADVANCE / rate_per_ms)
        t = float(s.clock_ms)
        while True:
            t += rng.expovariate(rate_per_ms)
            if t > now_ms:
                break
            self._trade(s, int(t))
        s.clock_ms = now_ms
        self._prune(s, now_ms)

    def _trade(self, s: SymbolState, time_ms: int) -> None:
        rng = self.rng
        factor = Decimal(str(round(math.exp(rng.gauss(0, STEP_SIGMA)), 8)))
        s.price = max(s.tick, (s.price * factor).quantize(s.tick))
        notional = s.notional_median * math.exp(rng.gauss(0, 1.2))
        qty = (Decimal(str(round(notional, 6))) / s.price).quantize(s.step)
        qty = max(s.step, qty)
        trade = Trade(s.next_trade_id, s.price, qty, time_ms, rng.random() < 0.5)
        s.next_trade_id += 1
        s.update_id += rng.randrange(1, 4)
        s.trades.append(trade)
        self._tape(s).append(trade.id, trade.price, trade.qty, time_ms, trade.is_buyer_maker)
        book = self.books.get(s.symbol)
        if book is not None:
            book.sync(s.update_id, s.price)
        if self.on_trade is not None:
            self.on_trade(s.symbol, trade)
        s.high_24h = max(s.high_24h, s.price)
        s.low_24h = min(s.low_24h, s.price)
        s.generated_volume += qty
        s.generated_quote_volume += trade.quote_qty
        s.generated_count += 1
        minute = time_ms // MINUTE_MS * MINUTE_MS
        candle = s.candles.get(minute)
        if candle is None:
            candle = Candle(minute, trade.price, trade.price, trade.price, trade.price)
            s.candles[minute] = candle
        candle.add(trade)

    def _prune(self, s: SymbolState, now_ms: int) -> None:
        oldest = now_ms - CANDLE_HISTORY_MINUTES * MINUTE_MS
        if s.candles and next(iter(s.candles)) < oldest:
            for k in [k for k in s.candles if k < oldest]:
                del s.candles[k]

    def skip_trade_ids(self, symbol: str, count: int) -> None:
        """Make the next trade id jump by ``count`` (a gap a poller must notice)."""
        self.symbols[symbol].next_trade_id += count

    # -- across restarts --------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything the market is, as JSON-ready data (decimals as exact strings)."""
        version, internal, gauss = self.rng.getstate()
        return {
            "symbol_count": self.symbol_count,
            "seed": self.seed,
            "trade_rate": self.trade_rate,
            "now_ms": self.now_ms,
            "rng": [version, list(internal), gauss],
            "symbols": [_encode(s) for s in self.symbols.values()],
            "history": {symbol: h.to_state() for symbol, h in self.history.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], *, now_ms: int) -> Market:
        """The market :meth:`to_state` saved, resumed at ``now_ms``: the time it was away
        is skipped (no trades), so trade ids continue with the next one, and the same
        saved state with the same ``advance`` times gives the same market.

        Raises ``KeyError``, ``TypeError``, ``ValueError`` or ``ArithmeticError`` (a bad
        decimal) for data of another shape."""
        market = cls.__new__(cls)
        market.symbol_count = int(state["symbol_count"])
        market.seed = state["seed"]
        market.trade_rate = float(state["trade_rate"])
        version, internal, gauss = state["rng"]
        market.rng = random.Random()
        market.rng.setstate((version, tuple(internal), gauss))
        market.now_ms = max(int(state["now_ms"]), now_ms)
        market.symbols = {}
        market.books = {}
        for data in state["symbols"]:
            s = _decode_symbol(data)
            s.clock_ms = market.now_ms
            market.symbols[s.symbol] = s
        if not market.symbols:
            raise ValueError("no symbols")
        market.tapes = {}
        market.history = {}
        for symbol, h in state.get("history", {}).items():
            market.history[symbol] = market._history(
                market.symbols[symbol],
                int(h["start_ms"]),
                int(h["minutes"]),
                int(h["end_id"]),
                Decimal(h["end_price"]),
            )
        return market

    # -- views -----------------------------------------------------------------------------

    def trades(self, symbol: str, limit: int) -> list[Trade]:
        trades = self.symbols[symbol].trades
        return list(trades)[-limit:] if limit else []

    def trades_from_id(self, symbol: str, from_id: int, limit: int) -> list[Trade]:
        """Up to ``limit`` trades with id >= ``from_id``, oldest first, from the whole
        history: the generated past, then the live trades."""
        history = self.history.get(symbol)
        found = history.trades_from_id(from_id, limit) if history else []
        found += self._live(symbol, lambda tape: tape.from_id(from_id, limit - len(found)))
        return [Trade(*t) for t in found[:limit]]

    def trades_between(self, symbol: str, start_ms: int, end_ms: int, limit: int) -> list[Trade]:
        """Up to ``limit`` trades with ``start_ms <= time <= end_ms``, oldest first."""
        history = self.history.get(symbol)
        found = history.trades_between(start_ms, end_ms, limit) if history else []
        found += self._live(symbol, lambda tape: tape.between(start_ms, end_ms, limit - len(found)))
        return [Trade(*t) for t in found[:limit]]

    def _live(self, symbol: str, read) -> list[tuple]:  # type: ignore[no-untyped-def]
        """Live trades as (id, price, qty, time_ms, is_buyer_maker): what ``read`` finds on
        the tape, after the kept trades older than the tape (a continued market's)."""
        s = self.symbols[symbol]
        tape = self._tape(s)
        first = tape.first_id
        if not s.trades or (first is not None and s.trades[0].id >= first):
            return read(tape)
        older = TradeTape(s.tick, s.step)
        for t in s.trades:
            if first is None or t.id < first:
                older.append(t.id, t.price, t.qty, t.time_ms, t.is_buyer_maker)
        return read(older) + read(tape)

    def _candle(self, s: SymbolState, minute_ms: int) -> Candle | None:
        """The one-minute candle opening at ``minute_ms``, generated past or live."""
        live = s.candles.get(minute_ms)
        if live is not None:
            return live
        history = self.history.get(s.symbol)
        made = history.candle(minute_ms) if history else None
        if made is None:
            return None
        op, hi, lo, cl, volume, quote, count, taker_base, taker_quote = made
        return Candle(minute_ms, op, hi, lo, cl, volume, quote, count, taker_base, taker_quote)

    def klines(
        self,
        symbol: str,
        interval_ms: int,
        limit: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[tuple]:
        """Candles of ``interval_ms`` (a multiple of one minute), oldest first.

        Each tuple: (open_ms, open, high, low, close, volume, close_ms, quote_volume, count,
        taker_buy_base, taker_buy_quote). Minutes without trades carry the previous close
        with zero volume, as on the exchange.
        """
        s = self.symbols[symbol]
        history = self.history.get(symbol)
        if history is not None:
            first_minute = history.start_ms
        elif s.candles:
            first_minute = next(iter(s.candles))
        else:
            return []
        first_bucket = first_minute // interval_ms * interval_ms
        last_bucket = self.now_ms // interval_ms * interval_ms
        if start_ms is not None:
            lo = max(first_bucket, (start_ms + interval_ms - 1) // interval_ms * interval_ms)
            buckets = range(lo, last_bucket + 1, interval_ms)
            if end_ms is not None:
                buckets = range(lo, min(last_bucket, end_ms) + 1, interval_ms)
            wanted = list(buckets[:limit])
        else:
            hi = (
                last_bucket
                if end_ms is None
                else min(last_bucket, end_ms // interval_ms * interval_ms)
            )
            lo = max(first_bucket, hi - (limit - 1) * interval_ms)
            wanted = list(range(lo, hi + 1, interval_ms))
        out = []
        prev_close: Decimal | None = None
        # Find the close before the first wanted bucket to fill empty buckets.
        for minute, candle in s.candles.items():
            if wanted and minute < wanted[0]:
                prev_close = candle.close
        if prev_close is None and wanted and history is not None:
            prev_close = history.close_before(wanted[0])
        for bucket in wanted:
            agg: Candle | None = None
            for minute in range(bucket, bucket + interval_ms, MINUTE_MS):
                c = self._candle(s, minute)
                if c is None:
                    continue
                if agg is None:
                    agg = Candle(bucket, c.open, c.high, c.low, c.close)
                agg.high = max(agg.high, c.high)
                agg.low = min(agg.low, c.low)
                agg.close = c.close
                agg.volume += c.volume
                agg.quote_volume += c.quote_volume
                agg.count += c.count
                agg.taker_buy_base += c.taker_buy_base
                agg.taker_buy_quote += c.taker_buy_quote
            if agg is None:
                if prev_close is None:
                    continue
                agg = Candle(bucket, prev_close, prev_close, prev_close, prev_close)
            prev_close = agg.close
            out.append(
                (
                    bucket,
                    agg.open,
                    agg.high,
                    agg.low,
                    agg.close,
                    agg.volume,
                    bucket + interval_ms - 1,
                    agg.quote_volume,
                    agg.count,
                    agg.taker_buy_base,
                    agg.taker_buy_quote,
                )
            )
        return out

    def book(self, symbol: str, limit: int) -> tuple[int, list[tuple], list[tuple]]:
        """(lastUpdateId, bids best-first, asks best-first) of :meth:`order_book`."""
        return self.order_book(symbol).top(limit)

    def order_book(self, symbol: str) -> OrderBook:
        """The symbol's book as of its last update id, seeded around the last price the
        first time it is asked for (:mod:`capstock.simulator.book`)."""
        s = self.symbols[symbol]
        book = self.books.get(symbol)
        if book is None:
            book = OrderBook(
                seed=self.seed,
                symbol=symbol,
                price=s.price,
                tick=s.tick,
                step=s.step,
                notional_median=s.notional_median,
                update_id=s.update_id,
            )
            self.books[symbol] = book
        book.sync(s.update_id, s.price)
        return book

    def ticker_24hr(self, symbol: str) -> dict:
        """The FULL ticker/24hr object: synthetic baseline volume plus generated trades."""
        s = self.symbols[symbol]
        last = s.trades[-1] if s.trades else None
        _, bids, asks = self.book(symbol, 1)
        volume = s.volume_24h_base + s.generated_volume
        quote_volume = s.quote_volume_24h_base + s.generated_quote_volume
        change = s.price - s.open_24h
        count = s.count_24h_base + s.generated_count
        last_id = s.next_trade_id - 1
        return {
            "symbol": s.symbol,
            "priceChange": fmt(change),
            "priceChangePercent": f"{(change / s.open_24h * 100).quantize(Decimal('0.001')):f}",
            "weightedAvgPrice": fmt(quote_volume / volume),
            "prevClosePrice": fmt(s.open_24h),
            "lastPrice": fmt(s.price),
            "lastQty": fmt(last.qty if last else Decimal(0)),
            "bidPrice": fmt(bids[0][0]),
            "bidQty": fmt(bids[0][1]),
            "askPrice": fmt(asks[0][0]),
            "askQty": fmt(asks[0][1]),
            "openPrice": fmt(s.open_24h),
            "highPrice": fmt(s.high_24h),
            "lowPrice": fmt(s.low_24h),
            "volume": fmt(volume),
            "quoteVolume": fmt(quote_volume),
            "openTime": self.now_ms - DAY_MS,
            "closeTime": self.now_ms,
            "firstId": last_id - count + 1,
            "lastId": last_id,
            "count": count,
        }


# -- state encoding (Market.to_state / from_state) ---------------------------------------------

_SYMBOL_FIELDS = [f.name for f in fields(SymbolState)]
_PLAIN_FIELDS = [n for n in _SYMBOL_FIELDS if n not in ("trades", "candles")]
_TRADE_FIELDS = [f.name for f in fields(Trade)]
_CANDLE_FIELDS = [f.name for f in fields(Candle)]


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _encode(s: SymbolState) -> dict[str, Any]:
    data = {name: _plain(getattr(s, name)) for name in _PLAIN_FIELDS}
    data["trades"] = [[_plain(getattr(t, n)) for n in _TRADE_FIELDS] for t in s.trades]
    data["candles"] = [[_plain(getattr(c, n)) for n in _CANDLE_FIELDS] for c in s.candles.values()]
    return data


def _typed(cls: type, name: str, value: Any) -> Any:
    """A saved value back in its field's type: decimals from their exact text."""
    kind = cls.__dataclass_fields__[name].type
    if kind == "Decimal":
        if not isinstance(value, str):
            raise TypeError(f"{cls.__name__}.{name}: expected a decimal string, got {value!r}")
        return Decimal(value)
    if kind in ("int", "float", "bool", "str"):
        allowed = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}[kind]
        if not isinstance(value, allowed) or (kind == "int" and isinstance(value, bool)):
            raise TypeError(f"{cls.__name__}.{name}: expected {kind}, got {value!r}")
    return value


def _row(cls: type, names: list[str], values: list[Any]) -> Any:
    if len(values) != len(names):
        raise ValueError(f"{cls.__name__}: expected {len(names)} values, got {len(values)}")
    return cls(**{n: _typed(cls, n, v) for n, v in zip(names, values, strict=True)})


def _decode_symbol(data: dict[str, Any]) -> SymbolState:
    missing = [name for name in _SYMBOL_FIELDS if name not in data]
    if missing:
        raise KeyError(f"symbol state without {missing}")
    plain = {name: _typed(SymbolState, name, data[name]) for name in _PLAIN_FIELDS}
    trades = deque((_row(Trade, _TRADE_FIELDS, t) for t in data["trades"]), maxlen=TRADE_HISTORY)
    candles = [_row(Candle, _CANDLE_FIELDS, c) for c in data["candles"]]
    return SymbolState(**plain, trades=trades, candles={c.open_ms: c for c in candles})
