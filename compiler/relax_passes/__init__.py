"""edgebert.compiler.relax_passes: Relax-level passes (cleanup, composite fusion, layer loop); IR contract below.

(Full contract: docs/frontend.md. Work in progress: the layer-loop pass lands next.)
"""
