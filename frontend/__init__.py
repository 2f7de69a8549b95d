"""edgebert.frontend: ONNX loading into TVM Relax, and the PyTorch side producing compressed ALBERT."""
