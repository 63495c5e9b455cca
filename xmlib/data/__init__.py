"""Data: open assets (fetch, verify, extract), image loading, pretrained features, papers' formats and
the three open benchmarks. Import the sub-modules directly (``xmlib.data.assets``, ``.images``,
``.features``); this package stays light so that ``import xmlib.data`` pulls in nothing heavy."""
