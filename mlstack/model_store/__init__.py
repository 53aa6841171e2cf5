"""Model artifacts in the model bucket: ``mlstack model push | list | verify | pin``.

Layout (``components.storage.layout``, ``docs/model-artifacts.md``):
content-addressed blobs ``models/<name>/blobs/sha256/<digest>`` plus one manifest per
version ``models/<name>/manifests/<version>.json`` (every file's path, size and sha256)
written last, so a version exists only once it is complete; both are written with
``If-None-Match: *`` and never overwritten.

Modules: ``local`` (scan a model directory), ``manifest`` (the manifest format),
``s3`` (clients, bucket lookup, error messages), ``push``, ``verify``, ``catalog``
(listing), ``pin`` (edit ``Pulumi.<stack>.yaml``), ``cli`` (the typer commands).
"""
