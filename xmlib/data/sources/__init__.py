"""Readers of the open assets: the one place that reads each package's files.

- :mod:`~xmlib.data.sources.emoji` — emoji-datasource-google / -twitter and OpenMoji: one concept
  drawn by up to three designers (the one matching rule), with its CLDR name, category and tags.
- :mod:`~xmlib.data.sources.openclipart` — OpenClipart's SVG tree (drawings and the curator folders
  they sit in) and the one SVG metadata parser (title, description, keywords).
- :mod:`~xmlib.data.sources.tuxpaint` — Tux Paint stamps with their English caption.
- :mod:`~xmlib.data.sources.fashion_mnist` — Fashion-MNIST's idx files.

Each reader takes the extracted asset folders (``roots``: asset name → folder, default: the fetched
assets of :mod:`xmlib.data.assets`) and finds its files through the layout constants there. The
benchmarks in :mod:`xmlib.data.benchmarks` decide what to keep; the readers only read.
"""
