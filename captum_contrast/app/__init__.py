"""The application layer: ``captum-contrast demo | explain | evaluate``.

Nothing outside ``app/`` imports it. Each module has one job: ``registry`` (methods and
metrics by name), ``evaluation`` (the batch loop), ``tables`` (aggregation and files),
``distributed`` (the torchrun process group), ``loading`` (models, layers, images),
``cli`` (argument parsing and the commands) and ``demo``.
"""
