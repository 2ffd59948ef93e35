"""``lantern serve``: a reference pack as an OpenAI-compatible chat-completions service.

It uses the core (engines, packs) and never the studio. ``app.Service`` holds the routes,
``pool.EnginePool`` the bounded queue and the engine workers, ``chat`` the request and
answer shapes (docs/remote.md documents the ``"lantern"`` extension field).
"""
