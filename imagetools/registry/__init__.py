"""The registry side of imagetools: a distribution API v2 client over http.client.

- ``transport``: the HTTP seam (keep-alive pool, retries with backoff, redirects) and its errors.
- ``auth``: WWW-Authenticate challenges, basic credentials, bearer tokens (cached per scope).
- ``credentials``: pyrun's auth.json (written by ``pyrun image login``) and docker's config.
- ``config``: registries.conf, which registries are insecure (plain HTTP / unverified TLS).
- ``client``: ``RegistryClient``, the requests pull and push are made of.
"""
