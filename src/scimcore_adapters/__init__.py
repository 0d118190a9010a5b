"""Thin adapters around :mod:`scimcore`: Flask, plain ASGI, storage backends and the CLI.

Import the submodule you need (``scimcore_adapters.flask`` needs the ``flask`` extra).
"""

__all__: list[str] = []
