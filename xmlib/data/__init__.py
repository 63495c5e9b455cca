"""Data: open assets (fetch, verify, extract), one reader per asset (``xmlib.data.sources``), image
loading, pretrained features, papers' formats and the three open benchmarks. Import the sub-modules
directly (``xmlib.data.assets``, ``.sources.emoji``, ``.images``, ``.features``,
``.benchmarks.clipart``); this package stays light so that ``import xmlib.data`` pulls in nothing heavy."""
