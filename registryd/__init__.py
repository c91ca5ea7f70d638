"""registryd: an OCI distribution registry (distribution-spec v1.1) that skopeo, podman and
``pyrun image`` push to and pull from unchanged.

Modules, outside in::

    cli         registryd serve | gc (click)
    config      YAML → JSON Schema (schema/registryd-config.schema.json) → typed Config
    serve       assembly and lifecycle: bind, auth, storage, signals, graceful stop
    server      HTTP/1.1: threads, keep-alive, chunked bodies, 100-continue, sendfile, TLS
    body        a request body as a stream (Content-Length or chunked)
    app         route → read-only → auth (registryd.auth) → handler; ApiError → JSON errors
    api/        the endpoints: blobs, push (uploads), manifests, discovery, search
    manifests   manifest parsing and validation (pure)
    uploads     upload sessions on disk: append, verify, commit, expire
    storage     the filesystem layout under the root; atomic writes; the gc flock
    names       repository names, tags, digests, upload ids (the only way into a path)
    ranges      Range / Content-Range
    gc          mark and sweep, safe while serving
    proxy       pull-through cache mode: fetch, verify and store what the upstream has
    metrics     /metrics (Prometheus text)
    accesslog   logging and the access log
    errors      RegistrydError, ApiError (status + spec code)
"""
