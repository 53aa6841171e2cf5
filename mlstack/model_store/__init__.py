"""Model artifacts in the model bucket: ``mlstack model push | list | verify | pin``.

Layout (``components.storage.layout``, ``docs/model-artifacts.md``):
``models/<name>/<version>/<files...>`` plus ``manifest.json`` (every file's path,
size and sha256) written last, so a version exists only once it is complete, and
is never overwritten.

Modules: ``local`` (scan a model directory), ``manifest`` (the manifest format),
``s3`` (clients, bucket lookup, error messages), ``push``, ``verify``, ``catalog``
(listing), ``pin`` (edit ``Pulumi.<stack>.yaml``), ``cli`` (the typer commands).
"""
