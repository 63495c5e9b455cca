"""DCMM (Formal et al., ECIR 2020): learning to rank images with cross-modal graph convolutions.

Modules: ``config`` (Config, PROFILES, paper/code switches), ``data`` (QueryList, synthetic lists),
``batching`` (padding + masks), ``graph`` (k-NN / full graphs), ``layers`` (Eq. 5), ``neighbours``
(Eq. 5 on neighbour lists), ``cm`` (Eq. 1 and its convolution form), ``models`` (LTR, DCMM, CM),
``loss`` (BPR, Eq. 7), ``protocol`` (5-fold CV).
"""
