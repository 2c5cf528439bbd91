"""Protection against abusive clients: rate limits (``ratelimit``, ``buckets``, ``ratekeys``,
``shared``, ``ratecompose``)."""
