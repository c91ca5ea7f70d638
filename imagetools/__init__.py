"""imagetools: images on OCI standards -- references, registry client, the store (the graph),
unpacking layers into bundles, snapshotters, push and commit. Works without any daemon, as
``pyrun image ...`` and as a library."""
