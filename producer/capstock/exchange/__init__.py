"""Stage 1: the exchange. A polling source over the real python-binance client."""
